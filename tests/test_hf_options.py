"""`hf` data sets: configuration names, revisions and split names (LibriSpeech, Common Voice, FLEURS need them),
on tiny local data sets (a `save_to_disk` folder, a repository folder with configs) and a stand-in for the hub."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr_poc.datasets.hf import HFDataset
from asr_poc.datasets.interface import DatasetConfig


def wav_bytes(seconds: float, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(int(seconds * rate), np.float32), rate, format="WAV")
    return buffer.getvalue()


def table(rows: list[tuple[str, str]]):
    import datasets

    features = datasets.Features({"id": datasets.Value("string"), "audio": datasets.Audio(),
                                  "transcription": datasets.Value("string")})
    return datasets.Dataset.from_dict({"id": [r[0] for r in rows], "transcription": [r[1] for r in rows],
                                       "audio": [{"bytes": wav_bytes(0.5 + 0.1 * i), "path": None}
                                                 for i, _ in enumerate(rows)]}, features=features)


def config(path, **extra) -> dict:
    return {**DatasetConfig(path=str(path)).model_dump(), "text_column": "transcription", **extra}


LIBRISPEECH_SPLITS = {"train": "train.clean.100", "dev": "validation.clean", "test": "test.clean"}


def test_split_names_pick_the_sources_own_splits(tmp_path: Path):
    import datasets

    datasets.DatasetDict({
        "train.clean.100": table([("t1", "A TRAIN ONE"), ("t2", "A TRAIN TWO")]),
        "validation.clean": table([("d1", "A DEV ONE")]),
        "test.clean": table([("e1", "A TEST ONE"), ("e2", "A TEST TWO")]),
    }).save_to_disk(str(tmp_path / "libri"))
    cfg = config(tmp_path / "libri", split_names=LIBRISPEECH_SPLITS)
    ids = {s: [u.id for u in HFDataset(cfg, s).items] for s in ("train", "dev", "test")}
    assert ids == {"train": ["t1", "t2"], "dev": ["d1"], "test": ["e1", "e2"]}
    assert HFDataset(cfg, "test")[1]["text"] == "a test two"
    with pytest.raises(ValueError, match="save_to_disk has no configurations"):
        HFDataset(config(tmp_path / "libri", config_name="clean"), "train")
    with pytest.raises(ValueError, match="revision = 'abc' applies to hub ids only"):
        HFDataset(config(tmp_path / "libri", revision="abc"), "train")


def test_a_configuration_name_picks_one_language_of_a_repository_folder(tmp_path: Path):
    """A FLEURS-like folder (a clone of a hub repository): parquet files per language, configs in its README."""
    repo = tmp_path / "fleurs"
    languages = {"hi_in": [("h1", "नमस्ते दुनिया"), ("h2", "दुनिया १२")], "ru_ru": [("r1", "Привет, мир!")]}
    card = ["---", "configs:"]
    for name, rows in languages.items():
        (repo / name).mkdir(parents=True)
        table(rows).to_parquet(str(repo / name / "train.parquet"))
        table(rows[:1]).to_parquet(str(repo / name / "test.parquet"))
        card += [f"- config_name: {name}", "  data_files:", f"  - split: train", f"    path: {name}/train.parquet",
                 f"  - split: test", f"    path: {name}/test.parquet"]
    (repo / "README.md").write_text("\n".join(card + ["---", ""]), encoding="utf-8")

    text = {"script": "any", "keep": "letters+digits"}
    hindi = HFDataset(config(repo, config_name="hi_in", text=text), "train")
    assert [u.id for u in hindi.items] == ["h1", "h2"] and hindi.texts() == ["नमस्ते दुनिया", "दुनिया १२"]
    assert len(hindi[0]["waveform"]) == 8000
    russian = HFDataset(config(repo, config_name="ru_ru", text=text), "test")
    assert russian.texts() == ["привет мир"]


def test_from_the_hub_only_the_split_in_use_is_fetched_at_the_revision(tmp_path: Path, monkeypatch):
    """The hub cannot be reached here: `datasets`' two entry points are replaced by a recording stand-in."""
    import datasets

    source = {"train": table([("t1", "one")]), "validation": table([("d1", "two")]), "test": table([("e1", "три")])}
    calls = []

    def split_names(path, config_name=None, revision=None, **kw):
        calls.append(("split_names", path, config_name, revision))
        return list(source)

    def load_dataset(path, name=None, revision=None, split=None, **kw):
        calls.append(("load", path, name, revision, split))
        return source[split]

    monkeypatch.setattr(datasets, "get_dataset_split_names", split_names)
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.chdir(tmp_path)  # no local folder "google"
    cfg = config("google/fleurs", config_name="ru_ru", revision="a1b2c3", text={"script": "any"})
    test = HFDataset(cfg, "test")
    assert test.texts() == ["три"]
    assert calls == [("split_names", "google/fleurs", "ru_ru", "a1b2c3"),
                     ("load", "google/fleurs", "ru_ru", "a1b2c3", "test")]
    assert HFDataset.check_source(cfg) is None
