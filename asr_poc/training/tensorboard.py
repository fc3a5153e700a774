"""TensorBoard scalars of a run (`training.tensorboard: true`), written beside its events.jsonl.

A sink fed with the same event dicts as events.jsonl, which stays the source of truth: the curves in
`<run>/tensorboard/` are a copy for people who already watch their experiments in TensorBoard
(`tensorboard --logdir checkpoints`). Every number of an event that has a `step` becomes a scalar:
`step` events as `train/<key>` (loss, lr, grad_norm, audio_seconds_per_second), `eval` events as `dev/<key>`
(wer, cer ...), `extra_eval` events as `<data set>/<key>`.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

FOLDER = "tensorboard"
FLUSH_SECONDS = 5
NOT_SCALARS = {"step", "epoch", "time"}
PREFIX = {"step": "train", "eval": "dev"}
FINAL_STATES = {"finished", "stopped", "failed"}


def scalars(event: dict) -> dict[str, float]:
    """The TensorBoard tags and values of one event (empty for events without a step or numbers)."""
    kind = event.get("type")
    if not isinstance(event.get("step"), int) or kind not in (*PREFIX, "extra_eval"):
        return {}
    prefix = str(event.get("dataset") or "extra") if kind == "extra_eval" else PREFIX[kind]
    return {f"{prefix}/{key}": float(value) for key, value in event.items()
            if key not in NOT_SCALARS and isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value)}


class TensorBoardSink:
    """Writes the scalars of each event given to `write` with torch's `SummaryWriter` under `<run>/tensorboard`."""

    def __init__(self, run_path: str | Path):
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

        self.path = Path(run_path) / FOLDER
        self.writer: Optional[SummaryWriter] = SummaryWriter(str(self.path), flush_secs=FLUSH_SECONDS)

    @classmethod
    def for_run(cls, run) -> Optional["TensorBoardSink"]:
        """A sink when the run's config asks for one (`training.tensorboard`), else None."""
        return cls(run.path) if (run.config.get("training") or {}).get("tensorboard") else None

    def write(self, event: dict) -> None:
        if self.writer is None:
            return
        for tag, value in scalars(event).items():
            self.writer.add_scalar(tag, value, global_step=event["step"], walltime=event.get("time"))
        if event.get("type") in ("eval", "extra_eval", "checkpoint"):
            self.writer.flush()
        elif event.get("type") == "status" and event.get("state") in FINAL_STATES:
            self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
