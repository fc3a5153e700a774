"""The test panel and the microphone widget in Python: uploads, bad uploads, recorded chunks, live partial text."""
from __future__ import annotations

import datetime
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr_poc.runs import Run
from asr_poc.training.trainer import train
from asr_poc.ui.recorder import MicRecorder
from asr_poc.ui.test_panel import TestPanel, checkpoint_options
from conftest import tiny_config


@pytest.fixture
def panel(tiny_run: Run):
    p = TestPanel(root=tiny_run.root)
    p.whisper_reference.value = False  # Whisper tiny.en is exercised by the comparison test alone
    yield p
    p.close()


def flush(panel: TestPanel) -> None:
    """Wait until the panel's transcription thread has done everything queued so far."""
    panel.submit(lambda: None).result(timeout=60)


def speech_like(seconds: float = 1.5, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 3 * t)).astype(np.float32)


def wav_of(samples: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV")
    return buffer.getvalue()


def upload(panel: TestPanel, name: str, data: bytes) -> None:
    panel.upload.value = ({"name": name, "type": "audio/wav", "size": len(data), "content": memoryview(data),
                           "last_modified": datetime.datetime.now(datetime.timezone.utc)},)
    flush(panel)


def test_lists_only_checkpoints_under_the_runs_folder(panel: TestPanel, tiny_run: Run, tmp_path: Path):
    values = [v for _, v in checkpoint_options(tiny_run.root)]
    assert str(tiny_run.best_checkpoint) in values or str(tiny_run.last_checkpoint) in values
    assert panel.checkpoint.value in values
    outside = tmp_path / "elsewhere.pt"
    outside.write_bytes(tiny_run.last_checkpoint.read_bytes())
    panel.checkpoint.options = [*panel.checkpoint.options, ("outside", str(outside))]
    panel.checkpoint.value = str(outside)
    upload(panel, "a.wav", wav_of(speech_like(), 16000))
    assert "not a checkpoint under" in panel.message.value and panel.last_result is None


def test_an_uploaded_wav_is_transcribed_with_timings_and_playback(panel: TestPanel):
    upload(panel, "hello.wav", wav_of(speech_like(2.0, 22050), 22050))
    result = panel.last_result
    assert result is not None and result["source"] == "hello.wav"
    assert result["audio_seconds"] == pytest.approx(2.0, abs=0.01) and result["compute_seconds"] > 0
    assert "real-time factor" in panel.stats.value and "2.00 s" in panel.stats.value
    assert panel.player.value[:4] == b"RIFF" and panel.player_box.children == (panel.player,)
    assert panel.upload.value == (), "cleared, so the same file can be chosen again"


@pytest.mark.parametrize("data, reason", [(b"", "empty"), (b"this is not audio at all" * 40, "not audio"),
                                          (wav_of(np.zeros(0, dtype=np.float32), 16000), "zero-length")])
def test_a_bad_upload_gets_a_clear_message_and_the_panel_keeps_working(panel: TestPanel, data: bytes, reason: str):
    upload(panel, "bad.wav", data)
    assert "cannot be used" in panel.message.value and reason in panel.message.value
    assert panel.last_result is None
    upload(panel, "good.wav", wav_of(speech_like(), 16000))
    assert panel.last_result is not None and panel.message.value == ""


def send_recording(mic: MicRecorder, audio_int16: np.ndarray, chunk: int = 1600) -> None:
    """What the browser sends: start, 100 ms chunks as binary buffers, stop."""
    mic._handle_message(mic, {"type": "start", "sample_rate": 16000, "capture_rate": 48000,
                              "engine": "AudioWorklet"}, [])
    seq = -1
    for seq, i in enumerate(range(0, len(audio_int16), chunk)):
        mic._handle_message(mic, {"type": "chunk", "seq": seq}, [memoryview(audio_int16[i:i + chunk].tobytes())])
    mic._handle_message(mic, {"type": "stop", "seq": seq + 1}, [])


def test_the_microphone_recording_is_transcribed_when_it_stops(panel: TestPanel):
    audio = (speech_like(1.2) * 32767).astype(np.int16)
    send_recording(panel.mic, audio)
    flush(panel)
    assert np.array_equal(panel.mic.audio, audio) and panel.mic.lost_chunks == 0
    result = panel.last_result
    assert result is not None and result["source"] == "microphone"
    assert result["audio_seconds"] == pytest.approx(1.2, abs=0.01)


@dataclass
class FakeResult:
    text: str
    is_final: bool
    audio_seconds: float
    compute_seconds: float


class FakeSession:
    """Stands for `Transcriber.open_stream()`: records what it was given and says how much it heard."""

    rate = 16000

    def __init__(self):
        self.pushed: list[np.ndarray] = []

    @property
    def audio(self) -> np.ndarray:
        return np.concatenate(self.pushed).astype(np.float32) / 32768

    @property
    def audio_seconds(self) -> float:
        return sum(len(p) for p in self.pushed) / self.rate

    def push(self, pcm: np.ndarray) -> FakeResult:
        self.pushed.append(pcm)
        seconds = sum(len(p) for p in self.pushed) / 16000
        return FakeResult(f"heard {seconds:.1f}", False, seconds, 0.001)

    def finish(self) -> FakeResult:
        seconds = sum(len(p) for p in self.pushed) / 16000
        return FakeResult(f"final {seconds:.1f}", True, seconds, 0.002)


def test_a_streaming_model_shows_partial_text_while_recording(panel: TestPanel, monkeypatch):
    transcriber = panel.session().transcriber
    session = FakeSession()
    monkeypatch.setattr(transcriber, "open_stream", lambda source_rate=None: session, raising=False)
    audio = (speech_like(1.0) * 32767).astype(np.int16)
    mic = panel.mic
    mic._handle_message(mic, {"type": "start"}, [])
    partials = []
    for seq, i in enumerate(range(0, len(audio), 1600)):
        mic._handle_message(mic, {"type": "chunk", "seq": seq}, [memoryview(audio[i:i + 1600].tobytes())])
        if seq < 3:  # the first chunks one by one: each gets its partial text; the rest arrive in a burst
            flush(panel)
            partials.append(panel.transcript.value)
    assert any("heard" in p for p in partials), partials
    mic._handle_message(mic, {"type": "stop"}, [])
    flush(panel)
    assert np.array_equal(np.concatenate(session.pushed), audio), "every sample pushed once, in order"
    assert len(session.pushed) <= 5, "chunks are batched between partial transcripts"
    pushes = len(session.pushed)
    assert "final 1.0" in panel.transcript.value
    assert panel.last_result["compute_seconds"] == pytest.approx(0.001 * pushes + 0.002), \
        "compute of every push and of finish() is summed"


def test_an_empty_recording_and_a_refused_microphone_are_explained(panel: TestPanel):
    send_recording(panel.mic, np.zeros(0, dtype=np.int16))
    flush(panel)
    assert "empty" in panel.message.value
    panel.mic._handle_message(panel.mic, {"type": "error", "message": "microphone permission was refused"}, [])
    assert "permission was refused" in panel.message.value


# --- a reference beside the model ------------------------------------------------------------------------------

def spoken(text: str, tmp_path: Path) -> bytes:
    """`text` spoken by espeak-ng (22,050 Hz WAV bytes): audio PocketSphinx has something to say about."""
    from asr_poc.datasets.synthetic import _espeak, _speak

    _speak(_espeak(), text, "en-us", 150, 50, tmp_path / "spoken.wav")
    return (tmp_path / "spoken.wav").read_bytes()


def test_the_same_clip_goes_through_a_second_checkpoint_and_the_references(panel: TestPanel, tiny_run: Run,
                                                                            small_corpus: Path, tmp_path: Path):
    from asr_poc.audio import load_audio
    from asr_poc.references import PocketSphinx, WhisperTiny

    other = Run.create(tiny_config(small_corpus, tiny_run.root, "training.max_steps=1", "training.seed=7"))
    assert train(other)["state"] == "finished"
    panel.refresh()
    panel.compare_with.value = str(other.last_checkpoint)
    panel.whisper_reference.value = True
    data = spoken("go forward ten meters", tmp_path)
    upload(panel, "go.wav", data)
    rows = panel.last_comparison
    assert [r["name"] for r in rows] == [Path(panel.checkpoint.value).parent.name + " / last.pt",
                                         f"{other.id} / last.pt", "PocketSphinx (reference)",
                                         "Whisper tiny.en (reference)"]
    assert rows[0]["text"] == panel.last_result["text"]
    samples = load_audio(data, 16000)
    assert rows[1]["text"] == panel.session(str(other.last_checkpoint)).transcribe(samples).text
    assert rows[2]["text"] == PocketSphinx().transcribe(samples) and rows[2]["text"]
    assert rows[3]["text"] == WhisperTiny().transcribe(samples) == "go forward ten meters"  # it hears espeak-ng too
    for row in rows:
        assert row["error"] is None and row["compute_seconds"] > 0 and 0 < row["rtf"] < 10
        assert abs(row["audio_seconds"] - len(samples) / 16000) < 0.01
    assert "asr-side-by-side" in panel.comparison.value and "PocketSphinx" in panel.comparison.value

    panel.compare_with.value, panel.reference.value, panel.whisper_reference.value = None, False, False
    upload(panel, "go.wav", data)
    assert panel.last_comparison == [] and panel.comparison.value == ""


def test_a_failing_system_gets_its_error_in_its_row_and_the_others_still_run():
    from asr_poc.bench.side_by_side import run_side_by_side

    def broken(_samples):
        raise RuntimeError("model file is corrupt")

    rows = run_side_by_side(np.zeros(16000, np.float32), [("a", broken), ("b", lambda s: "hello")])
    assert rows[0].error == "RuntimeError: model file is corrupt" and rows[0].rtf is None
    assert rows[1].text == "hello" and rows[1].audio_seconds == 1.0 and rows[1].rtf is not None


def test_the_page_starts_with_the_english_word_lm_when_it_is_built():
    from asr_poc.ui.test_panel import default_decoding

    greedy, english = ("greedy (fastest)", {"method": "greedy"}), ("beam search + English word LM (real speech)", {})
    assert default_decoding([greedy, ("beam search + word LM (lm/)", {}), english]) == 2
    assert default_decoding([greedy]) == 0
