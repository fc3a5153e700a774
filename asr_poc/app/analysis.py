"""Error analysis as a person reads it (`asr-poc eval --details`, the Runs tab's "Errors of a run"): each
utterance's texts, WER, CER and word alignment written beside the checkpoint that was scored, every such
evaluation under a runs folder, the worst utterances, the most frequent confusions, two evaluations side by side.

The files and their reading are `asr_poc.analysis`; the names here are its own, plus the two things only a face
asks: which evaluations a runs folder holds, and the details of one `evaluate_checkpoint` written down. Nothing
here imports torch: the dashboard reads these files in a light page kernel.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from ..analysis import (Confusion, Details, DetailsError, build_details, compare, confusions, csv_path, details_csv,
                        details_path, list_details, read_details, totals, worst, write_details)
from ..runs import list_runs

__all__ = ["Confusion", "Details", "DetailsError", "compare", "confusions", "csv_path", "details_csv", "evaluations",
           "read_details", "totals", "worst", "write_evaluation_details"]


def evaluations(root: str | os.PathLike) -> list[tuple[str, Path]]:
    """(label, details file) of every evaluation under the runs folder `root`, newest run first."""
    return [(f"{run.id}: {path.stem}", path) for run in list_runs(root) for path in list_details(run.path)]


def write_evaluation_details(checkpoint: str | os.PathLike, summary: dict, ids: Sequence[str],
                             references: Sequence[str], hypotheses: Sequence[str], items: Sequence[Any] = ()) -> Path:
    """Write an evaluation's details (`summary` names its dataset and split) to `details/` beside `checkpoint`, with
    each utterance's audio file and duration where `items` (the data set's utterances) give them; returns the path."""
    by_id = {str(u.id): u for u in items}
    audio = {i: str(u.audio) for i, u in by_id.items() if isinstance(u.audio, (str, os.PathLike))}
    durations = {i: float(u.duration) for i, u in by_id.items()}
    lines = build_details(summary, [str(i) for i in ids], references, hypotheses, audio=audio, durations=durations)
    return write_details(details_path(checkpoint, summary["dataset"], summary["split"]), lines)
