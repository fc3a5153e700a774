"""The recordings store (add, list, delete, per-speaker split, refusals) and the `recordings` and `mix` plugins."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr_poc.datasets.recordings import RecordingError, RecordingsDataset, RecordingStore

RATE = 16000
WORDS = "zero one two three four five six seven eight nine".split()


def tone(seconds: float = 1.0, rate: int = RATE, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (level * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def files_of(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_add_writes_the_ljspeech_layout_and_the_loader_reads_it(tmp_path: Path):
    store = RecordingStore(tmp_path)
    clip = store.add(tone(1.0, 48000), "The cat sat, on the mat!", "Anna Lee", source_rate=48000)
    assert clip.id == "anna-lee-0001" and clip.split == "train" and clip.speaker == "Anna Lee"
    data, rate = sf.read(clip.path)
    assert rate == RATE and data.ndim == 1 and abs(len(data) / RATE - 1.0) < 0.01
    assert (tmp_path / "metadata.csv").read_text() == "anna-lee-0001|The cat sat, on the mat!|the cat sat on the mat\n"
    assert (tmp_path / "speakers.csv").read_text() == "anna-lee-0001|Anna Lee\n"
    assert (tmp_path / "splits.csv").read_text() == "anna-lee-0001|train\n"
    dataset = RecordingsDataset({"path": str(tmp_path), "sample_rate": RATE}, "train")
    assert len(dataset) == 1 and dataset[0]["text"] == "the cat sat on the mat"
    assert dataset[0]["waveform"].shape[0] == len(data)


def test_every_fifth_clip_of_each_speaker_is_test_and_deleting_moves_nothing(tmp_path: Path):
    store = RecordingStore(tmp_path)
    for i in range(10):
        store.add(tone(), f"sentence number {WORDS[i]}", "anna")
    for i in range(5):
        store.add(tone(), f"other {WORDS[i]}", "bob")
    assert store.counts("anna") == {"train": 8, "dev": 0, "test": 2}
    assert store.counts("bob") == {"train": 4, "dev": 0, "test": 1}
    assert [r.id for r in store.list("anna") if r.split == "test"] == ["anna-0005", "anna-0010"]
    assert store.speakers() == ["anna", "bob"]
    store.delete("anna-0003")
    assert not (tmp_path / "wavs" / "anna-0003.wav").exists()
    assert [r.id for r in store.list("anna") if r.split == "test"] == ["anna-0005", "anna-0010"]
    assert store.add(tone(), "one more", "anna").id == "anna-0011"
    only_bob = RecordingsDataset({"path": str(tmp_path), "speakers": ["bob"]}, "test")
    assert [u.id for u in only_bob.items] == ["bob-0005"]
    assert len(RecordingsDataset({"path": str(tmp_path)}, "test")) == 3


@pytest.mark.parametrize("audio, text, speaker, message", [
    (np.zeros(0, np.float32), "hello there", "anna", "zero-length"),
    (tone(0.2), "hello there", "anna", "at least"),
    (tone(31.0), "hello there", "anna", "limit"),
    (np.zeros(RATE, np.float32), "hello there", "anna", "silent"),
    (tone(), "  ?! ", "anna", "text is empty"),
    (tone(), "I have 3 cats", "anna", "digits"),
    (tone(), "hello there", "", "name is empty"),
    (tone(), "hello there", "../../etc", "speaker name"),
    (tone(), "hello there", "anna|x", "speaker name"),
    (b"not audio at all", "hello there", "anna", "cannot be used"),
])
def test_bad_input_is_refused_in_one_line_and_writes_nothing(tmp_path: Path, audio, text, speaker, message):
    store = RecordingStore(tmp_path)
    store.add(tone(), "a clip already there", "anna")
    before = files_of(tmp_path)
    with pytest.raises(RecordingError, match=message) as err:
        store.add(audio, text, speaker)
    assert "\n" not in str(err.value)
    assert files_of(tmp_path) == before


def test_deleting_an_unknown_clip_is_an_error(tmp_path: Path):
    with pytest.raises(RecordingError, match="no recording 'nobody-0001'"):
        RecordingStore(tmp_path).delete("nobody-0001")


def test_mix_repeats_parts_and_takes_dev_from_the_named_part(tmp_path: Path, small_corpus: Path):
    from asr_poc.config import load_config
    from asr_poc.plugins import load_dataset

    store = RecordingStore(tmp_path / "rec")
    for i in range(5):
        store.add(tone(), f"my sentence {WORDS[i]}", "anna")
    mix = [f"datasets.mix.parts=[{{name: synthetic, path: {small_corpus}}}, "
           f"{{name: recordings, path: {tmp_path / 'rec'}, repeat: 3}}]", "dataset=mix"]
    cfg = load_config(None, mix)
    section = cfg["datasets"]["mix"]
    synthetic_train = load_dataset("synthetic", {"path": str(small_corpus)}, "train")
    train = load_dataset("mix", section, "train")
    assert len(train) == len(synthetic_train) + 3 * 4
    assert train[len(train) - 1]["text"] == "my sentence three"
    assert train.texts().count("my sentence zero") == 3
    dev = load_dataset("mix", section, "dev")
    assert [item["id"] for item in dev] == ["anna-0005"]

    with pytest.raises(Exception, match="eval_part 'nope'"):
        load_config(None, mix + ["datasets.mix.eval_part=nope"])
    with pytest.raises(Exception, match="part 'recordings'"):
        load_config(None, [f"datasets.mix.parts=[{{name: recordings, path: {tmp_path / 'none'}}}]", "dataset=mix"])
