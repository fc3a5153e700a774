"""The runs folder as a person browses it: every run with its state and best scores (`asr-poc runs`, the Runs tab),
one run by its folder or id, the accuracy-versus-speed points of all of them beside the bench's, and ages as a
person reads them.

A run is a folder (`asr_poc.runs`): the trainer writes it and nothing here changes it; `Run` is that module's own
reader. Starting, stopping and following a run are `asr_poc.app.training`. Nothing here imports torch.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from typing import Optional

from ..results import accuracy_speed_points
from ..runs import ACTIVE_STATES, Run, default_root, list_runs, scores_at_best

__all__ = ["ACTIVE_STATES", "Run", "RunRow", "accuracy_speed_points", "default_root", "format_age", "list_runs",
           "open_run", "run_rows", "scores_at_best"]


@dataclass(frozen=True)
class RunRow:
    """One line of `asr-poc runs`: what a run's status.json says, and how long ago it started."""

    run: str
    path: str
    state: Optional[str]
    model: Optional[str]
    dataset: Optional[str]
    step: Optional[int]
    epoch: Optional[int]
    best_cer: Optional[float]
    best_wer: Optional[float]
    age_seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def run_rows(root: Optional[str | os.PathLike] = None, now: Optional[float] = None) -> list[RunRow]:
    """A row per run under `root` (default: the config's runs folder), newest first."""
    now = time.time() if now is None else now
    rows = []
    for run in list_runs(root):
        s = run.status
        rows.append(RunRow(run=run.path.name, path=str(run.path), state=s.get("state"), model=s.get("model"),
                           dataset=s.get("dataset"), step=s.get("step"), epoch=s.get("epoch"),
                           best_cer=s.get("best_cer"), best_wer=s.get("best_wer"),
                           age_seconds=now - float(s.get("started") or run.path.stat().st_mtime)))
    return rows


def open_run(run: str | os.PathLike, root: Optional[str | os.PathLike] = None) -> Run:
    """A run by its folder, or by its id (or a unique prefix of it) under `root`; `FileNotFoundError` if none."""
    return Run.open(run, root=root)


def format_age(seconds: float) -> str:
    """`45s`, `12m`, `3h`, `2d` ago."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{max(seconds, 0):.0f}s"
