"""What the training loop tells its run folder: events, status.json, and a heartbeat while it works.

Only rank 0 writes (the other ranks of a torchrun get a `Recorder` that writes nothing), so the loop never asks
which rank it is before it reports something.
"""
from __future__ import annotations

import threading
from typing import Callable

from ..runs import Run
from .tensorboard import TensorBoardSink

HEARTBEAT_SECONDS = 5.0


class Recorder:
    """Events (`events.jsonl`) and status fields (`status.json`) of `run`, written only when `enabled`."""

    def __init__(self, run: Run, enabled: bool = True):
        self.run, self.enabled = run, enabled
        try:
            self.tensorboard = TensorBoardSink.for_run(run) if enabled else None  # training.tensorboard: a copy
        except ValueError:  # config.yaml unreadable: train() records that as the run's failure, in one line
            self.tensorboard = None

    def event(self, event: dict) -> None:
        if self.enabled:
            self.run.append_event(event)
            if self.tensorboard is not None:
                self.tensorboard.write(event)

    def log(self, message: str, level: str = "info") -> None:
        self.event({"type": "log", "level": level, "message": message})

    def status(self, **fields) -> None:
        if self.enabled:
            self.run.write_status(**fields)


class Heartbeat(threading.Thread):
    """Rewrites status.json (`fields()`, and the `updated` time) every few seconds, even during evaluation."""

    def __init__(self, record: Recorder, fields: Callable[[], dict], every: float = HEARTBEAT_SECONDS):
        super().__init__(daemon=True, name="asr-poc-heartbeat")
        self.record, self.fields, self.every = record, fields, every
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.every):
            try:
                self.record.status(**self.fields())
            except OSError:  # a full disk is reported by the training loop itself
                pass

    def stop(self) -> None:
        self.done.set()
