"""Training as a person does it: start a run from a `RunRequest`, resume it, stop it, follow it.

Every face calls these and nothing else starts a run: `asr-poc train` / `stop` / `adapt`, the Training tab's
Start / Stop / Resume, the Record tab's "Adapt to my voice", the notebooks. A run trains in this process
(`foreground`: the first Ctrl-C stops it after a last.pt), in a thread of it, or in a separate process that outlives
the page (`process`). One run trains per runs folder: the folder's lock is taken before anything trains, and a
refused start raises `RunAlreadyActive` (one line: which run holds it) and leaves no new folder behind. The run
folder's files (status.json, events.jsonl, STOP) are the only channel to the training; `follow` reads them.
"""
from __future__ import annotations

import os
import shutil
import sys
from typing import Callable, Optional

from ..config import deep_merge, validate_config
from ..runs import Run
from ..threads import describe, prepare_process
from ..training.launcher import Background, RunAlreadyActive, RunHandle, active_runs, log_tail, start_on_all_ranks, \
    start_run, still_active, stop_run
from .follow import CurvePoint, LogLine, ProgressEvent, RunEvent, StatusEvent, follow
from .run_request import Adaptation, RunRequest, nested, parse_sets, raw_config

__all__ = ["Adaptation", "Background", "CurvePoint", "LogLine", "ProgressEvent", "RunAlreadyActive", "RunEvent",
           "RunHandle", "RunRequest", "StatusEvent", "active_runs", "adaptation_summary", "create", "follow",
           "log_tail", "parse_sets", "resume", "start", "still_active", "stop"]

OnReady = Callable[[Run], None]


def create(request: RunRequest) -> Run:
    """Validate `request` into its config and make the run folder; nothing trains yet."""
    return _create(request, raw_config(request))


def start(request: RunRequest, background: Background = "foreground", on_ready: Optional[OnReady] = None
          ) -> RunHandle:
    """Validate `request`, make its run folder, and train it (see the module's doc for `background`).

    `on_ready(run)` is called once the folder exists, before training (the CLI prints the folder then). Under
    torchrun every rank calls this: each checks the request, rank 0 makes the folder and all of them train it.
    Raises `ConfigError` for a bad request and `RunAlreadyActive` while another run trains in the runs folder."""
    raw = raw_config(request)
    threads = _threads_for_this_process(raw.get("training") or {}) if background == "foreground" else None
    under_torchrun, rank_0 = _torchrun()
    if under_torchrun and not rank_0:
        validate_config(raw)  # every rank checks the request; rank 0 makes the folder
    run = _create(request, raw) if rank_0 else None
    if run is not None:
        _ready(run, threads, on_ready)
    try:
        if under_torchrun:
            return start_on_all_ranks(run, resume=False)
        return start_run(run, background=background)
    except RunAlreadyActive:
        if run is not None:  # the folder made a moment ago holds nothing yet
            shutil.rmtree(run.path, ignore_errors=True)
        raise


def resume(run: Run | str, changes: Optional[RunRequest] = None, background: Background = "foreground",
           root: Optional[str] = None, on_ready: Optional[OnReady] = None) -> RunHandle:
    """Continue `run` (a Run, its folder or id under `root`) from its last.pt. `changes` may set `training.*` keys
    (epochs, minutes, max_steps, ...); the model and data stay (anything else is a `ConfigError`)."""
    under_torchrun, rank_0 = _torchrun()
    run = run if isinstance(run, Run) else Run.open(run, root=root)
    values = changes.training_values() if changes is not None else {}
    raw = deep_merge(run.config, nested(values))
    threads = _threads_for_this_process(raw.get("training") or {}) if background == "foreground" else None
    if rank_0:
        if values:
            run.write_config(validate_config(raw, check_data=False))
        _ready(run, threads, on_ready)
    if under_torchrun:
        return start_on_all_ranks(run if rank_0 else None, resume=True)
    return start_run(run, background=background, resume=True)


def stop(target: RunHandle | Run | str, root: Optional[str] = None, wait: bool = True, timeout: float = 60.0
         ) -> dict:
    """Ask a run (a handle `start` returned, a Run, its folder or id) to stop after its current step; it writes
    last.pt first. Waits up to `timeout` s for it to end unless `wait` is False; returns its status."""
    if isinstance(target, RunHandle):
        return target.stop(wait=wait, timeout=timeout)
    run = target if isinstance(target, Run) else Run.open(target, root=root)
    if wait:
        return stop_run(run, timeout=timeout)
    if run.is_active:
        run.request_stop()
    return run.status


def adaptation_summary(run: Run) -> Optional[dict]:
    """{speaker, init_checkpoint, before, after} of an adaptation run, None for any other (`asr_poc.adapt`)."""
    from ..adapt import adaptation_summary as summary  # torch: the adaptation module scores checkpoints

    return summary(run)


def _create(request: RunRequest, raw: dict) -> Run:
    if request.adaptation is None:
        return Run.create(validate_config(raw), root=request.root)
    from ..adapt import DEFAULT_MINUTES, create_adaptation_run  # torch: scores the starting checkpoint

    if not request.init_from:
        raise ValueError("an adaptation starts from a checkpoint: set init_from")
    return create_adaptation_run(
        raw, request.init_from, speaker=request.adaptation.speaker, repeat=request.adaptation.repeat,
        minutes=DEFAULT_MINUTES if request.minutes is None else (request.minutes or None),
        max_steps=request.max_steps, learning_rate=request.learning_rate, root=request.root)


def _ready(run: Run, threads: Optional[dict], on_ready: Optional[OnReady]) -> None:
    if on_ready is not None:
        on_ready(run)
    if threads:
        run.append_event({"type": "log", "level": "info", "message": describe(threads), "threads": threads})


def _torchrun() -> tuple[bool, bool]:
    """(whether torchrun started this process among several, whether it is rank 0)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1, os.environ.get("RANK", "0") == "0"


def _threads_for_this_process(training: dict) -> Optional[dict]:
    """`training.threads` / `num_threads` for a run trained in this process, applied as the background worker
    applies them (asr_poc/threads.py). Called before the config is validated, because validating a model's section
    imports torch and OpenMP reads its settings then; a process that runs torch already (a notebook, a test) keeps
    its own."""
    if "torch" in sys.modules:
        return None
    try:
        return prepare_process(training.get("threads", "auto"), training.get("num_threads"))
    except Exception:  # noqa: BLE001 - a bad value is reported, in one line, by the validation that follows
        return None
