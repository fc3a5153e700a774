"""One active run per runs folder (issue 8): Starts raced from two threads and from two processes, resumes raced,
a worker started by hand, and status.json written by several processes at once."""
from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from asr_poc.training.launcher import RunAlreadyActive, start_run, stop_run
from asr_poc.runs import Run
from asr_poc.training.run_lock import RunsFolderLock
from conftest import tiny_config, wait_for


def race(starts: list) -> list:
    """Call every function in `starts` at the same moment from its own thread; their results or exceptions."""
    barrier = threading.Barrier(len(starts))
    results: list = [None] * len(starts)

    def go(i: int) -> None:
        barrier.wait()
        try:
            results[i] = starts[i]()
        except Exception as err:  # noqa: BLE001 (the race's loser)
            results[i] = err

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(starts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_lock_admits_one_holder_and_names_it(tmp_path):
    first = RunsFolderLock(tmp_path).acquire("run-a")
    with pytest.raises(RunAlreadyActive, match=f"run run-a is training \\(pid {os.getpid()}\\) in {tmp_path}"):
        RunsFolderLock(tmp_path).acquire("run-b")
    first.release()
    RunsFolderLock(tmp_path).acquire("run-b").release()


def test_two_threads_starting_at_once_one_wins(small_corpus, tmp_path):
    runs = [Run.create(tiny_config(small_corpus, tmp_path, "training.epochs=1000")) for _ in range(2)]
    results = race([lambda r=r: start_run(r, background="thread") for r in runs])
    refused = [r for r in results if isinstance(r, RunAlreadyActive)]
    handles = [r for r in results if not isinstance(r, Exception)]
    assert len(handles) == 1 and len(refused) == 1, results
    winner = handles[0].run
    assert f"run {winner.id} is training (pid {os.getpid()})" in str(refused[0])
    loser = next(r for r in runs if r != winner)
    assert loser.status["state"] == "created" and not loser.events()
    assert handles[0].stop(timeout=60)["state"] == "stopped"
    # the lock went with the run: the other one may start now, and a resume of it races with itself
    results = race([lambda: start_run(loser, background="thread"), lambda: start_run(loser, background="thread")])
    handles = [r for r in results if not isinstance(r, Exception)]
    assert len(handles) == 1 and isinstance(next(r for r in results if r not in handles), RunAlreadyActive)
    assert handles[0].stop(timeout=60)["state"] == "stopped"
    results = race([lambda: start_run(loser, background="thread", resume=True)] * 2)
    handles = [r for r in results if not isinstance(r, Exception)]
    assert len(handles) == 1 and isinstance(next(r for r in results if r not in handles), RunAlreadyActive)
    assert handles[0].stop(timeout=60)["state"] == "stopped"


RACER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from asr_poc.training import trainer  # noqa: F401 (imported before the start line, as a kernel would have)
    from asr_poc.training.launcher import RunAlreadyActive, start_run
    from asr_poc.runs import Run

    run, go = Run(sys.argv[1]), Path(sys.argv[2])
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.001)
    try:
        handle = start_run(run, background="process")
        print("won", handle.process.pid, flush=True)
    except RunAlreadyActive as err:
        print("refused", err, flush=True)
""")


def test_two_processes_starting_at_once_one_wins(small_corpus, tmp_path):
    runs = [Run.create(tiny_config(small_corpus, tmp_path / "runs", "training.epochs=1000")) for _ in range(2)]
    go = tmp_path / "go"
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(run.path), str(go)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent) for run in runs]
    assert [p.stdout.readline().strip() for p in racers] == ["ready", "ready"]  # imports done, both waiting
    go.touch()
    outputs = [p.communicate(timeout=120) for p in racers]
    lines = [out.strip() for out, _ in outputs]
    winners = [i for i, line in enumerate(lines) if line.startswith("won")]
    assert len(winners) == 1, outputs
    winner, loser = runs[winners[0]], runs[1 - winners[0]]
    worker_pid = int(lines[winners[0]].split()[1])
    # the holder is the winning launcher until it has started the worker, then the worker
    assert lines[1 - winners[0]] in [f"refused run {winner.id} is training (pid {pid}) in {tmp_path / 'runs'}; "
                                     f"stop it before starting another" for pid in (racers[winners[0]].pid, worker_pid)]
    assert wait_for(lambda: winner.events("step"), 120, "the winner to train")
    assert stop_run(winner, timeout=60)["state"] == "stopped"
    assert loser.status["state"] == "created"


def test_a_worker_started_by_hand_refuses_a_locked_folder(small_corpus, tmp_path):
    run = Run.create(tiny_config(small_corpus, tmp_path))
    lock = RunsFolderLock(tmp_path).acquire("someone-else")
    try:
        result = subprocess.run([sys.executable, "-m", "asr_poc.training.worker", str(run.path)],
                                capture_output=True, text=True, timeout=120)
    finally:
        lock.release()
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: run someone-else is training (pid {os.getpid()}) in {tmp_path}; stop it before starting another"]
    assert run.status["state"] == "created"


def _write_fields(path: str, name: str, count: int) -> None:
    run = Run(path)
    for i in range(count):
        run.write_status(**{f"{name}-{i}": i})


def test_status_written_by_several_processes_loses_no_field(small_corpus, tmp_path):
    run = Run.create(tiny_config(small_corpus, tmp_path))
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_write_fields, args=(str(run.path), f"p{n}", 40)) for n in range(4)]
    for p in writers:
        p.start()
    for p in writers:
        p.join(60)
    status = run.status
    assert all(f"p{n}-{i}" in status for n in range(4) for i in range(40))
    assert status["state"] == "created"


def test_cli_train_and_resume_are_refused_in_one_line_while_the_folder_is_locked(small_corpus, tmp_path, capsys):
    from asr_poc.cli import main as cli

    existing = Run.create(tiny_config(small_corpus, tmp_path))
    lock = RunsFolderLock(tmp_path).acquire("someone-else")
    try:
        for argv in (["train", "--root", str(tmp_path), "--set", f"datasets.synthetic.path={small_corpus}"],
                     ["train", "--resume", existing.id, "--root", str(tmp_path)]):
            assert cli(argv) == 1
            assert capsys.readouterr().err.splitlines() == [
                f"error: run someone-else is training (pid {os.getpid()}) in {tmp_path}; stop it before starting "
                f"another"]
    finally:
        lock.release()
    assert [p for p in tmp_path.iterdir() if p.is_dir()] == [existing.path]  # the refused new run left no folder
    assert existing.status["state"] == "created"


def test_a_start_waits_for_a_run_that_has_ended_but_not_yet_exited(small_corpus, tmp_path):
    """Resume pressed just after Stop: the stopped run's process still holds the lock for a moment."""
    ending, other = (Run.create(tiny_config(small_corpus, tmp_path, "training.epochs=1000")) for _ in range(2))
    lock = RunsFolderLock(tmp_path).acquire(ending.id)
    ending.write_status(state="running", pid=os.getpid(), hostname=os.uname().nodename)
    started = time.monotonic()
    with pytest.raises(RunAlreadyActive):  # still running: refused at once
        start_run(other, background="thread")
    assert time.monotonic() - started < 1
    ending.write_status(state="stopped")
    threading.Timer(1.0, lock.release).start()
    handle = start_run(other, background="thread")  # waits for the exiting process, then starts
    assert time.monotonic() - started >= 1.0
    assert handle.stop(timeout=60)["state"] == "stopped"
