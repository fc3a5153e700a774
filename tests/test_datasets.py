"""The synthetic corpus generator and the LJSpeech and Hugging Face data-set adapters."""
from __future__ import annotations

import shutil
from collections import Counter
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from conftest import GRAMMAR_ONLY

from asr_poc.datasets.hf import HFDataset
from asr_poc.datasets.interface import DatasetConfig, DurationBucketSampler, collate_fn
from asr_poc.datasets.ljspeech import LJSpeechDataset, hash_split
from asr_poc.datasets.synthetic import (VARIANTS, SentenceGenerator, SyntheticDataset, available_voices,
                                        generate_corpus, number_words)
from asr_poc.text import CharTokenizer, normalize_text


def config(path: Path, **extra) -> dict:
    return {**DatasetConfig(path=str(path)).model_dump(), **extra}


def read_rows(path: Path) -> list[list[str]]:
    return [line.split("|") for line in path.read_text(encoding="utf-8").splitlines()]


def copy_wavs(corpus: Path, folder: Path, n: int) -> list[str]:
    """Copy the first `n` wavs of `corpus` into `folder`; return their ids."""
    folder.mkdir(parents=True, exist_ok=True)
    ids = [row[0] for row in read_rows(corpus / "metadata.csv")[:n]]
    for uid in ids:
        shutil.copy(corpus / "wavs" / f"{uid}.wav", folder / f"{uid}.wav")
    return ids


# --- generator ---------------------------------------------------------------------------------------------------


def test_corpus_layout_and_wav_format(small_corpus: Path) -> None:
    rows = read_rows(small_corpus / "metadata.csv")
    assert len(rows) == 60 and all(len(r) == 3 for r in rows)
    assert len({r[0] for r in rows}) == 60
    for uid, text, normalized in rows:
        assert normalized == normalize_text(text) and 4 <= len(normalized.split()) <= 14
    assert [r[0] for r in read_rows(small_corpus / "splits.csv")] == [r[0] for r in rows]
    assert not [p for p in (small_corpus / "wavs").iterdir() if p.name.startswith(".")]  # no temporary files
    for uid, *_ in rows[:10]:
        info = sf.info(str(small_corpus / "wavs" / f"{uid}.wav"))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        data, _ = sf.read(str(small_corpus / "wavs" / f"{uid}.wav"))
        assert 0.5 < len(data) / 16000 < 15 and np.sqrt(np.mean(data**2)) > 0.01


def test_sentences_are_varied() -> None:
    generator = SentenceGenerator(0)
    sentences = [generator.sentence() for _ in range(600)]
    words = Counter(w for s in sentences for w in normalize_text(s).split())
    assert len(words) > 300  # a vocabulary, not a handful of sentences
    assert len(set(sentences)) > 590
    assert any(s.endswith("?") for s in sentences)
    assert number_words(42) == "forty-two" and number_words(305) == "three hundred and five"


def test_same_seed_same_corpus_other_seed_differs(small_corpus: Path, tmp_path: Path) -> None:
    again = generate_corpus(tmp_path / "again", utterances=60, seed=1, progress=False, english_share=GRAMMAR_ONLY)
    for name in ("metadata.csv", "splits.csv", "voices.csv"):
        assert (again / name).read_bytes() == (small_corpus / name).read_bytes()
    for uid in ("syn-00001", "syn-00030", "syn-00060"):
        assert (again / "wavs" / f"{uid}.wav").read_bytes() == (small_corpus / "wavs" / f"{uid}.wav").read_bytes()
    other = generate_corpus(tmp_path / "other", utterances=20, seed=2, progress=False, english_share=GRAMMAR_ONLY)
    assert read_rows(other / "metadata.csv") != read_rows(small_corpus / "metadata.csv")[:20]
    assert (other / "wavs" / "syn-00001.wav").read_bytes() != (small_corpus / "wavs" / "syn-00001.wav").read_bytes()


def test_held_out_voices(small_corpus: Path) -> None:
    split = dict(read_rows(small_corpus / "splits.csv"))
    voices: dict[str, set[str]] = {"train": set(), "dev": set(), "test": set()}
    for uid, voice, speed, pitch in read_rows(small_corpus / "voices.csv"):
        voices[split[uid]].add(voice)
        assert 130 <= int(speed) <= 200 and 30 <= int(pitch) <= 70
    assert Counter(split.values()) == {"train": 54, "dev": 3, "test": 3}
    assert not voices["test"] & voices["train"] and not voices["dev"] & voices["train"]
    assert not voices["test"] & voices["dev"]
    assert len(voices["train"]) > 20  # many speakers
    assert len(available_voices(shutil.which("espeak-ng"))) * len(VARIANTS) - 5 >= 40


def test_missing_espeak(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="apt-get install espeak-ng"):
        generate_corpus(tmp_path, utterances=5, progress=False)


# --- LJSpeech loader ---------------------------------------------------------------------------------------------


def test_synthetic_dataset_items(small_corpus: Path) -> None:
    expected = dict(read_rows(small_corpus / "splits.csv"))
    normalized = {r[0]: r[2] for r in read_rows(small_corpus / "metadata.csv")}
    sizes = {}
    for split in ("train", "dev", "test"):
        ds = SyntheticDataset(config(small_corpus), split)
        sizes[split] = len(ds)
        assert all(expected[u.id] == split for u in ds.items)
    assert sizes == {"train": 54, "dev": 3, "test": 3}
    item = ds[0]
    assert item["waveform"].dtype == torch.float32 and item["waveform"].ndim == 1
    assert abs(len(item["waveform"]) / 16000 - ds.items[0].duration) < 0.01  # resampled 22050 -> 16000
    assert item["text"] == normalized[item["id"]]


def make_ljspeech(corpus: Path, root: Path, n: int = 30) -> list[str]:
    """An LJSpeech-style folder (no splits.csv) with LJ-like ids, quotes in texts and missing normalized columns."""
    source_ids = copy_wavs(corpus, root / "wavs", n)
    texts = {r[0]: r[1] for r in read_rows(corpus / "metadata.csv")}
    ids, lines = [], []
    for i, uid in enumerate(source_ids):
        lj = f"LJ001-{i:04d}"
        (root / "wavs" / f"{uid}.wav").rename(root / "wavs" / f"{lj}.wav")
        text = f'"{texts[uid]}"'
        lines.append([f"{lj}|{text}|{normalize_text(text)}", f"{lj}|{text}", f"{lj}|{text}|"][i % 3])
        ids.append(lj)
    (root / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return ids


def test_ljspeech_hash_split_is_stable(small_corpus: Path, tmp_path: Path) -> None:
    ids = make_ljspeech(small_corpus, tmp_path / "lj")
    splits = {s: {u.id for u in LJSpeechDataset(config(tmp_path / "lj"), s).items} for s in ("train", "dev", "test")}
    assert sum(map(len, splits.values())) == len(ids) and set().union(*splits.values()) == set(ids)
    assert all(hash_split(uid) == s for s, members in splits.items() for uid in members)
    train = LJSpeechDataset(config(tmp_path / "lj"), "train")
    assert all(t == normalize_text(t) and t and '"' not in t for t in train.texts())  # fallback to the text column

    # dropping and adding other ids moves no id
    meta = tmp_path / "lj" / "metadata.csv"
    lines = meta.read_text().splitlines()
    meta.write_text("\n".join(lines[1::2] + ["LJ999-0001|extra words|extra words"]) + "\n")
    shutil.copy(tmp_path / "lj" / "wavs" / f"{ids[0]}.wav", tmp_path / "lj" / "wavs" / "LJ999-0001.wav")
    for s in ("train", "dev", "test"):
        now = {u.id for u in LJSpeechDataset(config(tmp_path / "lj"), s).items}
        assert now - {"LJ999-0001"} == splits[s] & set(ids[1::2])
    assert splits["test"] & set(ids[1::2])  # the check above covered a held-out id

    fractions = Counter(hash_split(f"LJ{i:06d}") for i in range(20000))
    assert abs(fractions["train"] / 20000 - 0.94) < 0.01 and abs(fractions["test"] / 20000 - 0.03) < 0.006


def test_splits_csv_overrides_hash(small_corpus: Path, tmp_path: Path) -> None:
    ids = make_ljspeech(small_corpus, tmp_path / "lj", n=6)
    lines = [f"{ids[0]}|test", f"{ids[1]}|dev"] + [f"{u}|train" for u in ids[2:]]
    (tmp_path / "lj" / "splits.csv").write_text("\n".join(lines) + "\n")
    assert [u.id for u in LJSpeechDataset(config(tmp_path / "lj"), "test").items] == [ids[0]]
    assert [u.id for u in LJSpeechDataset(config(tmp_path / "lj"), "dev").items] == [ids[1]]
    (tmp_path / "lj" / "splits.csv").write_text(f"{ids[0]}|validation\n")
    with pytest.raises(ValueError, match="validation"):
        LJSpeechDataset(config(tmp_path / "lj"), "train")


def test_missing_folder_and_metadata(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        LJSpeechDataset(config(missing))
    assert "does not exist" in LJSpeechDataset.check_source(config(missing))
    assert "asr-poc prepare synthetic" in SyntheticDataset.check_source(config(missing))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="metadata.csv"):
        SyntheticDataset(config(tmp_path / "empty"))
    assert "metadata.csv" in LJSpeechDataset.check_source(config(tmp_path / "empty"))


def test_check_source_accepts_corpus(small_corpus: Path) -> None:
    assert SyntheticDataset.check_source(config(small_corpus)) is None


def test_plugins_find_the_datasets() -> None:
    from asr_poc import plugins

    assert plugins.get_dataset_class("synthetic") is SyntheticDataset
    assert plugins.get_dataset_class("ljspeech") is LJSpeechDataset
    assert plugins.get_dataset_class("hf") is HFDataset


def test_collate_and_bucket_sampler(small_corpus: Path) -> None:
    ds = SyntheticDataset(config(small_corpus), "train")
    sampler = DurationBucketSampler(ds.durations(), batch_size=8, seed=0)
    assert sorted(i for b in sampler for i in b) == list(range(len(ds)))
    tokenizer = CharTokenizer.from_texts(ds.texts())
    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=partial(collate_fn, tokenizer=tokenizer))
    batch = next(iter(loader))
    lengths = batch["waveform_lengths"]
    assert batch["waveforms"].shape == (len(batch["ids"]), int(lengths.max()))
    shortest = int(lengths.argmin())
    assert torch.all(batch["waveforms"][shortest, lengths[shortest]:] == 0)
    assert batch["tokens"].shape[0] == len(batch["texts"]) and int(batch["token_lengths"].min()) > 0


# --- Hugging Face adapter ----------------------------------------------------------------------------------------


def test_hf_audiofolder(small_corpus: Path, tmp_path: Path) -> None:
    folder = tmp_path / "audiofolder"
    ids = copy_wavs(small_corpus, folder, 14)
    texts = {r[0]: r[1] for r in read_rows(small_corpus / "metadata.csv")}
    (folder / "metadata.csv").write_text("file_name,transcription\n" + "".join(f'{u}.wav,"{texts[u]}"\n' for u in ids))
    cfg = config(folder, text_column="transcription")
    assert HFDataset.check_source(cfg) is None
    splits = {s: HFDataset(cfg, s) for s in ("train", "dev", "test")}
    members = {s: {u.id for u in ds.items} for s, ds in splits.items()}
    assert sum(map(len, members.values())) == 14 and set().union(*members.values()) == set(ids)
    assert members["test"] == {"syn-00013"} == {u for u in ids if hash_split(u) == "test"}  # carved from train
    item = splits["train"][0]
    assert item["waveform"].dtype == torch.float32 and item["text"] == normalize_text(texts[item["id"]])
    assert abs(len(item["waveform"]) / 16000 - splits["train"].items[0].duration) < 0.01
    with pytest.raises(ValueError, match="no column 'text'.*transcription"):
        HFDataset(config(folder), "train")


def test_hf_saved_dataset_dict(small_corpus: Path, tmp_path: Path) -> None:
    import datasets

    rows = read_rows(small_corpus / "metadata.csv")[:18]
    features = datasets.Features({"audio": datasets.Audio(), "sentence": datasets.Value("string"),
                                  "id": datasets.Value("string")})

    def table(part: list[list[str]]) -> datasets.Dataset:
        audio = [{"bytes": (small_corpus / "wavs" / f"{r[0]}.wav").read_bytes(), "path": None} for r in part]
        columns = {"audio": audio, "sentence": [r[1] for r in part], "id": [r[0] for r in part]}
        return datasets.Dataset.from_dict(columns, features=features)

    saved = datasets.DatasetDict({"train": table(rows[:14]), "validation": table(rows[14:])})
    saved.save_to_disk(str(tmp_path / "saved"))
    cfg = config(tmp_path / "saved", text_column="sentence")
    dev = HFDataset(cfg, "dev")
    assert [u.id for u in dev.items] == [r[0] for r in rows[14:]]  # the source's own validation split
    train, test = HFDataset(cfg, "train"), HFDataset(cfg, "test")
    assert [u.id for u in test.items] == ["syn-00013"]  # carved out of train by the id's hash
    assert {u.id for u in train.items} == {r[0] for r in rows[:14]} - {"syn-00013"}
    item = dev[0]
    assert isinstance(dev.items[0].audio, bytes) and item["text"] == rows[14][2]
    assert abs(len(item["waveform"]) / 16000 - dev.items[0].duration) < 0.01
    with pytest.raises(ValueError, match="no column 'speech'.*audio, sentence, id"):
        HFDataset(config(tmp_path / "saved", audio_column="speech"), "dev")


def test_hf_check_source(tmp_path: Path) -> None:
    assert "does not exist" in HFDataset.check_source(config(tmp_path / "missing"))
    assert HFDataset.check_source(config("someone-not-local/some_corpus")) is None  # a hub id
