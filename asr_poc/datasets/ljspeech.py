"""LJSpeech-1.1 (https://keithito.com/LJ-Speech-Dataset/) and any corpus in its layout.

    <path>/metadata.csv    id|text|normalized text   (no header; the last column may be missing or empty)
    <path>/wavs/<id>.wav
    <path>/splits.csv      id|split                  (optional; split is train, dev or test)

Without `splits.csv` (or for an id it does not list) the split comes from a hash of the id: 94 % train,
3 % dev, 3 % test. An id's split therefore never depends on the other ids or on their order.
"""
from __future__ import annotations

import csv
import hashlib
import warnings
from pathlib import Path
from typing import Optional

import soundfile as sf

from ..paths import resolve_path
from .interface import SPLITS, BaseASRDataset, Utterance

SPLIT_FRACTIONS = {"train": 0.94, "dev": 0.03, "test": 0.03}


def hash_split(utterance_id: str, seed: int = 0, fractions: dict[str, float] = SPLIT_FRACTIONS) -> str:
    """The split of `utterance_id`, from an MD5 hash of `seed` and the id alone (stable across runs and machines)."""
    digest = hashlib.md5(f"{seed}:{utterance_id}".encode("utf-8")).hexdigest()
    x = int(digest[:12], 16) / float(16**12)  # uniform in [0, 1)
    total = 0.0
    for split, fraction in fractions.items():
        total += fraction
        if x < total:
            return split
    return list(fractions)[-1]


def read_pipe_csv(path: Path) -> list[list[str]]:
    """Rows of a `|`-separated file without quoting (LJSpeech texts contain bare quotes); blank lines skipped."""
    with open(path, encoding="utf-8", newline="") as f:
        return [row for row in csv.reader(f, delimiter="|", quoting=csv.QUOTE_NONE) if row and row[0].strip()]


def read_splits(path: Path) -> dict[str, str]:
    """`splits.csv` -> {id: split}; raises ValueError for an unknown split name."""
    splits = {}
    for line, row in enumerate(read_pipe_csv(path), start=1):
        split = row[1].strip() if len(row) > 1 else ""
        if split not in SPLITS:
            raise ValueError(f"{path}, line {line}: split {split!r} must be one of {', '.join(SPLITS)}")
        splits[row[0].strip()] = split
    return splits


class LJSpeechDataset(BaseASRDataset):
    """A split of a corpus in the LJSpeech layout (see the module docstring)."""

    name = "ljspeech"
    prepare_hint = ("download https://data.keithito.com/data/speech/LJSpeech-1.1.tar.bz2 and extract it there; "
                    "see https://keithito.com/LJ-Speech-Dataset/")

    @classmethod
    def check_source(cls, config: dict) -> Optional[str]:
        problem = super().check_source(config)
        if problem is None and not (resolve_path(config["path"]) / "metadata.csv").is_file():
            problem = "no metadata.csv in the folder" + (f" ({cls.prepare_hint})" if cls.prepare_hint else "")
        return problem

    def _hint(self) -> str:
        return f" ({self.prepare_hint})" if self.prepare_hint else ""

    def _load_data(self) -> list[Utterance]:
        root = resolve_path(self.config["path"])
        if not root.is_dir():
            raise FileNotFoundError(f"{self.name} corpus folder not found: {root}{self._hint()}")
        metadata = root / "metadata.csv"
        if not metadata.is_file():
            raise FileNotFoundError(f"{self.name} metadata not found: {metadata}{self._hint()}")
        splits_file = root / "splits.csv"
        splits = read_splits(splits_file) if splits_file.is_file() else {}

        items, missing, too_long = [], 0, 0
        for row in read_pipe_csv(metadata):
            uid = row[0].strip()
            if (splits.get(uid) or hash_split(uid)) != self.split:
                continue
            text = row[2] if len(row) > 2 and row[2].strip() else (row[1] if len(row) > 1 else "")
            wav = root / "wavs" / f"{uid}.wav"
            try:
                duration = sf.info(str(wav)).duration
            except Exception:  # missing or unreadable file
                missing += 1
                continue
            if self.max_seconds is not None and duration > self.max_seconds:
                too_long += 1
                continue
            items.append(Utterance(id=uid, audio=str(wav), text=text.strip(), duration=duration))
        if missing or too_long:
            warnings.warn(f"{self.name} {self.split}: left out {missing} missing/unreadable wav file(s) and "
                          f"{too_long} utterance(s) longer than max_seconds={self.max_seconds}", stacklevel=2)
        return items


DATASET = LJSpeechDataset
