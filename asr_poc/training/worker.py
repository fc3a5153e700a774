"""Train one run folder in this process: `python -m asr_poc.training.worker RUN_DIR [--resume]`.

The launcher starts this for background runs; `torchrun --nproc_per_node=N -m asr_poc.training.worker RUN_DIR`
trains the same run on N GPUs with DDP (rank 0 writes the folder). SIGTERM and SIGINT ask the loop to stop
cleanly, after a final last.pt, exactly like `asr-poc stop`.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading

from .run import Run
from .trainer import train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asr_poc.training.worker", description=__doc__)
    parser.add_argument("run_dir", help="the run folder (holds config.yaml)")
    parser.add_argument("--resume", action="store_true", help="continue from the run's last.pt")
    args = parser.parse_args(argv)

    stop_event = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop_event.set())
    status = train(Run(args.run_dir), resume=args.resume, stop_event=stop_event)
    return 0 if status.get("state") in ("finished", "stopped") else 1


if __name__ == "__main__":
    sys.exit(main())
