"""`models.rnn-t.joiner_stride`: the conformer transducer stacks encoder frames into coarser joiner frames (the joint
step's tensor shrinks as much) while its CTC head reads the 40-ms frames; and during the CTC warm-up the model
transcribes with that CTC head (its joiner has not trained yet)."""
from __future__ import annotations

import pytest
import torch

from asr_poc.config import ConfigError, load_config
from asr_poc.datasets.interface import collate_fn
from asr_poc.decoding.emissions import ctc_log_probs
from asr_poc.evaluation import error_rates

from test_rnnt import SMALL_CONFORMER, overfitted_model, shortest_utterances
from test_rnnt_ctc_warmup import TINY, build

STRIDE2 = dict(joiner_stride=2, ctc_head_input="encoder")


@pytest.fixture(scope="module")
def items(small_corpus):
    return shortest_utterances(small_corpus, 3)


def test_stacking_gives_each_utterance_of_a_padded_batch_its_own_frames(items):
    model = build(items, **STRIDE2).eval()
    transcriber = model.model.transcriber
    assert transcriber.output.in_features == 2 * TINY["encoder_dim"]
    torch.manual_seed(0)
    lengths = torch.tensor([7, 4, 5])
    hidden = torch.randn(3, 7, TINY["encoder_dim"])  # frames past each length are padding: any values
    with torch.inference_mode():
        batch, batch_lengths = transcriber.project(hidden, lengths)
        assert batch_lengths.tolist() == [4, 2, 3] and batch.shape[1] == 4  # ceil: the last group of an odd length
        for i, n in enumerate(lengths.tolist()):
            alone, alone_lengths = transcriber.project(hidden[i : i + 1, :n], torch.tensor([n]))
            assert alone_lengths.tolist() == [batch_lengths[i]]
            torch.testing.assert_close(batch[i, : batch_lengths[i]], alone[0])
        batch = collate_fn(items, model.tokenizer)
        _, hidden_lengths = transcriber.hidden(*model.frontend(batch["waveforms"], batch["waveform_lengths"]))
        _, enc_lengths = model.encode(batch["waveforms"], batch["waveform_lengths"])
        assert enc_lengths.tolist() == [(n + 1) // 2 for n in hidden_lengths.tolist()]


def test_streamed_joiner_frames_equal_the_chunked_whole_utterance(items):
    model = build(items, **STRIDE2).eval()
    transcriber = model.model.transcriber
    for item in items:
        wav = item["waveform"]
        with torch.inference_mode():
            feats, lengths = model.frontend(wav[None], torch.tensor([wav.numel()]))
            offline, n = transcriber(feats, lengths, model.segment)
            state = model.init_stream_state()
            pieces = []
            for i in range(0, wav.numel(), 1777):
                frames = model._stream_features(wav[i : i + 1777], state["features"], False)
                pieces.append(transcriber.stream(frames, state["encoder"]))
            frames = model._stream_features(torch.zeros(0), state["features"], True)
            pieces.append(transcriber.stream(frames, state["encoder"], final=True))
        streamed = torch.cat(pieces)
        assert streamed.shape[0] == int(n[0])
        torch.testing.assert_close(streamed, offline[0, : int(n[0])], atol=1e-4, rtol=1e-4)


def test_a_strided_transducer_learns(small_corpus):
    """Overfitting 4 utterances with 80-ms joiner frames: the loss falls and the transcripts approach the texts."""
    model, items, losses = overfitted_model(small_corpus, {**SMALL_CONFORMER, **STRIDE2}, steps=120)
    assert losses[-1] < 0.3 * losses[0], losses[::10]
    texts = [model.inference(it["waveform"]) for it in items]
    assert error_rates([it["text"] for it in items], texts)["cer"] < 0.75, texts  # untrained: ~1


def test_the_ctc_head_reads_the_encoder_frames_for_beam_search_and_export(items):
    model = build(items, **STRIDE2).eval()
    batch = collate_fn(items, model.tokenizer)
    log_probs, frames = ctc_log_probs(model, batch["waveforms"], batch["waveform_lengths"])
    _, joiner_frames = model.encode(batch["waveforms"], batch["waveform_lengths"])
    assert log_probs.shape[-1] == len(model.tokenizer)
    assert all(2 * j - 1 <= f <= 2 * j for j, f in zip(joiner_frames.tolist(), frames.tolist()))


def test_during_the_warmup_it_transcribes_with_the_ctc_head(items, monkeypatch):
    model = build(items, ctc_warmup_steps=2, **STRIDE2).eval()
    batch = collate_fn(items, model.tokenizer)
    import asr_poc.models.rnnt as rnnt_module

    searched = []  # utterances that went through the transducer's greedy search
    batched = rnnt_module.greedy_batch
    monkeypatch.setattr(rnnt_module, "greedy_batch", lambda net, enc, lengths, *a:
                        searched.extend([1] * len(lengths)) or batched(net, enc, lengths, *a))
    logits, frames = model.ctc_head_logits(batch["waveforms"], batch["waveform_lengths"])
    best = logits.argmax(-1)
    expected = [model.tokenizer.decode_ctc(best[i, : int(n)].tolist()) for i, n in enumerate(frames)]
    assert model.transcribe(batch["waveforms"], batch["waveform_lengths"]) == expected and not searched
    model.transducer_trained.fill_(True)  # past the warm-up: the transducer's greedy search
    model.transcribe(batch["waveforms"], batch["waveform_lengths"])
    assert len(searched) == len(items)


@pytest.mark.parametrize("override, message", [
    (["models.rnn-t.joiner_stride=2"], "joiner_stride 2 makes the projection too coarse for CTC"),
    (["models.rnn-t.joiner_stride=2", "models.rnn-t.ctc_head_input=encoder", "models.rnn-t.chunk_ms=120"],
     "chunk_ms (120) must be a multiple of 80 ms"),
])
def test_config_errors(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(None, ["model=rnn-t", "models.rnn-t.ctc_head_input=projection", *override], check_data=False)
    assert any(message in p for p in err.value.problems), err.value.problems


def test_the_emformer_encoder_records_that_it_ignores_the_conformer_options():
    cfg = load_config(None, ["model=rnn-t", "models.rnn-t.encoder=emformer"], check_data=False)
    section = cfg["models"]["rnn-t"]
    assert (section["joiner_stride"], section["ctc_head_input"], section["ctc_warmup_steps"]) == (1, "projection", 450)


def test_during_the_warmup_it_streams_with_the_ctc_head(items):
    """Streamed CTC during the warm-up gives greedy CTC over the chunked encoder frames of the whole utterance."""
    model = build(items, ctc_warmup_steps=2, **STRIDE2).eval()
    transcriber = model.model.transcriber
    wav = items[0]["waveform"]
    with torch.inference_mode():
        feats, lengths = model.frontend(wav[None], torch.tensor([wav.numel()]))
        hidden, n = transcriber.hidden(feats, lengths, model.segment)
        expected = model.tokenizer.decode_ctc(model.ctc_head(hidden[0, : int(n[0])]).argmax(-1).tolist())
        state = model.init_stream_state()
        for i in range(0, wav.numel(), 1500):
            _, state = model.stream_step(wav[i : i + 1500], state)
        text, _ = model.stream_step(torch.zeros(0), state, final=True)
    assert text == expected and state["hyp"] is None  # the transducer's search never ran
