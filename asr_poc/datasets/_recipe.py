"""The shared part of the data sets that a lhotse recipe reads from a corpus in its original layout.

A part (LibriSpeech's `dev-clean`, Common Voice's `train`) is scanned once by the recipe, which reads every audio
header, and its cuts are kept in `manifest_dir` as `<name>-<hash of the part's path>_cuts_<part>.jsonl.gz`, so
later runs start at once (delete the file after changing the corpus; `--dataset lhotse` reads that folder too).
An error while scanning becomes one line that names the part and the corpus folder.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Optional

from pydantic import Field

from ..paths import resolve_path
from ._cuts import cached_cuts
from .lhotse import LhotseConfig, LhotseDataset


class RecipeConfig(LhotseConfig):
    """A recipe data set's keys: the lhotse ones plus where prepared cuts are kept and how many scan at once."""

    manifest_dir: Optional[str] = "data/manifests"  # null: scan the corpus on every start
    num_jobs: int = Field(4, ge=1, le=256)  # parallel audio-header reads while scanning a part


def one_line(err: BaseException) -> str:
    """An exception's message on one line; lhotse's report of an unreadable file (every audio backend's reason,
    over several lines) becomes the file's name."""
    message = " ".join(str(err).split()) or type(err).__name__
    unreadable = re.match(r"Fetching info about audio from '(.+?)' failed", message)
    if unreadable:
        return f"unreadable audio file {unreadable.group(1)} (not audio that FFmpeg or libsndfile decodes)"
    return message


class RecipeDataset(LhotseDataset):
    """A lhotse recipe over a local corpus folder; subclasses give `part_folder` and `prepare_part`."""

    Config = RecipeConfig

    def part_folder(self, root: Path, part: str) -> Path:
        """Where the corpus keeps `part` (checked before scanning)."""
        return root / part

    def prepare_part(self, root: Path, part: str, cfg: Any) -> Any:
        """The part's cuts, one a utterance, from the lhotse recipe."""
        raise NotImplementedError

    def part_cuts(self, cfg: Any, root: Path, part: str) -> Any:
        folder = self.part_folder(root, part)
        if not folder.exists():
            raise FileNotFoundError(f"{self.name}: no {folder.name} in {folder.parent} ({self.prepare_hint})")
        cache = None
        if cfg.manifest_dir:
            key = hashlib.md5(str(folder.resolve()).encode("utf-8")).hexdigest()[:8]  # one corpus's part
            cache = resolve_path(cfg.manifest_dir) / f"{self.name}-{key}_cuts_{part}.jsonl.gz"
        try:
            return cached_cuts(cache, lambda: self.prepare_part(root, part, cfg))
        except Exception as err:  # an unreadable audio file, a malformed line: lhotse's message, on one line
            if str(err).startswith(f"{self.name} "):  # already ours
                raise
            raise ValueError(f"{self.name} {folder}: {one_line(err)}") from err
