"""lhotse Shar folders read by index: each cut's audio is found inside its shard's tar once, then read directly.

A Shar folder (`CutSet.to_shar`) holds `cuts.NNNNNN.jsonl.gz` and, beside each, `recording.NNNNNN.tar` with one
`<cut id>.<audio format>` member per cut. lhotse reads shards front to back (an iterable data set); a map-style
data set with duration bucketing needs any utterance at any time, so the tar's member headers are read once
(seeking over the audio) and each utterance keeps where its bytes are (`TarMember`).
"""
from __future__ import annotations

import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

from ..audio import load_audio

AUDIO_FIELD = "recording"


@dataclass(frozen=True)
class TarMember:
    """Encoded audio at `offset` (`size` bytes) inside an uncompressed tar file."""

    path: str
    offset: int
    size: int

    def read(self, sample_rate: int, max_seconds: Optional[float]) -> np.ndarray:
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read(self.size)
        return load_audio(data, sample_rate, max_seconds=max_seconds)


def is_shar(folder: Path) -> bool:
    return folder.is_dir() and any(folder.glob("cuts.*.jsonl*"))


def tar_index(tar_path: Path) -> dict[str, TarMember]:
    """{cut id: where its audio is} for the audio members of one shard (its `.json` metadata members skipped)."""
    if not tar_path.is_file():
        raise FileNotFoundError(f"lhotse Shar shard missing: {tar_path}")
    index = {}
    with tarfile.open(tar_path, "r:") as tar:  # "r:": an uncompressed tar, the only kind with fixed offsets
        for member in tar:
            if member.isfile() and not member.name.endswith((".json", ".nodata")):
                index[member.name.rsplit(".", 1)[0]] = TarMember(str(tar_path), member.offset_data, member.size)
    return index


def shar_cuts(folder: Path) -> Iterator[tuple[Any, TarMember]]:
    """Each cut of a Shar folder (metadata only) with where its audio is, shard by shard."""
    from lhotse import CutSet

    for cuts_file in sorted(folder.glob("cuts.*.jsonl*")):
        shard = cuts_file.name.split(".")[1]
        index = tar_index(folder / f"{AUDIO_FIELD}.{shard}.tar")
        for cut in CutSet.from_file(cuts_file):
            if cut.id not in index:
                raise ValueError(f"lhotse Shar {folder}: cut {cut.id!r} has no audio in {AUDIO_FIELD}.{shard}.tar")
            yield cut, index[cut.id]
