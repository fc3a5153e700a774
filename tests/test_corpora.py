"""Real corpora by name: LibriSpeech and Common Voice in their own layouts, and any lhotse recipe's manifests or Shar.

Each corpus is a tiny folder made here in the real layout (tones stand in for speech): the tests show that it
loads by name, splits, gives float32 waveforms at the configured rate and normalized text, feeds the training
loader, and that a missing folder or a bad file is a one-line error that names it.
"""
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from asr_poc.config import load_config
from asr_poc.datasets.bucketing import make_batch_sampler
from asr_poc.datasets.interface import collate_fn
from asr_poc.plugins import load_dataset

RATE = 16000
LIBRI_PARTS = {"train-clean-100": [("19", "198"), ("26", "495")], "dev-clean": [("84", "121123")],
               "test-clean": [("61", "70968")]}


def tone(seconds: float, rate: int = RATE, hz: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


@pytest.fixture
def librispeech(tmp_path) -> Path:
    """LibriSpeech/<part>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt + .flac, two utterances a chapter."""
    root = tmp_path / "LibriSpeech"
    for part, chapters in LIBRI_PARTS.items():
        for speaker, chapter in chapters:
            folder = root / part / speaker / chapter
            folder.mkdir(parents=True)
            lines = []
            for n, seconds in enumerate((0.5, 1.0)):
                uid = f"{speaker}-{chapter}-{n:04d}"
                sf.write(folder / f"{uid}.flac", tone(seconds), RATE)
                lines.append(f"{uid} HELLO WORLD'S {part.upper()} NUMBER {n}")
            (folder / f"{speaker}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    return root


def libri_config(root: Path, tmp_path: Path, **extra) -> dict:
    return {"path": str(root), "sample_rate": 8000, "manifest_dir": str(tmp_path / "manifests"), "num_jobs": 1,
            **extra}


CV_HEADER = "\t".join(["client_id", "path", "sentence_id", "sentence", "sentence_domain", "up_votes", "down_votes", "age",
                       "gender", "accents", "variant", "locale", "segment"])  # Common Voice 17's columns


@pytest.fixture
def commonvoice(tmp_path) -> Path:
    """cv-corpus/en/clips/*.mp3 (48 kHz, via FFmpeg) + train.tsv, dev.tsv, test.tsv with the release's columns."""
    root = tmp_path / "cv-corpus" / "en"
    (root / "clips").mkdir(parents=True)
    wav = tmp_path / "tone.wav"
    sf.write(wav, tone(1.0, 48000), 48000)
    for split, count in (("train", 3), ("dev", 1), ("test", 1)):
        rows = [CV_HEADER]
        for n in range(count):
            clip = f"common_voice_en_{split}_{n}.mp3"
            subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(wav), str(root / "clips" / clip)],
                           check=True)
            rows.append(f"speaker{n}\t{clip}\tx\t\"Café\" — it's {split} No. {n}!\t\t2\t0\t\t\t\t\ten\t")
        (root / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    return root


def check_items(ds, rate: int, seconds: set[float]) -> None:
    """Every item: a float32 mono tensor at `rate` lasting one of `seconds`, and a normalized transcript."""
    for i in range(len(ds)):
        item = ds[i]
        assert item["waveform"].dtype == torch.float32 and item["waveform"].ndim == 1
        assert min(abs(len(item["waveform"]) - s * rate) for s in seconds) <= rate * 0.03
        assert item["text"] == item["text"].lower() and not set(item["text"]) - set("abcdefghijklmnopqrstuvwxyz' ")


def test_librispeech_loads_each_split_by_name(librispeech, tmp_path):
    cfg = libri_config(librispeech, tmp_path)
    train, dev, test = (load_dataset("librispeech", cfg, s) for s in ("train", "dev", "test"))
    assert sorted(u.id for u in train.items) == ["19-198-0000", "19-198-0001", "26-495-0000", "26-495-0001"]
    assert [u.id for u in dev.items] == ["84-121123-0000", "84-121123-0001"]
    assert len(test) == 2
    check_items(train, 8000, {0.5, 1.0})
    assert dev[0]["text"] == "hello world's dev clean number"  # digits dropped by the default text settings
    assert sorted(train.durations()) == [0.5, 0.5, 1.0, 1.0]


def test_librispeech_parts_are_scanned_once_and_cached(librispeech, tmp_path):
    cfg = libri_config(librispeech, tmp_path)
    load_dataset("librispeech", cfg, "dev")
    cached = list((tmp_path / "manifests").glob("librispeech-*_cuts_dev-clean.jsonl.gz"))
    assert len(cached) == 1
    (librispeech / "dev-clean" / "84" / "121123" / "84-121123.trans.txt").write_text("84-121123-0000 CHANGED\n")
    assert len(load_dataset("librispeech", cfg, "dev")) == 2  # read from the cache, not rescanned
    # ... which is itself a lhotse manifest folder that the generic loader reads
    generic = load_dataset("lhotse", {"path": str(tmp_path / "manifests"), "split_names": {"train": "dev-clean"}},
                           "train")
    assert {u.id for u in generic.items} <= {"84-121123-0000", "84-121123-0001"}


def test_librispeech_several_parts_make_one_split(librispeech, tmp_path):
    cfg = libri_config(librispeech, tmp_path, split_names={"train": ["train-clean-100", "dev-clean"], "dev": [],
                                                            "test": ["test-clean"]})
    train, dev = load_dataset("librispeech", cfg, "train"), load_dataset("librispeech", cfg, "dev")
    assert len(train) + len(dev) == 6 and not {u.id for u in train.items} & {u.id for u in dev.items}


def test_librispeech_errors_are_one_line_and_name_the_place(librispeech, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"librispeech corpus folder not found: .*nowhere"):
        load_dataset("librispeech", libri_config(tmp_path / "nowhere", tmp_path), "train")
    with pytest.raises(FileNotFoundError, match=r"librispeech: no dev-other in .*LibriSpeech \(download"):
        load_dataset("librispeech", libri_config(librispeech, tmp_path, split_names={"dev": "dev-other"}), "dev")
    (librispeech / "test-clean" / "61" / "70968" / "61-70968-0001.flac").write_bytes(b"not audio at all" * 100)
    with pytest.raises(ValueError) as info:
        load_dataset("librispeech", libri_config(librispeech, tmp_path), "test")
    message = str(info.value)
    assert "\n" not in message and len(message) < 300
    assert message.startswith("librispeech ") and "unreadable audio file" in message and "61-70968-0001.flac" in message


def test_commonvoice_loads_mp3_clips_by_split(commonvoice, tmp_path):
    cfg = {"path": str(commonvoice), "manifest_dir": str(tmp_path / "manifests"), "num_jobs": 2}
    train, dev, test = (load_dataset("commonvoice", cfg, s) for s in ("train", "dev", "test"))
    assert sorted(u.id for u in train.items) == [f"common_voice_en_train_{n}" for n in range(3)]
    assert [u.id for u in dev.items] == ["common_voice_en_dev_0"] and len(test) == 1
    check_items(train, 16000, {1.0})  # 48 kHz MP3 -> 16 kHz
    assert dev[0]["text"] == "cafe it's dev no"
    # the release folder with `language` is the same corpus
    same = load_dataset("commonvoice", {**cfg, "path": str(commonvoice.parent), "language": "en"}, "dev")
    assert [u.id for u in same.items] == ["common_voice_en_dev_0"]
    # another language of the release has cuts of its own (not the cached English ones)
    shutil.copytree(commonvoice, commonvoice.parent / "fr")
    (commonvoice.parent / "fr" / "dev.tsv").write_text(f"{CV_HEADER}\nx\tcommon_voice_en_test_0.mp3\tx\tBonjour\n")
    french = load_dataset("commonvoice", {**cfg, "path": str(commonvoice.parent), "language": "fr"}, "dev")
    assert [(u.id, u.text) for u in french.items] == [("common_voice_en_test_0", "Bonjour")]


def test_commonvoice_errors_are_one_line(commonvoice, tmp_path):
    cfg = {"path": str(commonvoice), "manifest_dir": None, "num_jobs": 1}
    (commonvoice / "dev.tsv").write_text("client_id\tfile\ttext\nx\ta.mp3\thello\n")
    with pytest.raises(ValueError, match=r"^commonvoice .*dev\.tsv: no column path, sentence in the header"):
        load_dataset("commonvoice", cfg, "dev")
    (commonvoice / "clips" / "common_voice_en_test_0.mp3").write_bytes(b"\xff\xfb" + b"junk" * 50)
    with pytest.raises(ValueError, match=r"unreadable audio file .*common_voice_en_test_0\.mp3") as info:
        load_dataset("commonvoice", cfg, "test")
    assert "\n" not in str(info.value)
    with pytest.raises(FileNotFoundError, match=r"^commonvoice corpus folder not found: .*nowhere"):
        load_dataset("commonvoice", {**cfg, "path": str(tmp_path / "nowhere")}, "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"^commonvoice: no train\.tsv in .*empty \(download"):
        load_dataset("commonvoice", {**cfg, "path": str(tmp_path / "empty")}, "train")


def test_commonvoice_leaves_out_clips_that_are_not_there(commonvoice, tmp_path):
    (commonvoice / "clips" / "common_voice_en_train_1.mp3").unlink()
    train = load_dataset("commonvoice", {"path": str(commonvoice), "manifest_dir": None, "num_jobs": 1}, "train")
    assert sorted(u.id for u in train.items) == ["common_voice_en_train_0", "common_voice_en_train_2"]


def lhotse_recipe_output(folder: Path, audio: Path) -> None:
    """What `lhotse prepare` writes: recordings + supervisions, here one 3-second recording with two utterances."""
    from lhotse import Recording, RecordingSet, SupervisionSegment, SupervisionSet

    folder.mkdir(parents=True)
    recording = Recording.from_file(audio, recording_id="meeting")
    segments = [SupervisionSegment(id="meeting-a", recording_id="meeting", start=0.0, duration=1.0, text="ONE TWO"),
                SupervisionSegment(id="meeting-b", recording_id="meeting", start=1.5, duration=1.5, text="Three!")]
    RecordingSet.from_recordings([recording]).to_file(folder / "corpus_recordings_all.jsonl.gz")
    SupervisionSet.from_segments(segments).to_file(folder / "corpus_supervisions_all.jsonl.gz")


def test_lhotse_recipe_output_is_cut_into_utterances(tmp_path):
    audio = tmp_path / "meeting.wav"
    sf.write(audio, np.concatenate([tone(1.0), tone(2.0, hz=440.0)]), RATE)
    lhotse_recipe_output(tmp_path / "manifests", audio)
    cfg = {"path": str(tmp_path / "manifests"), "split_names": {"train": ["all"], "dev": ["all"]}}
    ds = load_dataset("lhotse", cfg, "dev")
    assert [(u.id, u.text, u.duration) for u in ds.items] == [("meeting-a", "ONE TWO", 1.0),
                                                               ("meeting-b", "Three!", 1.5)]
    first, second = ds[0], ds[1]
    assert len(first["waveform"]) == RATE and len(second["waveform"]) == int(1.5 * RATE)
    assert second["text"] == "three"
    torch.testing.assert_close(second["waveform"][:100], torch.from_numpy(tone(2.0, hz=440.0))[RATE // 2:][:100],
                               atol=1e-4, rtol=0)  # the segment starts at 1.5 s of the file


def test_lhotse_shar_folder_is_read_by_index(librispeech, tmp_path):
    from lhotse import CutSet

    train = load_dataset("librispeech", libri_config(librispeech, tmp_path), "train")  # caches its cuts
    cuts = CutSet.from_file(next((tmp_path / "manifests").glob("*train-clean-100*")))
    shar = tmp_path / "shar" / "train"
    shar.mkdir(parents=True)
    cuts.to_shar(shar, fields={"recording": "flac"}, shard_size=3)  # two shards
    ds = load_dataset("lhotse", {"path": str(tmp_path / "shar"), "sample_rate": 8000,
                                 "split_names": {"train": "train", "dev": [], "test": []}}, "train")
    everything = load_dataset("lhotse", {"path": str(tmp_path / "shar"), "split_names": {"train": "train"}}, "train")
    assert len(everything) == len(train) == 4 and len(list(shar.glob("recording.*.tar"))) == 2
    check_items(ds, 8000, {0.5, 1.0})


def test_lhotse_missing_manifest_lists_what_is_there(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "x_cuts_train.jsonl.gz").write_bytes(b"")
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("lhotse", {"path": str(tmp_path / "m"), "split_names": {"test": "test-clean"}}, "test")
    assert "no manifest for part 'test-clean'" in str(info.value) and "x_cuts_train.jsonl.gz" in str(info.value)
    with pytest.raises(FileNotFoundError, match="lhotse corpus folder not found"):
        load_dataset("lhotse", {"path": str(tmp_path / "none")}, "train")


def test_corpus_feeds_the_training_loader_with_workers_and_buckets(librispeech, tmp_path):
    train = load_dataset("librispeech", libri_config(librispeech, tmp_path, sample_rate=16000), "train")
    sampler = make_batch_sampler(train.durations(), batch_size=2, batch_seconds=None)  # sorted by duration in pools
    loader = DataLoader(train, batch_sampler=sampler, collate_fn=collate_fn, num_workers=1)
    batches = list(loader)
    assert sum(len(b["ids"]) for b in batches) == 4
    for batch in batches:  # duration buckets: the two lengths never share a batch
        assert len(set(batch["waveform_lengths"].tolist())) == 1


def test_default_config_names_the_corpora(tmp_path, monkeypatch, librispeech):
    monkeypatch.setenv("ASR_POC_ROOT", str(tmp_path))
    cfg = load_config(None, ["dataset=librispeech", f"datasets.librispeech.path={librispeech}"])
    section = cfg["datasets"]["librispeech"]
    assert section["split_names"] == {"train": ["train-clean-100"], "dev": ["dev-clean"], "test": ["test-clean"]}
    assert {"librispeech", "commonvoice", "lhotse"} <= set(cfg["available_datasets"])
    for name in ("commonvoice", "lhotse"):
        load_config(None, [f"dataset={name}"], check_data=False)
