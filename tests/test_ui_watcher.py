"""The events watcher and the history it feeds: whole history on attach, then batches a few times a second."""
from __future__ import annotations

import threading
import time
from pathlib import Path

from asr_poc.runs import Run
from asr_poc.ui.history import RunHistory, format_seconds, progress
from asr_poc.ui.watcher import RunWatcher
from conftest import tiny_config


def make_run(small_corpus: Path, tmp_path: Path) -> Run:
    return Run.create(tiny_config(small_corpus, tmp_path / "runs"))


def step(n: int, loss: float = 2.0) -> dict:
    return {"type": "step", "step": n, "epoch": 1, "loss": loss, "lr": 1e-3, "audio_seconds_per_second": 50.0}


def test_attach_delivers_the_whole_history_in_one_batch(small_corpus: Path, tmp_path: Path):
    run = make_run(small_corpus, tmp_path)
    for n in range(1, 501):
        run.append_event(step(n))
    batches: list[list[dict]] = []
    watcher = RunWatcher(run, batches.append)
    assert watcher.poll() == 500
    assert len(batches) == 1 and [e["step"] for e in batches[0]] == list(range(1, 501))
    assert watcher.poll() == 0 and len(batches) == 1, "nothing new: no batch"


def test_events_written_fast_arrive_in_few_batches(small_corpus: Path, tmp_path: Path):
    """A writer appending 200 events a second is seen at the watcher's pace (4 reads a second), not per event."""
    run = make_run(small_corpus, tmp_path)
    batches: list[list[dict]] = []
    statuses: list[dict] = []
    watcher = RunWatcher(run, batches.append, statuses.append, interval=0.25).start()
    main_thread = threading.current_thread()
    callers: set = set()
    watcher.on_events = lambda evs: (callers.add(threading.current_thread()), batches.append(evs))
    try:
        for n in range(1, 301):
            run.append_event(step(n))
            time.sleep(0.005)
        deadline = time.monotonic() + 5
        while sum(len(b) for b in batches) < 300 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        watcher.stop()
    steps = [e["step"] for b in batches for e in b]
    assert steps == list(range(1, 301)), "every event once, in order"
    assert 1 <= len(batches) <= 20, f"{len(batches)} batches for 300 events"
    assert main_thread not in callers, "callbacks run on the watcher's thread"
    assert statuses and statuses[0]["state"] == "created"


def test_a_partial_last_line_waits_for_its_end(small_corpus: Path, tmp_path: Path):
    run = make_run(small_corpus, tmp_path)
    run.append_event(step(1))
    with open(run.events_path, "a") as f:
        f.write('{"type": "step", "step": 2, "lo')
    batches: list[list[dict]] = []
    watcher = RunWatcher(run, batches.append)
    watcher.poll()
    with open(run.events_path, "a") as f:
        f.write('ss": 1.5}\n')
    watcher.poll()
    assert [[e["step"] for e in b] for b in batches] == [[1], [2]]


def test_history_summarises_curves_evals_logs_and_progress():
    h = RunHistory()
    changed = h.extend([
        {"type": "log", "level": "info", "message": "conformer: 10 parameters; 4 batches an epoch of 8 on cpu",
         "batches_per_epoch": 4},
        {"type": "status", "state": "running"},
        *[{**step(n), "time": 1000.0 + n} for n in range(1, 5)],
        {"type": "eval", "step": 4, "epoch": 1, "wer": 0.9, "cer": 0.5, "rtf": 0.01},
        {"type": "eval", "step": 8, "epoch": 2, "wer": 0.7, "cer": 0.3, "rtf": 0.02},
        {"type": "log", "level": "warning", "message": "loss is nan at step 5; batch skipped"},
    ])
    assert changed == {"logs", "state", "steps", "evals"}
    assert h.steps == [1, 2, 3, 4] and h.batches_per_epoch == 4 and h.state == "running"
    assert h.best_eval == {"cer": 0.3, "wer": 0.7, "rtf": 0.02, "step": 8}
    assert h.steps_per_second() == 1.0
    fraction, left = progress(h, {"step": 4}, {"epochs": 2, "max_steps": None, "max_minutes": None})
    assert fraction == 0.5 and left == 4.0
    fraction, left = progress(h, {"step": 4, "started": 1000.0}, {"epochs": 100, "max_steps": 5, "max_minutes": 1},
                              now=1030.0)
    assert fraction == 0.8 and left == 1.0  # max_steps comes first
    assert format_seconds(3725) == "1:02:05" and format_seconds(None) == "?"
    h.extend([{"type": "status", "state": "failed", "error": "boom"}])
    assert h.logs[-1]["level"] == "error" and "boom" in h.logs[-1]["message"]
