"""Real speech in training (issue 11): score checkpoints on the real-check clips that no training set holds, and more.

    .venv/bin/python benchmarks/real_training.py NAME=CHECKPOINT ... --real-check /tmp/rc92 \
        [--results benchmarks/results/real-training-2core.jsonl]

For each checkpoint (one after another, one process) it appends one JSON line with WER/CER on: the real-check set
without its `asterisk` group (`real_check_other`: speakers never trained on), that group alone
(`real_check_asterisk`: prompts never trained on, but the Asterisk speaker), the synthetic test split, and the
Asterisk test split when data/asterisk exists; and the load average (`os.getloadavg`) before and after.
Training is benchmarks/ablation.py's (fixed steps); this scores its last.pt beside a reference run's.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ablation import ROOT, _score  # noqa: E402  (the same scoring as the ablation lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", metavar="NAME=CHECKPOINT")
    parser.add_argument("--real-check", required=True, help="a folder from asr-poc prepare real-check")
    parser.add_argument("--asterisk", default="data/asterisk")
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "real-training-2core.jsonl"))
    args = parser.parse_args()

    from asr_poc.datasets.real_check import read_groups

    groups = sorted(set(read_groups(args.real_check).values()))
    other = [g for g in groups if g != "asterisk"]
    rc = f"datasets.real-check.path={args.real_check}"
    for item in args.checkpoints:
        name, _, checkpoint = item.partition("=")
        load_start = os.getloadavg()
        line = {"name": name, "checkpoint": checkpoint,
                "real_check_other": {"groups": other, **_score(Path(checkpoint), "real-check",
                                                               [rc, f"datasets.real-check.groups=[{', '.join(other)}]"])},
                "real_check_asterisk": _score(Path(checkpoint), "real-check", [rc, "datasets.real-check.groups=[asterisk]"]),
                "synthetic_test": _score(Path(checkpoint), "synthetic", [])}
        if (ROOT / args.asterisk / "metadata.csv").is_file():
            line["asterisk_test"] = _score(Path(checkpoint), "asterisk", [f"datasets.asterisk.path={args.asterisk}"])
        line.update(load_start=[round(x, 2) for x in load_start], load_end=[round(x, 2) for x in os.getloadavg()])
        print(json.dumps(line), flush=True)
        with open(args.results, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
