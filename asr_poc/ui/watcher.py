"""Follow a run folder from a background thread and hand new events to the UI in batches.

The training loop only appends to `events.jsonl` and rewrites `status.json`; it never knows who watches. A
`RunWatcher` reads what is new a few times a second (`Run.read_events(offset)`) and calls `on_events` once per
tick with everything that arrived since the last one, so a widget redraws at most a few times a second however fast
the run logs. The first tick after `start()` delivers the whole history, which is how a reloaded page, or a second
browser, shows a run from its beginning.
"""
from __future__ import annotations

import threading
import time
import traceback
from typing import Callable, Optional

from ..app.runs import Run

EventsCallback = Callable[[list[dict]], None]
StatusCallback = Callable[[dict], None]


class RunWatcher:
    """Calls `on_events(batch)` with new events and `on_status(status)` when status.json changes.

    Both callbacks run on the watcher's thread, never on the training loop's. `interval` is the time between
    reads (seconds); `status_every` is how often status.json is read (it changes every few seconds at most).
    """

    def __init__(self, run: Run, on_events: EventsCallback, on_status: Optional[StatusCallback] = None,
                 interval: float = 0.25, status_every: float = 1.0):
        self.run = run
        self.on_events, self.on_status = on_events, on_status
        self.interval, self.status_every = interval, status_every
        self.offset = 0
        self.batches = 0          # how many batches were delivered (tests and diagnostics)
        self.events_seen = 0
        self.last_error: Optional[str] = None
        self._last_status: Optional[dict] = None
        self._next_status = 0.0
        self._done = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def poll(self) -> int:
        """Read once: deliver new events as one batch, and the status if it changed. Returns the number of events."""
        events, self.offset = self.run.read_events(self.offset)
        if events:
            self.batches += 1
            self.events_seen += len(events)
            self.on_events(events)
        now = time.monotonic()
        if self.on_status is not None and (events or now >= self._next_status):
            self._next_status = now + self.status_every
            status = self.run.status
            if status != self._last_status:
                self._last_status = status
                self.on_status(status)
        return len(events)

    def _loop(self) -> None:
        while not self._done.is_set():
            try:
                self.poll()
                self.last_error = None
            except Exception:  # a widget error must not kill the watcher; keep the message for the log panel
                self.last_error = traceback.format_exc(limit=3)
            self._done.wait(self.interval)

    def start(self) -> "RunWatcher":
        if self._thread is None or not self._thread.is_alive():
            self._done.clear()
            self._thread = threading.Thread(target=self._loop, daemon=True, name=f"asr-poc-watch-{self.run.id}")
            self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self._done.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
