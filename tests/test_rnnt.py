"""RNN-T (Emformer and conformer encoders): presets, config checks, a loss that falls, streaming = full-utterance greedy decoding,
checkpoints, and `asr-poc train --model rnn-t` end to end."""
from __future__ import annotations

import pytest
import torch

from asr_poc.cli import main
from asr_poc.config import ConfigError, dataset_section, load_config
from asr_poc.datasets.interface import collate_fn
from asr_poc.inference import Transcriber
from asr_poc.models.interface import BaseASRModel
from asr_poc.models.rnnt import EmformerRNNT, RNNTConfig
from asr_poc.plugins import get_dataset_class, get_model_class
from asr_poc.text import CharTokenizer, normalize_text
from asr_poc.runs import Run

# Small enough to overfit four utterances in well under a minute on two busy cores.
SMALL = dict(encoder_dim=64, num_heads=2, num_layers=2, ffn_dim=256, predictor_dim=64, joiner_dim=128, dropout=0.0)
STEPS = 60


def build(vocab: dict, **overrides) -> EmformerRNNT:
    return EmformerRNNT({**RNNTConfig(**overrides).model_dump(), "vocab": vocab})


def shortest_utterances(corpus, n: int = 4) -> list[dict]:
    cfg = load_config(None, [f"datasets.synthetic.path={corpus}"])
    ds = get_dataset_class("synthetic")(dataset_section(cfg), "train")
    durations = ds.durations()
    return [ds[i] for i in sorted(range(len(ds)), key=durations.__getitem__)[:n]]


def overfit(model: BaseASRModel, items: list[dict], steps: int, lr: float = 2e-3) -> list[float]:
    """Adam with 10 warm-up steps on one batch; returns the losses."""
    torch.manual_seed(0)
    batch = collate_fn(items, model.tokenizer)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 10))
    model.train()
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = model(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    return losses


def overfitted_model(corpus, config: dict, steps: int = STEPS):
    """A model of `config` trained `steps` steps on the 4 shortest utterances; (model, items, losses)."""
    items = shortest_utterances(corpus)
    torch.manual_seed(0)
    model = build(CharTokenizer.from_texts([it["text"] for it in items]).vocab, **config)
    losses = overfit(model, items, steps)
    return model.eval(), items, losses


@pytest.fixture(scope="module")
def overfitted(small_corpus):
    return overfitted_model(small_corpus, SMALL)


@pytest.mark.parametrize("size, low, high", [("xs", 1e6, 3e6), ("s", 8e6, 13e6), ("m", 25e6, 36e6)])
def test_size_presets(size, low, high):
    assert low < build(CharTokenizer.from_texts(["a b"]).vocab, size=size).num_parameters() < high


def test_streaming_attributes_follow_the_config():
    model = build(CharTokenizer.from_texts(["a b"]).vocab, chunk_ms=320, lookahead_ms=80)
    assert model.streaming and model.chunk_ms == 320 and model.lookahead_ms == 80
    assert model.algorithmic_latency_ms == pytest.approx(320 + 80 + 2.5)  # + half a 25 ms window less the hop


@pytest.mark.parametrize("override, message", [
    ("models.rnn-t.chunk_ms=150", "models.rnn-t: chunk_ms (150) must be a multiple of 40 ms"),
    ("models.rnn-t.lookahead_ms=30", "models.rnn-t: lookahead_ms (30) must be a multiple of 40 ms"),
    ("models.rnn-t.lookahead_ms=-40", "models.rnn-t.lookahead_ms = -40: Input should be greater than or equal to 0"),
    ("models.rnn-t.chunk_ms=0", "models.rnn-t.chunk_ms = 0: Input should be greater than or equal to 20"),
    ("models.rnn-t.num_heads=5", "models.rnn-t: encoder_dim (144) must be divisible by num_heads (5)"),
    ("models.rnn-t.chunk_size=3", "models.rnn-t.chunk_size: unknown key"),
])
def test_config_errors_name_the_key(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(None, ["model=rnn-t", "models.rnn-t.encoder=emformer", override], check_data=False)
    assert any(line.startswith(message) for line in err.value.problems), err.value.problems


def test_time_reduction_changes_the_frame_the_chunks_are_checked_against():
    cfg = load_config(None, ["model=rnn-t", "models.rnn-t.encoder=emformer", "models.rnn-t.time_reduction=2", "models.rnn-t.chunk_ms=100",
                             "models.rnn-t.lookahead_ms=20", "models.rnn-t.left_context_ms=400"], check_data=False)
    assert cfg["models"]["rnn-t"]["chunk_ms"] == 100


def test_loss_falls_when_overfitting_a_batch(overfitted):
    _, _, losses = overfitted
    assert losses[-1] < 0.3 * losses[0], losses[::10]


def test_streaming_decoding_equals_full_utterance_greedy(overfitted, monkeypatch):
    model, items, _ = overfitted
    import asr_poc.models.rnnt as rnnt_module

    decoded_frames = []  # encoder frames that greedy decoding walks: offline (batched search) and streaming
    greedy, batched = model.greedy, rnnt_module.greedy_batch
    monkeypatch.setattr(model, "greedy", lambda enc, hyp=None: decoded_frames.append(len(enc)) or greedy(enc, hyp))
    monkeypatch.setattr(rnnt_module, "greedy_batch", lambda net, enc, lengths, *args:
                        decoded_frames.append(int(lengths.sum())) or batched(net, enc, lengths, *args))
    texts = []
    for item in items:
        wav = item["waveform"]
        decoded_frames.clear()
        offline = model.inference(wav)
        offline_frames = sum(decoded_frames)
        assert offline_frames == (wav.numel() // 160 + 1) // model.stride
        for size in ((1, 997, wav.numel()) if not texts else (997, wav.numel())):
            decoded_frames.clear()
            state = model.init_stream_state()
            head = 1600 if size == 1 else 0  # sample by sample for the first 0.1 s, then larger pieces
            pieces = [wav[i : i + 1] for i in range(head)] + [wav[i : i + max(size, 1)]
                                                               for i in range(head, wav.numel(), max(size, 1))]
            partials = []
            for piece in pieces:
                text, state = model.stream_step(piece, state)
                partials.append(text)
            text, state = model.stream_step(torch.zeros(0), state, final=True)
            assert text == offline, (size, text, offline)
            assert sum(decoded_frames) == offline_frames  # the silence padding of the last chunk is not decoded
            assert all(text.startswith(p) for p in partials)  # a greedy transducer only extends its hypothesis
        texts.append(offline)
    assert sum(bool(t) for t in texts) >= 2, texts  # the model learned something: the comparison is not trivial


def test_checkpoint_rebuilds_the_streaming_model(overfitted, tmp_path):
    model, items, _ = overfitted
    model.save_checkpoint(tmp_path / "r.pt")
    loaded = BaseASRModel.from_checkpoint(tmp_path / "r.pt")
    assert isinstance(loaded, get_model_class("rnn-t")) and loaded.streaming
    assert [loaded.inference(it["waveform"]) for it in items] == [model.inference(it["waveform"]) for it in items]


def test_asr_poc_train_model_rnn_t_end_to_end(small_corpus, tmp_path, capsys):
    sets = [f"datasets.synthetic.path={small_corpus}", "training.max_steps=3", "training.eval_utterances=3",
            "training.batch_size=4", "training.warmup_steps=1", "models.rnn-t.ctc_warmup_steps=1",  # then joint steps
            "models.rnn-t.num_layers=1",
            "models.rnn-t.encoder_dim=32", "models.rnn-t.num_heads=2", "models.rnn-t.ffn_dim=64"]
    code = main(["train", "--model", "rnn-t", "--root", str(tmp_path), *(f"--set={s}" for s in sets)])
    out, err = capsys.readouterr()
    assert code == 0, err
    run = Run(out.splitlines()[0])
    assert run.status["state"] == "finished" and run.status["step"] == 3 and run.status["model"] == "rnn-t"
    transcriber = Transcriber.from_checkpoint(run.path / "best.pt")
    assert transcriber.model.name == "rnn-t" and transcriber.model.streaming
    wav = sorted((small_corpus / "wavs").glob("*.wav"))[0]
    assert isinstance(transcriber.transcribe(wav).text, str)
    assert list(transcriber.stream([]))[-1].is_final


# --- the conformer encoder (`encoder: conformer`): the streaming conformer's layers under the transducer ------------
SMALL_CONFORMER = dict(encoder="conformer", encoder_dim=64, num_heads=2, num_layers=2, ffn_dim=256, kernel_size=7,
                       subsampling_channels=16, predictor_dim=64, joiner_dim=128, dropout=0.0)


@pytest.fixture(scope="module")
def overfitted_conformer(small_corpus):
    return overfitted_model(small_corpus, SMALL_CONFORMER, steps=2 * STEPS)  # its chunk draws make runs vary: train
    # long enough that every run has learned its utterances


def test_conformer_encoder_loss_falls_and_it_transcribes_what_it_learned(overfitted_conformer):
    from asr_poc.evaluation import error_rates

    model, items, losses = overfitted_conformer
    assert losses[-1] < 0.3 * losses[0], losses[::10]
    texts = [model.inference(it["waveform"]) for it in items]  # full context, after training on chunks too
    assert error_rates([it["text"] for it in items], texts)["cer"] < 0.75, texts  # untrained: ~1 (garbage)
    # what it learned: each transcript is the start of its own reference (at this step count the transducer still
    # stops emitting after the first words: 'where is' for 'where is this envelope')
    assert all(len(t) >= 5 and normalize_text(it["text"]).startswith(t) for t, it in zip(texts, items)), texts


def test_conformer_encoder_streams_exactly_its_chunked_frames(overfitted_conformer):
    """Streaming (any piece size) gives the encoder frames of the whole utterance under the chunk mask, and the
    greedy text over them; the full-context transcript may differ (it sees the future)."""
    model, items, _ = overfitted_conformer
    transcriber = model.model.transcriber
    for item in items[:2]:
        wav = item["waveform"]
        with torch.inference_mode():
            feats, lengths = model.frontend(wav[None], torch.tensor([wav.numel()]))
            chunked, n = transcriber(feats, lengths, model.segment)
            expected = model.tokenizer.decode(model.greedy(chunked[0, : int(n[0])]).tokens)
        for size in (997, 4000, wav.numel()):
            state = model.init_stream_state()
            for i in range(0, wav.numel(), size):
                text, state = model.stream_step(wav[i : i + size], state)
                assert expected.startswith(text)  # partial texts only grow
            text, state = model.stream_step(torch.zeros(0), state, final=True)
            assert text == expected, (size, text, expected)


def test_conformer_encoder_config():
    vocab = CharTokenizer.from_texts(["a b"]).vocab
    model = build(vocab, encoder="conformer")
    assert model.lookahead_ms == 0 and model.chunk_ms == 160 and model.model.transcriber.left_chunks == 8
    assert 1.5e6 < model.num_parameters() < 3e6
    with pytest.raises(ConfigError) as err:
        load_config(None, ["model=rnn-t", "models.rnn-t.encoder=conformer", "models.rnn-t.lookahead_ms=40"],
                    check_data=False)
    assert any("lookahead_ms (40) is the Emformer encoder's right context" in p for p in err.value.problems)
    with pytest.raises(ConfigError) as err:
        load_config(None, ["model=rnn-t", "models.rnn-t.encoder=conformer", "models.rnn-t.time_reduction=2"],
                    check_data=False)
    assert any("time_reduction (2) is the Emformer encoder's" in p for p in err.value.problems)
