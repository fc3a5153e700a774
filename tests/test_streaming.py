"""Streaming: incremental features and resampling equal their offline versions; the chunked conformer streams exactly
what its chunk-masked offline pass computes; `Transcriber.stream()` / `StreamSession` take chunks of any length,
report latency-relevant facts honestly, and fall back to re-decoding for models that do not stream."""
from __future__ import annotations

import math

import jiwer
import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from asr_poc.audio import AudioError, load_audio
from asr_poc.config import ConfigError, load_config
from asr_poc.inference import REDECODE_SECONDS, StreamResampler, Transcriber
from asr_poc.models.conformer import ConformerConfig, ConformerCTC
from asr_poc.models.streaming import chunk_attention_mask
from asr_poc.models.features import FeatureSpec, LogMel, StreamingLogMel
from asr_poc.models.rnnt import EmformerRNNT, RNNTConfig
from asr_poc.text import CharTokenizer
from test_rnnt import overfit, shortest_utterances

VOCAB = CharTokenizer.from_texts(["the quick brown fox jumps over a lazy dog"]).vocab
TINY_STREAMING = dict(encoder_dim=64, num_heads=2, num_layers=2, ffn_dim=128, kernel_size=7, dropout=0.0,
                      streaming_chunk_ms=160, left_chunks=2)


def conformer(vocab: dict = VOCAB, **overrides) -> ConformerCTC:
    return ConformerCTC({**ConformerConfig(**overrides).model_dump(), "vocab": vocab})


def pieces(wav: torch.Tensor | np.ndarray, size: int) -> list:
    return [wav[i : i + size] for i in range(0, len(wav), size)]


def stream_text(model, wav: torch.Tensor, size: int) -> str:
    state = model.init_stream_state()
    for piece in pieces(wav, size):
        _, state = model.stream_step(piece, state)
    return model.stream_step(torch.zeros(0), state, final=True)[0]


# --- building blocks equal their offline versions -------------------------------------------------------------------
def streamed_features(frontend: LogMel, wav: torch.Tensor) -> torch.Tensor:
    """`StreamingLogMel` over `wav` fed in pieces of awkward sizes, then flushed."""
    streaming = StreamingLogMel(frontend)
    state = streaming.init_state()
    sizes = [1, 7, 160, 399, 401, 1234]
    out, i, k = [], 0, 0
    while i < len(wav):
        out.append(streaming(wav[i : i + sizes[k % len(sizes)]], state))
        i, k = i + sizes[k % len(sizes)], k + 1
    out.append(streaming(torch.zeros(0), state, final=True))
    return torch.cat(out)


@pytest.mark.parametrize("normalize", ["none", "causal"])
@pytest.mark.parametrize("length", [201, 1000, 16037])
def test_streaming_log_mel_equals_the_offline_frontend(length, normalize):
    torch.manual_seed(length)
    frontend = LogMel(FeatureSpec(normalize=normalize)).eval()
    if normalize != "none":
        frontend.prior_mean.uniform_(-6, -2)  # a learned prior, as a checkpoint carries
    wav = torch.randn(length) * 0.1
    offline, frames = frontend(wav[None], torch.tensor([length]))
    out = streamed_features(frontend, wav)
    assert out.shape == offline[0].shape and out.shape[0] == int(frames)
    torch.testing.assert_close(out, offline[0], atol=1e-5, rtol=0)


def speechlike(seconds: float, seed: int = 0) -> torch.Tensor:
    """Bursts of coloured noise and harmonics with pauses: features whose mean changes over time, as speech's do."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * 16000)) / 16000
    tone = sum(torch.sin(2 * math.pi * f * t) / k for k, f in enumerate([140, 280, 420, 700, 1100], 1))
    envelope = (torch.sin(2 * math.pi * 3 * t) > 0).float() * 0.9 + 0.1
    noise = torchaudio.functional.lowpass_biquad(torch.randn(t.shape, generator=g), 16000, 2000.0)
    return 0.05 * envelope * (tone + noise)


@pytest.mark.parametrize("normalize", ["utterance", "causal"])
def test_normalization_removes_a_constant_gain(normalize):
    """x and 3x (+9.5 dB) give the same features: exactly for `utterance`, to within prior_frames/(prior_frames+t)
    of the offset for `causal` (the prior carries no gain), and not at all without normalization."""
    wav = speechlike(3.0)
    lengths = torch.tensor([wav.numel()])
    for mode in (normalize, "none"):
        frontend = LogMel(FeatureSpec(normalize=mode, prior_frames=20)).eval()
        quiet, _ = frontend(wav[None], lengths)
        loud, _ = frontend(3 * wav[None], lengths)
        offset = math.log10(9) / 4  # 3x amplitude = 9x power: +0.954 in log10, /4
        gap = (loud - quiet)[0].abs().mean(-1)  # per frame
        if mode == "none":
            torch.testing.assert_close(gap, torch.full_like(gap, offset), atol=1e-3, rtol=0)
        elif mode == "utterance":
            assert float(gap.max()) < 1e-4
        else:
            t = torch.arange(gap.numel())
            assert bool((gap <= offset * 20 / (20 + t + 1) + 1e-4).all())
            assert float(gap[-1]) < 0.07 * offset  # 20 prior frames against 300 heard


def test_utterance_normalization_streams_approximately():
    """`utterance` cannot be streamed exactly (it needs the future): streaming uses the causal running mean.

    The streamed frames drift from the offline ones by a mean that shrinks as the stream goes on; we state the
    size here (prior = this utterance's first-second mean, as a trained prior approximates speech's)."""
    wav = speechlike(4.0, seed=1)
    frontend = LogMel(FeatureSpec(normalize="utterance")).eval()
    offline, _ = frontend(wav[None], torch.tensor([wav.numel()]))
    frontend.prior_mean.copy_(frontend.log_mel(wav[None, :16000])[0].mean(-1))
    streamed = streamed_features(frontend, wav)
    assert streamed.shape == offline[0].shape
    error = (streamed - offline[0]).abs().mean(-1)  # per frame, in normalized units (log10 / 4)
    assert float(error[:100].mean()) < 0.2 and float(error[-100:].mean()) < 0.05
    assert float(error[-100:].mean()) < float(error[:100].mean())


def test_prior_mean_learns_the_training_data_level_and_none_has_no_buffer():
    none = LogMel(FeatureSpec())
    assert "prior_mean" not in none.state_dict()  # checkpoints from before normalization load unchanged
    frontend = LogMel(FeatureSpec(normalize="causal")).train()
    wav = speechlike(1.0)
    target = frontend.log_mel(wav[None])[0].mean(-1)
    for _ in range(600):
        frontend(wav[None], torch.tensor([wav.numel()]))
    torch.testing.assert_close(frontend.prior_mean, target, atol=0.02, rtol=0)
    before = frontend.prior_mean.clone()
    frontend.eval()(3 * wav[None], torch.tensor([wav.numel()]))
    assert torch.equal(frontend.prior_mean, before)  # evaluation leaves it alone


@pytest.mark.parametrize("rate", [48000, 44100, 22050, 8000])
def test_stream_resampler_equals_offline_resampling(rate):
    wav = torch.randn(rate // 3 + 17)
    resampler = StreamResampler(rate, 16000)
    out = torch.cat([resampler(p) for p in pieces(wav, 997)] + [resampler(torch.zeros(0), final=True)])
    torch.testing.assert_close(out, torchaudio.functional.resample(wav, rate, 16000), atol=1e-4, rtol=0)


def test_chunk_mask_sees_its_chunk_and_left_chunks_never_the_future():
    mask = ~chunk_attention_mask(torch.tensor([6]), 6, chunk=2, left_chunks=1, num_heads=1)[0]  # True = may attend
    expected = torch.tensor([[1, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 0, 0],
                             [0, 0, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(mask, expected)
    padded = ~chunk_attention_mask(torch.tensor([3]), 4, chunk=None, left_chunks=None, num_heads=2)
    assert padded.shape == (2, 4, 4) and not padded[0, :3, 3].any() and padded[0, 3, 3]  # padding: only itself


# --- the conformer's streaming mode --------------------------------------------------------------------------------
def test_streaming_mode_is_off_by_default_and_keeps_the_same_weights():
    cfg = load_config(None, [], check_data=False)
    assert cfg["models"]["conformer"]["streaming_chunk_ms"] is None
    plain, streaming = conformer(), conformer(streaming_chunk_ms=160)
    assert not plain.streaming and streaming.streaming and plain.algorithmic_latency_ms is None
    assert plain.state_dict().keys() == streaming.state_dict().keys()  # one checkpoint format for both modes
    assert streaming.chunk_ms == 160 and streaming.algorithmic_latency_ms == pytest.approx(162.5)


@pytest.mark.parametrize("override, message", [
    ("models.conformer.streaming_chunk_ms=100", "models.conformer: streaming_chunk_ms (100) must be a multiple of 40"),
    ("models.conformer.streaming_chunk_ms=20", "models.conformer.streaming_chunk_ms = 20: Input should be greater"),
    ("models.conformer.left_chunks=-1", "models.conformer.left_chunks = -1: Input should be greater than or equal"),
])
def test_streaming_config_errors_name_the_key(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override], check_data=False)
    assert any(line.startswith(message) for line in err.value.problems), err.value.problems


@pytest.mark.parametrize("subsampling, chunk_ms, left_chunks", [(4, 160, 2), (4, 80, None), (8, 320, 1), (4, 160, 0)])
def test_conformer_streaming_computes_exactly_the_chunk_masked_offline_pass(subsampling, chunk_ms, left_chunks):
    torch.manual_seed(0)
    model = conformer(**{**TINY_STREAMING, "subsampling": subsampling, "streaming_chunk_ms": chunk_ms,
                         "left_chunks": left_chunks}).eval()
    wav = torch.randn(23457) * 0.1
    with torch.no_grad():
        offline, _ = model.encode(wav[None], torch.tensor([wav.numel()]), chunk=model.chunk_frames)
    logits = []
    hook = model.head.register_forward_hook(lambda module, inputs, output: logits.append(output))
    try:
        stream_text(model, wav, 1111)
    finally:
        hook.remove()
    torch.testing.assert_close(torch.cat(logits, dim=1), offline, atol=1e-4, rtol=0)


@pytest.fixture(scope="module")
def streaming_conformer(small_corpus):
    """A tiny streaming conformer (dynamic chunk training) overfitted on the four shortest training utterances."""
    items = shortest_utterances(small_corpus)
    torch.manual_seed(0)
    model = conformer(**TINY_STREAMING, vocab=CharTokenizer.from_texts([it["text"] for it in items]).vocab)
    losses = overfit(model, items, steps=60, lr=3e-3)
    assert losses[-1] < 0.5 * losses[0], losses[::10]
    return model.eval(), items


def test_trained_streaming_conformer_streams_its_offline_chunked_transcript(streaming_conformer):
    model, items = streaming_conformer
    texts = []
    for item in items:
        wav = item["waveform"]
        chunked = model.transcribe(wav[None], torch.tensor([wav.numel()]), chunk=model.chunk_frames)[0]
        for size in (1999, wav.numel()):
            assert stream_text(model, wav, size) == chunked
        texts.append((chunked, model.inference(wav), item["text"]))
    assert sum(bool(c) for c, _, _ in texts) >= 3, texts
    # the same weights decode with full context too (dynamic chunk training), and agree closely with streaming
    assert jiwer.cer([f for _, f, _ in texts], [c for c, _, _ in texts]) <= 0.35, texts


# --- Transcriber.stream / StreamSession ----------------------------------------------------------------------------
def test_chunks_of_any_length_give_the_same_final_text(streaming_conformer):
    model, items = streaming_conformer
    transcriber = Transcriber(model)
    wav = items[0]["waveform"].numpy()
    finals = set()
    for size in (1, 2560, 4001, len(wav)):
        chunks = pieces(wav[:3000], size) + pieces(wav[3000:], 4001) if size == 1 else pieces(wav, size)
        results = list(transcriber.stream(chunks))  # sample by sample past the first chunk (2600 samples)
        assert [r.is_final for r in results] == [False] * (len(results) - 1) + [True]
        assert results[-1].audio_seconds == pytest.approx(len(wav) / 16000)
        assert all(a.audio_seconds <= b.audio_seconds for a, b in zip(results, results[1:]))
        assert all(results[-1].text.startswith(r.text) for r in results)  # greedy CTC text only grows
        finals.add(results[-1].text)
    assert len(finals) == 1 and finals.pop()


def test_int16_pcm_at_another_rate_equals_float_at_the_model_rate(streaming_conformer, tmp_path):
    model, items = streaming_conformer
    transcriber = Transcriber(model)
    path = tmp_path / "a.wav"
    sf.write(path, items[1]["waveform"].numpy(), 16000)
    pcm = (load_audio(path, 44100) * 32767).astype(np.int16)  # what a browser microphone sends
    from_int16 = list(transcriber.stream(pieces(pcm, 4410), source_rate=44100))[-1].text
    reference = list(transcriber.stream([load_audio(pcm, 16000, source_rate=44100)]))[-1].text
    assert from_int16 == reference and from_int16


def test_a_chunk_is_decoded_as_soon_as_its_algorithmic_latency_has_passed():
    torch.manual_seed(0)
    rnnt = EmformerRNNT({**RNNTConfig(num_layers=1).model_dump(), "vocab": VOCAB}).eval()
    conf = conformer(**TINY_STREAMING).eval()
    for model, last_module in [(conf, conf.head), (rnnt, rnnt.model.transcriber.output_linear)]:
        runs = []
        hook = last_module.register_forward_hook(lambda module, inputs, output: runs.append(1))
        session = Transcriber(model).open_stream()
        needed = round(model.algorithmic_latency_ms * 16000 / 1000)  # 2600 samples (conformer), 3240 (rnn-t)
        session.push(np.full(needed - 1, 0.01, dtype=np.float32))
        assert not runs
        session.push(np.full(1, 0.01, dtype=np.float32))
        assert len(runs) == 1
        hook.remove()


def test_non_streaming_decoding_falls_back_to_re_decoding_every_half_second(streaming_conformer, monkeypatch):
    model, items = streaming_conformer
    transcriber = Transcriber(model)
    wav = torch.cat([items[2]["waveform"], items[3]["waveform"]]).numpy()  # about 3 s
    offline = transcriber.transcribe(wav).text  # full context: what the fallback re-decodes
    decoded = []  # lengths of the audio each re-decoding saw
    inference = model.inference
    monkeypatch.setattr(model, "inference", lambda w: decoded.append(len(w)) or inference(w))
    results = list(transcriber.stream(pieces(wav, 1600), incremental=False))  # 0.1 s pieces
    assert results[-1].is_final and results[-1].text == offline and offline
    assert len(decoded) == math.floor(len(wav) / 16000 / REDECODE_SECONDS) + 1  # every 0.5 s, then the final one
    assert decoded[:2] == [8000, 16000] and decoded[-1] == len(wav)
    assert any(r.text for r in results[:-1])  # partial text before the end
    with pytest.raises(ValueError, match="does not stream"):
        Transcriber(conformer()).open_stream(incremental=True)


def test_stream_errors_are_clear():
    transcriber = Transcriber(conformer(**TINY_STREAMING).eval())
    session = transcriber.open_stream()
    with pytest.raises(AudioError, match="1-D"):
        session.push(np.zeros((100, 2), dtype=np.float32))
    with pytest.raises(AudioError, match="NaN"):
        session.push(np.array([0.0, np.nan], dtype=np.float32))
    session.push(np.zeros(100, dtype=np.int16), source_rate=48000)
    with pytest.raises(AudioError, match="source_rate changed"):
        session.push(np.zeros(100, dtype=np.int16), source_rate=16000)
    final = session.finish()
    assert final.is_final and final.text == ""
    with pytest.raises(RuntimeError, match="finished"):
        session.push(np.zeros(10, dtype=np.float32))
    assert list(transcriber.stream([]))[-1].text == ""


def test_the_trainer_trains_a_streaming_conformer_with_dynamic_chunks(small_corpus, tmp_path):
    from asr_poc.runs import Run
    from asr_poc.training.trainer import train
    from conftest import tiny_config

    run = Run.create(tiny_config(small_corpus, tmp_path, "models.conformer.streaming_chunk_ms=320",
                                 "training.max_steps=3", "training.eval_utterances=2"))
    assert train(run)["state"] == "finished"
    transcriber = Transcriber.from_checkpoint(run.path / "last.pt")
    assert transcriber.model.streaming and transcriber.model.chunk_ms == 320
    wav = load_audio(sorted((small_corpus / "wavs").glob("*.wav"))[0], 16000)
    results = list(transcriber.stream(pieces(wav, 1000)))
    assert results[-1].is_final and isinstance(results[-1].text, str) and len(results) == math.ceil(len(wav) / 1000) + 1
