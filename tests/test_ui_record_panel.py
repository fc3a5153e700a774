"""The record tab in Python: a recording from the microphone widget is saved, listed, played, deleted; bad input
is refused; "Adapt to my voice" starts a run from the chosen checkpoint and the tab shows its before/after."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asr_poc.runs import Run
from asr_poc.ui.record_panel import RecordPanel
from conftest import TINY_MODEL


@pytest.fixture
def panel(tiny_run: Run, small_corpus: Path, tmp_path: Path):
    overrides = [f"datasets.synthetic.path={small_corpus}", "training.batch_size=8", *TINY_MODEL]
    p = RecordPanel(root=tiny_run.root, overrides=overrides, recordings_path=tmp_path / "rec", background="thread")
    p.refresh()
    yield p
    p.close()


def record(panel: RecordPanel, samples: np.ndarray, chunk: int = 1600) -> None:
    """What the browser sends: start, 100 ms chunks of int16 PCM, stop."""
    panel.mic._handle_message(panel.mic, {"type": "start", "capture_rate": 48000, "engine": "worklet"}, [])
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    for seq, start in enumerate(range(0, len(pcm), chunk)):
        panel.mic._handle_message(panel.mic, {"type": "chunk", "seq": seq}, [pcm[start:start + chunk].tobytes()])
    panel.mic._handle_message(panel.mic, {"type": "stop"}, [])
    panel.flush()


def voice(seconds: float = 1.5, freq: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.3 * np.sin(2 * np.pi * freq * t) * np.sin(2 * np.pi * 3 * t)).astype(np.float32)


def test_a_recording_is_saved_with_its_sentence_listed_played_and_deleted(panel: RecordPanel, tmp_path: Path):
    sentence = panel.sentence.value
    assert len(sentence.split()) >= 4  # a sentence to read is shown at once
    panel.speaker.value = "Anna"
    record(panel, voice())
    clip = panel.last_clip
    assert clip is not None and clip.speaker == "Anna" and clip.text == sentence
    assert (tmp_path / "rec" / "wavs" / f"{clip.id}.wav").is_file()
    assert panel.sentence.value != sentence  # the next sentence is offered
    assert [v for _, v in panel.clips.options] == [clip.id] and panel.clips.value == clip.id
    assert "<b>1</b> clips of Anna" in panel.counts.value

    assert panel.play_selected()[:4] == b"RIFF" and panel.player_box.children == (panel.player,)
    panel.submit(panel.delete_selected).result(timeout=30)
    assert panel.clips.options == () and not (tmp_path / "rec" / "wavs" / f"{clip.id}.wav").exists()
    assert "deleted" in panel.message.value


def test_typed_text_is_kept_and_bad_input_is_refused_without_writing(panel: RecordPanel, tmp_path: Path):
    panel.speaker.value = ""
    record(panel, voice())
    assert "not saved" in panel.message.value and "name is empty" in panel.message.value
    panel.speaker.value = "Bob"
    record(panel, np.zeros(16000, np.float32))
    assert "silent" in panel.message.value
    panel.sentence.value = "   "
    record(panel, voice())
    assert "text is empty" in panel.message.value
    assert not (tmp_path / "rec" / "metadata.csv").exists()
    panel.sentence.value = "my own words here"
    record(panel, voice())
    assert panel.last_clip.text == "my own words here"


def test_adapt_to_my_voice_starts_a_run_and_shows_before_and_after(panel: RecordPanel, tiny_run: Run):
    started = []
    panel.on_adapt = started.append
    panel.submit(panel.adapt).result(timeout=30)
    assert "type your name first" in panel.message.value
    panel.speaker.value = "Cleo"
    for i in range(5):  # clips 1-4 train, clip 5 is held out
        panel.sentence.value = f"cleo reads sentence {'one two three four five'.split()[i]}"
        record(panel, voice(freq=200 + 30 * i))
    assert panel.store.counts("Cleo") == {"train": 4, "dev": 0, "test": 1}
    assert panel.checkpoint.value in (str(tiny_run.best_checkpoint), str(tiny_run.last_checkpoint))
    panel.minutes.value = 0.1
    run = panel.submit(panel.adapt).result(timeout=120)
    assert run is not None and started == [run], panel.message.value
    status = panel.last_handle.wait(timeout=120)
    assert status["state"] == "finished", status
    assert run.config["dataset"] == "mix" and run.config["training"]["init_checkpoint"] == panel.checkpoint.value
    panel.refresh()
    rows = panel.adaptation_rows("Cleo")
    assert [r["run"] for r in rows] == [run.id] and rows[0]["before"]["utterances"] == 1
    assert rows[0]["after"] is not None and run.id in panel.adaptations.value
