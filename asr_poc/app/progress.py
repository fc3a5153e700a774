"""How far a run has come and how long it has left, from its limits (epochs, max_steps, max_minutes)."""
from __future__ import annotations

from typing import Optional


def estimate(step: int, training: dict, *, batches_per_epoch: Optional[int] = None,
             steps_per_second: Optional[float] = None, started: Optional[float] = None,
             now: float) -> tuple[float, Optional[float]]:
    """(fraction done 0..1, seconds left or None). The run ends at whichever limit comes first, so the fraction is
    the largest of the limits' and the time left the smallest."""
    fractions: list[float] = []
    left: list[float] = []
    total_steps = []
    if training.get("max_steps"):
        total_steps.append(int(training["max_steps"]))
    if batches_per_epoch and training.get("epochs"):
        total_steps.append(int(training["epochs"]) * batches_per_epoch)
    for total in total_steps:
        fractions.append(step / total)
        if steps_per_second:
            left.append(max(0.0, (total - step) / steps_per_second))
    if training.get("max_minutes") and started:
        budget = 60.0 * float(training["max_minutes"])
        elapsed = now - float(started)
        fractions.append(elapsed / budget)
        left.append(max(0.0, budget - elapsed))
    fraction = min(1.0, max(fractions)) if fractions else 0.0
    return fraction, (min(left) if left else None)
