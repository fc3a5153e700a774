"""Streaming whisper-ctc: chunked attention, a causal log-mel floor and cached attention, so that a stream gives the
chunked pass's frames exactly; and a student that starts from a full-context teacher and learns from it.

Tiny random Whisper encoders (written in the CTranslate2 format by `test_whisper_ctc.write_ctranslate2`) keep it
fast and offline.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchaudio

from asr_poc.config import ConfigError
from asr_poc.inference import Transcriber
from asr_poc.models.interface import BaseASRModel
from asr_poc.models.spec import model_spec
from asr_poc.models.whisper_ctc import WhisperCTC
from asr_poc.models.whisper_encoder import EncoderDims, WhisperEncoder, WhisperLogMel
from asr_poc.models.whisper_stream import StreamingWhisperLogMel
from asr_poc.runs import Run
from asr_poc.text import CharTokenizer
from asr_poc.training.trainer import train
from test_whisper_ctc import whisper_config, write_ctranslate2

STREAMING = ["models.whisper-ctc.streaming_chunk_ms=160"]


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return write_ctranslate2(tmp_path_factory.mktemp("tiny-whisper-stream") / "model.bin",
                             WhisperEncoder(EncoderDims(n_mels=80, width=64, heads=2, layers=2)))


def speech_like(seconds: float, seed: int = 0) -> torch.Tensor:
    """Noise shaped by a slow envelope: loud and quiet stretches, as speech has (the floor then matters)."""
    g = torch.Generator().manual_seed(seed)
    n = int(16000 * seconds)
    envelope = (torch.sin(torch.linspace(0, 12, n)) ** 2) * torch.linspace(0.2, 1.0, n)
    return torch.randn(n, generator=g) * 0.1 * envelope


def streaming_model(weights: Path, corpus: Path, root: Path, *overrides: str) -> WhisperCTC:
    cfg = whisper_config(corpus, root, weights, *STREAMING, *overrides)
    return WhisperCTC(model_spec(cfg, CharTokenizer.from_texts(["a stream of words"]).vocab)).eval()


def streamed_logits(model: WhisperCTC, wav: torch.Tensor, sizes: list[int]) -> tuple[torch.Tensor, str]:
    """Push `wav` in pieces of the given sizes (cycled); the logits of every chunk and the final text."""
    pieces, original = [], model._encode_chunk
    model._encode_chunk = lambda x, state: pieces.append(original(x, state)) or pieces[-1]
    state, start, i = model.init_stream_state(), 0, 0
    while start < wav.numel():
        _, state = model.stream_step(wav[start : start + sizes[i % len(sizes)]], state)
        start, i = start + sizes[i % len(sizes)], i + 1
    text, _ = model.stream_step(torch.zeros(0), state, final=True)
    del model._encode_chunk
    return torch.cat(pieces, dim=1)[0], text


def test_the_log_mel_of_a_stream_is_the_causal_log_mel_of_the_whole() -> None:
    mel = WhisperLogMel(causal=True)
    stream = StreamingWhisperLogMel(mel.filters, mel.window)
    for n, sizes in ((24_117, [1000]), (16_000, [160, 333, 4000]), (5_000, [7]), (150, [150])):
        wav = speech_like(n / 16000, seed=n)
        state, parts, start, i = stream.init_state(), [], 0, 0
        while start < n:
            parts.append(stream(wav[start : start + sizes[i % len(sizes)]], state))
            start, i = start + sizes[i % len(sizes)], i + 1
        parts.append(stream(torch.zeros(0), state, final=True))
        got = torch.cat(parts)
        if n <= 200:  # shorter than half a window: the offline STFT cannot read it either
            assert got.shape[0] == 0
            continue
        whole, frames = mel(wav[None], torch.tensor([n]))
        assert got.shape[0] == int(frames[0]), n
        torch.testing.assert_close(got, whole[0, :, : int(frames[0])].T, atol=1e-4, rtol=0)
    # the causal floor differs from whisper's only where a frame is quieter than 80 dB below the loudest to come
    quiet_then_loud = torch.cat([speech_like(0.5) * 1e-5, speech_like(0.5)])
    causal, _ = mel(quiet_then_loud[None], torch.tensor([16000]))
    offline, _ = WhisperLogMel()(quiet_then_loud[None], torch.tensor([16000]))
    assert torch.equal(causal[..., 60:], offline[..., 60:]) and not torch.equal(causal[..., :40], offline[..., :40])


@pytest.mark.parametrize("left_chunks", [None, 1])
def test_a_stream_gives_the_chunked_pass_frame_for_frame(tiny_weights, small_corpus, tmp_path, left_chunks) -> None:
    extra = [] if left_chunks is None else [f"models.whisper-ctc.left_chunks={left_chunks}"]
    model = streaming_model(tiny_weights, small_corpus, tmp_path, *extra)
    assert model.streaming and model.chunk_frames == 8 and model.algorithmic_latency_ms == 190.0
    wav = speech_like(2.37)
    with torch.inference_mode():
        logits, frames = model.encode(wav[None], torch.tensor([wav.numel()]))
    for sizes in ([1234], [160, 4099, 17], [wav.numel()]):
        streamed, text = streamed_logits(model, wav, sizes)
        assert streamed.shape[0] == int(frames[0]) == 119
        torch.testing.assert_close(streamed, logits[0], atol=1e-4, rtol=0)
        assert text == model.transcribe(wav[None], torch.tensor([wav.numel()]))[0]
    # chunked attention: the first chunk's frames do not change with what comes after them; full context's would
    with torch.inference_mode():
        shorter, _ = model.encode(wav[None, :16000], torch.tensor([16000]))
    torch.testing.assert_close(shorter[0, :8], logits[0, :8], atol=1e-4, rtol=0)


def test_a_student_starts_from_its_teacher_learns_from_it_and_streams(tiny_weights, small_corpus, tmp_path) -> None:
    teacher_run = Run.create(whisper_config(small_corpus, tmp_path, tiny_weights, "training.max_steps=6",
                                            "models.whisper-ctc.train_layers=2"))
    assert train(teacher_run)["state"] == "finished", teacher_run.status
    teacher = BaseASRModel.from_checkpoint(teacher_run.last_checkpoint)

    student_settings = [f"models.whisper-ctc.teacher={teacher_run.last_checkpoint}", "models.whisper-ctc.train_layers=1",
                        "models.whisper-ctc.encoder_layers=1", "models.whisper-ctc.distill_weight=0.7"]
    fresh = streaming_model(tiny_weights, small_corpus, tmp_path, *student_settings)
    assert fresh.tokenizer.vocab == teacher.tokenizer.vocab  # the teacher's vocabulary, not the config's texts
    assert len(fresh.encoder.blocks) == 1 and fresh.spec.extra["encoder_dims"]["layers"] == 1
    for mine, theirs in ((fresh.encoder.blocks[0], teacher.encoder.blocks[0]), (fresh.head, teacher.head)):
        for name, tensor in theirs.state_dict().items():
            torch.testing.assert_close(mine.state_dict()[name], tensor, msg=name)

    run = Run.create(whisper_config(small_corpus, tmp_path, tiny_weights, *STREAMING, *student_settings,
                                    "training.max_steps=16", "training.learning_rate=0.01"))
    assert train(run)["state"] == "finished", run.status
    losses = [e["loss"] for e in run.events("step")]
    assert np.mean(losses[-4:]) < np.mean(losses[:4]), losses
    saved = torch.load(run.last_checkpoint, map_location="cpu", weights_only=False)
    assert not any("teacher" in key for key in saved["state_dict"]), "the teacher's weights are not the student's"

    away = Path(teacher_run.last_checkpoint).with_suffix(".away")
    Path(teacher_run.last_checkpoint).rename(away)  # the student decodes without its teacher
    transcriber = Transcriber.from_checkpoint(run.last_checkpoint)
    assert transcriber.model.streaming
    wav = speech_like(1.9, seed=3).numpy()
    whole = transcriber.transcribe(wav)
    results = list(transcriber.stream(np.array_split(wav, 7)))
    assert results[-1].is_final and results[-1].text == whole.text

    # the Test tab's path: the application layer's session, a 48 kHz browser stream in 100 ms pieces
    from asr_poc.app.recognition import open_session

    session = open_session(run.last_checkpoint)
    assert session.streams
    browser = torchaudio.functional.resample(torch.from_numpy(wav), 16000, 48000).numpy()
    live = session.open_stream(source_rate=48000)
    partial_calls = [live.feed(browser[i : i + 4800]) for i in range(0, len(browser), 4800)]
    assert all(not r.is_final for r in partial_calls)
    assert live.finish().text == session.transcribe(browser, source_rate=48000).text


def test_bad_streaming_settings_are_refused(tiny_weights, small_corpus, tmp_path) -> None:
    with pytest.raises(ConfigError, match="multiple of 20"):
        whisper_config(small_corpus, tmp_path, tiny_weights, "models.whisper-ctc.streaming_chunk_ms=150")
    run = Run.create(whisper_config(small_corpus, tmp_path, tiny_weights, *STREAMING, "training.max_steps=2",
                                    f"models.whisper-ctc.teacher={tmp_path / 'no-teacher.pt'}"))
    status = train(run)
    assert status["state"] == "failed" and "no-teacher.pt" in status["error"]
