"""Real-check CER and WER per source group (issue 11): which real voices a checkpoint hears and which it does not.

    .venv/bin/python benchmarks/real_check_groups.py NAME=CHECKPOINT ... [--real-check data/real-check] \
        [--results benchmarks/results/real-check-groups-2core.jsonl]

Each checkpoint decodes the whole set once (greedy, as `asr-poc eval`); the transcripts are then scored per group of
`sources.csv` (LibriVox readers, the Asterisk prompts, CMU, MFA ...) with the same jiwer error rates. One JSON line
per checkpoint, with the load average before and after.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", metavar="NAME=CHECKPOINT")
    parser.add_argument("--real-check", default="data/real-check")
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "real-check-groups-2core.jsonl"))
    args = parser.parse_args()

    from asr_poc.datasets.real_check import RealCheckDataset, read_groups
    from asr_poc.evaluation import error_rates, evaluate
    from asr_poc.models.interface import BaseASRModel

    group_of = read_groups(args.real_check)
    for item in args.checkpoints:
        name, _, checkpoint = item.partition("=")
        load_start = os.getloadavg()
        model = BaseASRModel.from_checkpoint(checkpoint, device="cpu")
        dataset = RealCheckDataset({"path": args.real_check, "sample_rate": model.sample_rate}, "test")
        result = evaluate(model, dataset, batch_size=8)
        by_group: dict[str, tuple[list[str], list[str]]] = {}
        for uid, ref, hyp in zip(result["ids"], result["references"], result["hypotheses"]):
            refs, hyps = by_group.setdefault(group_of.get(uid, "?"), ([], []))
            refs.append(ref)
            hyps.append(hyp)
        groups = {g: {"clips": len(r), **{k: round(v, 4) for k, v in error_rates(r, h).items()}}
                  for g, (r, h) in sorted(by_group.items(), key=lambda kv: -len(kv[1][0]))}
        line = {"name": name, "checkpoint": checkpoint, "all": {"cer": round(result["cer"], 4),
                                                              "wer": round(result["wer"], 4),
                                                              "clips": result["utterances"]},
                "groups": groups, "load_start": [round(x, 2) for x in load_start],
                "load_end": [round(x, 2) for x in os.getloadavg()]}
        print(json.dumps(line))
        with open(args.results, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
