"""What a run's events add up to, for plotting and status lines: curves, evaluations, log lines, progress.

Pure Python (no widgets), so it is tested directly and shared by the training panel and the run browser.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional

from ..app.progress import estimate
from ..app.runs import scores_at_best

MAX_LOG_LINES = 300


@dataclass
class RunHistory:
    """Accumulates events of one run; `extend(events)` returns which parts changed."""

    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    step_times: list[float] = field(default_factory=list)
    throughput: list[float] = field(default_factory=list)  # audio seconds trained per wall second
    eval_steps: list[int] = field(default_factory=list)
    eval_epochs: list[int] = field(default_factory=list)
    wers: list[float] = field(default_factory=list)
    cers: list[float] = field(default_factory=list)
    rtfs: list[float] = field(default_factory=list)
    extra_evals: list[dict] = field(default_factory=list)  # `extra_eval` events: real speech beside dev
    logs: list[dict] = field(default_factory=list)
    checkpoints: list[dict] = field(default_factory=list)
    state: Optional[str] = None
    error: Optional[str] = None
    epoch: int = 0
    batches_per_epoch: Optional[int] = None

    def extend(self, events: list[dict]) -> set[str]:
        """Add events; return the parts that changed: 'steps', 'evals', 'extra', 'logs', 'state',
        'checkpoints'."""
        changed: set[str] = set()
        for e in events:
            kind = e.get("type")
            if kind == "step" and e.get("step") is not None:
                if self.steps and e["step"] <= self.steps[-1]:  # a resumed run repeats nothing, but be safe
                    cut = next(i for i, s in enumerate(self.steps) if s >= e["step"])
                    for series in (self.steps, self.losses, self.lrs, self.step_times, self.throughput):
                        del series[cut:]
                self.steps.append(int(e["step"]))
                self.losses.append(_num(e.get("loss")))
                self.lrs.append(_num(e.get("lr")))
                self.step_times.append(float(e.get("time") or time.time()))
                self.throughput.append(_num(e.get("audio_seconds_per_second")))
                self.epoch = int(e.get("epoch") or self.epoch)
                changed.add("steps")
            elif kind == "eval":
                self.eval_steps.append(int(e.get("step") or 0))
                self.eval_epochs.append(int(e.get("epoch") or 0))
                self.wers.append(_num(e.get("wer")))
                self.cers.append(_num(e.get("cer")))
                self.rtfs.append(_num(e.get("rtf")))
                changed.add("evals")
            elif kind == "extra_eval" and e.get("dataset"):
                self.extra_evals.append(e)
                changed.add("extra")
            elif kind == "log":
                self.logs.append(e)
                del self.logs[:-MAX_LOG_LINES]
                if isinstance(e.get("batches_per_epoch"), int):  # the start's line says how long an epoch is
                    self.batches_per_epoch = e["batches_per_epoch"]
                changed.add("logs")
            elif kind == "status":
                self.state = e.get("state")
                self.error = e.get("error")
                if self.error:
                    self.logs.append({"type": "log", "level": "error", "time": e.get("time"),
                                      "message": f"run {self.state}: {self.error}"})
                    changed.add("logs")
                changed.add("state")
            elif kind == "checkpoint":
                self.checkpoints.append(e)
                changed.add("checkpoints")
        return changed

    # --- summaries ---------------------------------------------------------------------------------------------
    @property
    def last_step(self) -> int:
        return self.steps[-1] if self.steps else 0

    @property
    def best_eval(self) -> Optional[dict]:
        """The evaluation with the lowest CER: {cer, wer, rtf, step}, or None."""
        finite = [i for i, c in enumerate(self.cers) if c == c]
        if not finite:
            return None
        i = min(finite, key=lambda j: self.cers[j])
        return {"cer": self.cers[i], "wer": self.wers[i], "rtf": self.rtfs[i], "step": self.eval_steps[i]}

    def extra_series(self) -> dict[str, tuple[list[int], list[float], list[float]]]:
        """{extra set: (steps, WERs, CERs)}, in the order the sets first appeared."""
        series: dict[str, tuple[list[int], list[float], list[float]]] = {}
        for e in self.extra_evals:
            steps, wers, cers = series.setdefault(e["dataset"], ([], [], []))
            steps.append(int(e.get("step") or 0))
            wers.append(_num(e.get("wer")))
            cers.append(_num(e.get("cer")))
        return series

    def extra_at_best(self) -> dict[str, dict]:
        """{extra set: its score at the best dev evaluation's step (what best.pt holds), else its latest}."""
        evals = [{"step": s, "cer": c} for s, c in zip(self.eval_steps, self.cers)]
        return scores_at_best(evals, self.extra_evals)

    def steps_per_second(self, window: int = 50) -> Optional[float]:
        """Recent training speed, from the times of the last `window` step events."""
        if len(self.step_times) < 2:
            return None
        n = min(window, len(self.step_times) - 1)
        elapsed = self.step_times[-1] - self.step_times[-1 - n]
        return n / elapsed if elapsed > 0 else None


def _num(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def progress(history: RunHistory, status: dict, training: dict, now: Optional[float] = None
             ) -> tuple[float, Optional[float]]:
    """(fraction done 0..1, seconds left or None) of the run whose events are in `history` (`app.progress`)."""
    step = max(history.last_step, int(status.get("step") or 0))
    return estimate(step, training, batches_per_epoch=status.get("batches_per_epoch") or history.batches_per_epoch,
                    steps_per_second=history.steps_per_second(), started=status.get("started"),
                    now=time.time() if now is None else now)


def format_seconds(seconds: Optional[float]) -> str:
    """`1:05:03`, `4:07`, or '?' when unknown."""
    if seconds is None or seconds != seconds:
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
