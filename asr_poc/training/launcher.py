"""Start a run in the foreground, in a thread of this process, or as a separate process; stop it; wait for it.

A thread suits a researcher's model defined in a notebook cell (it lives only in that kernel). A process
(`python -m asr_poc.training.worker RUN_DIR`) is what the dashboard and `asr-poc train --background` use: it is
started in its own session, so closing the browser tab, a culled Voila kernel or a crash elsewhere does not end
the training. Either way the run folder is the only channel: status.json, events.jsonl and the STOP file.

Only one run trains in a runs folder at a time: `start_run` takes the folder's lock (`run_lock`) before anything
starts, and the training (thread, or worker process) holds it until it ends.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator, Literal, Optional

from ..runs import ACTIVE_STATES, Run, list_runs
from .run_lock import RunAlreadyActive, RunsFolderLock

Background = Literal["foreground", "thread", "process"]
POLL_SECONDS = 0.2
ENDING_GRACE_SECONDS = 5.0  # a run that has written its end but whose process is still exiting holds the lock


class RunHandle:
    """What `start_run` returns: the run, whether it is alive, and a way to stop it or wait for it."""

    def __init__(self, run: Run, thread: Optional[threading.Thread] = None,
                 process: Optional[subprocess.Popen] = None, stop_event: Optional[threading.Event] = None):
        self.run = run
        self.thread, self.process, self.stop_event = thread, process, stop_event
        self.ended: Optional[dict] = None  # the status train() returned, where it ran in this thread

    def __repr__(self) -> str:
        return f"RunHandle({self.run.id!r}, state={self.status.get('state')!r})"

    @property
    def status(self) -> dict:
        return self.run.status

    @property
    def alive(self) -> bool:
        """Whether the training is still going (thread or process alive, or the run folder says so)."""
        if self.thread is not None:
            return self.thread.is_alive()
        if self.process is not None:
            return self.process.poll() is None
        return self.run.is_active

    def stop(self, wait: bool = True, timeout: float = 60.0) -> dict:
        """Ask the loop to stop after its current step (it writes last.pt first); optionally wait for it."""
        self.run.request_stop()
        if self.stop_event is not None:
            self.stop_event.set()
        return self.wait(timeout) if wait else self.status

    def wait(self, timeout: Optional[float] = None) -> dict:
        """Block until the training ends (or `timeout` seconds pass); return the run's status."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.alive and (deadline is None or time.monotonic() < deadline):
            time.sleep(POLL_SECONDS)
        return self.status


def active_runs(root: str | os.PathLike | None = None) -> list[Run]:
    """Runs under `root` (default: checkpoints/) that are training now."""
    return [run for run in list_runs(root) if run.is_active]


def start_run(run: Run, background: Background = "thread", resume: bool = False,
              root: str | os.PathLike | None = None, exclusive: bool = False) -> RunHandle:
    """Train `run` in the foreground (blocks, with a progress bar), a daemon thread, or a separate process.

    Raises `RunAlreadyActive` (one line: which run, which pid) if `run` is already training, or if another run
    trains in the same runs folder (the run's parent folder): the folder's lock admits one run at a time, however
    close together two Starts come. `root` and `exclusive` are kept for callers; the lock always applies.
    """
    from .trainer import train  # torch: the dashboard imports this module and stays light

    if background not in ("foreground", "thread", "process"):
        raise ValueError(f"background = {background!r}: must be foreground, thread or process")
    if run.is_active:
        raise RunAlreadyActive(f"run {run.id} is already {run.status.get('state')}; stop it first")
    lock = _take_lock(run)
    try:
        run.clear_stop()
        if background == "foreground":
            stop_event = threading.Event()
            with _first_ctrl_c_stops(stop_event):
                train(run, resume=resume, stop_event=stop_event, progress=True)
            return RunHandle(run)
        if background == "thread":
            stop_event = threading.Event()
            run.write_status(state="running", pid=os.getpid(), hostname=socket.gethostname())
            thread = threading.Thread(target=_train_then_release, args=(train, run, lock),
                                      kwargs={"resume": resume, "stop_event": stop_event},
                                      daemon=True, name=f"asr-poc-train-{run.id}")
            thread.start()
            lock = None  # the thread releases it
            return RunHandle(run, thread=thread, stop_event=stop_event)
        command = [sys.executable, "-m", "asr_poc.training.worker", str(run.path), "--lock-fd", str(lock.fd)]
        with open(run.log_path, "ab") as log:
            process = subprocess.Popen(command + (["--resume"] if resume else []), stdout=log,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, pass_fds=(lock.fd,),
                                       start_new_session=True, cwd=os.getcwd())
        lock.record(run.id, process.pid)  # the worker holds the lock now; this process lets go of its copy
        # Claim the run at once, so that a second Start in the next moment is refused too.
        run.write_status(state="running", pid=process.pid, hostname=socket.gethostname())
        threading.Thread(target=process.wait, daemon=True, name=f"asr-poc-reap-{process.pid}").start()
        return RunHandle(run, process=process)
    finally:
        if lock is not None:
            lock.release()


def start_on_all_ranks(run: Optional[Run], resume: bool = False) -> RunHandle:
    """Under torchrun (`torchrun --nproc_per_node N -m asr_poc train ...`): train one run with every rank, in the
    foreground, and return when it ends.

    Rank 0 passes the run (a folder it has just made, or the one to resume) and takes the runs folder's lock; the
    other ranks pass None. Rank 0 then sends the run's folder to the others over torchrun's process group (the
    rendezvous every rank joins anyway: nothing to guess, no file to race for, and it works across machines that
    share the runs folder). If rank 0 cannot start it (another run holds the lock), every rank raises the same
    one-line `RunAlreadyActive`. The first Ctrl-C stops every rank cleanly after the current step."""
    # torch: imported only where training happens (following a run must not import it)
    from .distributed import Ranks, from_rank_0, join_group, leave_group
    from .trainer import train  # torch: the dashboard imports this module and stays light

    ranks = Ranks.from_env()
    join_group(ranks)
    lock, outcome, refusal = None, None, None
    if ranks.master:
        try:
            if run is None:
                raise ValueError("rank 0 must pass the run it trains")
            if run.is_active:
                raise RunAlreadyActive(f"run {run.id} is already {run.status.get('state')}; stop it first")
            lock = _take_lock(run)
            run.clear_stop()
            outcome = {"run": str(run.path)}
        except Exception as err:  # told to every rank first, so that none waits for a run that never comes
            refusal, outcome = err, {"error": str(err)}
    try:
        outcome = from_rank_0(outcome, ranks)
        if refusal is not None:
            raise refusal
        if "error" in outcome:
            raise RunAlreadyActive(outcome["error"])
        run = run if ranks.master else Run(outcome["run"])
        stop_event = threading.Event()
        with _first_ctrl_c_stops(stop_event):
            ended = train(run, resume=resume, stop_event=stop_event, progress=ranks.master)
        handle = RunHandle(run)
        handle.ended = ended  # this rank's view: rank 0 may not have written status.json yet
        return handle
    finally:
        if lock is not None:
            lock.release()
        leave_group()  # train() has left already, unless the run never started


def _take_lock(run: Run) -> RunsFolderLock:
    """The runs folder's lock for `run`; waits a few seconds only while the holder's run has ended (its process
    is exiting, e.g. Resume pressed just after Stop); otherwise refuses at once."""
    deadline = time.monotonic() + ENDING_GRACE_SECONDS
    while True:
        try:
            return RunsFolderLock(run.root).acquire(run.id)
        except RunAlreadyActive:
            _, holder = RunsFolderLock(run.root).holder()
            ended = holder is not None and (run.root / holder).is_dir() and not Run(run.root / holder).is_active
            if not ended or time.monotonic() >= deadline:
                raise
            time.sleep(POLL_SECONDS / 4)


def _train_then_release(train, run: Run, lock: RunsFolderLock, **kwargs) -> None:
    try:
        train(run, **kwargs)
    finally:
        lock.release()


@contextlib.contextmanager
def _first_ctrl_c_stops(stop_event: threading.Event) -> Iterator[None]:
    """In the main thread, the first Ctrl-C stops the run cleanly (final last.pt); a second one interrupts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if stop_event.is_set():
            raise KeyboardInterrupt
        print("\nstopping after this step (Ctrl-C again to interrupt)...", file=sys.stderr, flush=True)
        stop_event.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def stop_run(run_or_id: Run | str | os.PathLike, root: str | os.PathLike | None = None,
             timeout: float = 60.0) -> dict:
    """Request a stop of a run (by Run, folder or id) and wait up to `timeout` s for it to end."""
    run = run_or_id if isinstance(run_or_id, Run) else Run.open(run_or_id, root=root)
    if not run.is_active:
        run.clear_stop()
        return run.status
    run.request_stop()
    deadline = time.monotonic() + timeout
    while run.status.get("state") in ACTIVE_STATES and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
    return run.status


def still_active(status: dict) -> bool:
    """Whether a status returned by `stop_run` says the run has not stopped yet."""
    return status.get("state") in ACTIVE_STATES


def log_tail(run: Run, lines: int = 20) -> str:
    """The last lines of a background run's log.txt (stdout and stderr), for error messages."""
    path = Path(run.log_path)
    if not path.is_file():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
