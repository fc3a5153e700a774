"""Follow a run from its folder's files as typed events: status changes, curve points, log lines and progress.

The training writes events.jsonl and status.json and never knows who follows (`asr_poc.runs`); `follow` reads what
is new every `interval` seconds, from the start of the run, so a late follower sees the whole history.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator, Optional, Union

from ..runs import ACTIVE_STATES, Run
from .progress import estimate

ENDED_STATES = ("stopped", "finished", "failed", "interrupted")
SPEED_WINDOW = 50  # step events the training speed is measured over


@dataclass(frozen=True)
class StatusEvent:
    """status.json changed."""

    state: Optional[str]
    step: int
    epoch: int
    best_cer: Optional[float]
    best_wer: Optional[float]
    batches_per_epoch: Optional[int]
    error: Optional[str]


@dataclass(frozen=True)
class CurvePoint:
    """One point of a curve: `loss`, `lr`, `dev wer`, `dev cer`, or `<data set> cer` (training.extra_eval)."""

    curve: str
    step: int
    value: float


@dataclass(frozen=True)
class LogLine:
    level: str
    message: str
    time: float


@dataclass(frozen=True)
class ProgressEvent:
    """How far the run is, by its limits (epochs, max_steps, max_minutes); `seconds_left` None while unknown."""

    step: int
    epoch: int
    fraction: float
    seconds_left: Optional[float]


RunEvent = Union[StatusEvent, CurvePoint, LogLine, ProgressEvent]


def curve_points(event: dict) -> list[CurvePoint]:
    """The curve points one events.jsonl event carries (none for most kinds)."""
    kind, step = event.get("type"), int(event.get("step") or 0)
    names = {"step": {"loss": "loss", "lr": "lr"}, "eval": {"wer": "dev wer", "cer": "dev cer"},
             "extra_eval": {"cer": f"{event.get('dataset')} cer"}}.get(kind, {})
    return [CurvePoint(curve, step, float(event[key])) for key, curve in names.items()
            if isinstance(event.get(key), (int, float))]


def status_event(status: dict) -> StatusEvent:
    return StatusEvent(state=status.get("state"), step=int(status.get("step") or 0),
                       epoch=int(status.get("epoch") or 0), best_cer=status.get("best_cer"),
                       best_wer=status.get("best_wer"), batches_per_epoch=status.get("batches_per_epoch"),
                       error=status.get("error"))


def follow(run: Run, interval: float = 0.5, until_ended: bool = True) -> Iterator[RunEvent]:
    """The run's events from its beginning, then new ones as they come; ends once the run has ended (all of its
    events read), or after one pass when `until_ended` is False."""
    offset, last_status, step_times, last_step = 0, None, [], 0
    while True:
        events, offset = run.read_events(offset)
        for event in events:
            yield from curve_points(event)
            if event.get("type") == "step":
                step_times = (step_times + [float(event.get("time") or time.time())])[-SPEED_WINDOW:]
                last_step = int(event.get("step") or last_step)
            elif event.get("type") == "log":
                yield LogLine(str(event.get("level") or "info"), str(event.get("message") or ""),
                              float(event.get("time") or 0))
        status = run.status
        if status != last_status:
            last_status = status
            yield status_event(status)
        if events or status.get("state") in ACTIVE_STATES:
            yield _progress(run, status, step_times, last_step)
        if not until_ended or (status.get("state") in ENDED_STATES and not events):
            return
        time.sleep(interval)


def _progress(run: Run, status: dict, step_times: list[float], last_step: int) -> ProgressEvent:
    step = max(last_step, int(status.get("step") or 0))  # status.json is rewritten every few seconds only
    speed = None
    if len(step_times) > 1 and step_times[-1] > step_times[0]:
        speed = (len(step_times) - 1) / (step_times[-1] - step_times[0])
    try:
        training = run.config.get("training") or {}
    except ValueError:  # a config.yaml that cannot be read: no limits known
        training = {}
    fraction, left = estimate(step, training, batches_per_epoch=status.get("batches_per_epoch"),
                              steps_per_second=speed, started=status.get("started"), now=time.time())
    if status.get("state") == "finished":
        fraction, left = 1.0, 0.0
    return ProgressEvent(step=step, epoch=int(status.get("epoch") or 0), fraction=fraction, seconds_left=left)
