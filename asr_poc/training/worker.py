"""Train one run folder in this process: `python -m asr_poc.training.worker RUN_DIR [--resume]`.

The launcher starts this for background runs; `torchrun --nproc_per_node=N -m asr_poc.training.worker RUN_DIR`
trains the same run on N GPUs with DDP (rank 0 writes the folder). SIGTERM and SIGINT ask the loop to stop
cleanly, after a final last.pt, exactly like `asr-poc stop`.

The worker holds the runs folder's lock (`run_lock`) while it trains: the one its launcher passed (`--lock-fd`),
or, started by hand or by torchrun, one it takes itself (rank 0); if another run holds it, it says which and exits 1.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from ..runs import Run
from ..threads import describe, prepare_process
from .run_lock import RunAlreadyActive, RunsFolderLock


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asr_poc.training.worker", description=__doc__)
    parser.add_argument("run_dir", help="the run folder (holds config.yaml)")
    parser.add_argument("--resume", action="store_true", help="continue from the run's last.pt")
    parser.add_argument("--lock-fd", type=int, help="an open, locked runs-folder lock handed over by the launcher")
    args = parser.parse_args(argv)
    run = Run(args.run_dir)
    lock = None
    if args.lock_fd is not None:
        lock = RunsFolderLock(run.root, fd=args.lock_fd)  # held open while this process trains
    elif os.environ.get("RANK", "0") == "0":
        try:
            lock = RunsFolderLock(run.root).acquire(run.id)
        except RunAlreadyActive as err:
            print(f"error: {err}", file=sys.stderr)
            return 1

    training = run.config.get("training") or {}
    threads = prepare_process(training.get("threads", "auto"), training.get("num_threads"), background=True,
                              nice=training.get("nice", 0))
    from .trainer import train  # after prepare_process: OpenMP reads its settings once, when torch loads it

    if os.environ.get("RANK", "0") == "0":
        run.append_event({"type": "log", "level": "info", "message": describe(threads), "threads": threads})
    stop_event = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop_event.set())
    status = train(run, resume=args.resume, stop_event=stop_event)
    if lock is not None:
        lock.release()  # at once: the interpreter's exit can take seconds, and a Resume may be waiting
    return 0 if status.get("state") in ("finished", "stopped") else 1


if __name__ == "__main__":
    sys.exit(main())
