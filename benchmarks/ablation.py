"""Ablation for real speech (issue 11, section 6): train one variant for a fixed number of optimizer steps, then score
its last.pt (the weights after exactly that many steps) on the real-check set and on the synthetic test split; append one JSON line to a results file.

    .venv/bin/python benchmarks/ablation.py NAME --corpus data/synthetic --steps 2250 \
        [--set KEY=VALUE ...] [--results benchmarks/results/ablation.jsonl]

Fixed steps, not minutes: the machine is shared, so wall-clock budgets measure the neighbours. The line records
steps per minute of this run and the load average (`os.getloadavg`) at its start and end, so that a reader can
convert steps into the 10 minutes of an idle 2-core machine (about 2,250 steps of batch 16).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _score(checkpoint: Path, dataset: str, overrides: list[str]) -> dict:
    """WER/CER of `checkpoint` on the test split of `dataset`, as `asr-poc eval` computes them."""
    from asr_poc.config import dataset_section, load_config
    from asr_poc.evaluation import evaluate
    from asr_poc.models.interface import BaseASRModel
    from asr_poc.plugins import load_dataset

    model = BaseASRModel.from_checkpoint(checkpoint, device="cpu")
    cfg = load_config(None, [f"dataset={dataset}", *overrides])
    section = {**dataset_section(cfg), "sample_rate": model.sample_rate}
    result = evaluate(model, load_dataset(dataset, section, "test"), batch_size=8, progress=False)
    return {"wer": round(result["wer"], 4), "cer": round(result["cer"], 4), "utterances": result["utterances"]}


def _events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name")
    parser.add_argument("--corpus", required=True, help="the synthetic corpus to train on")
    parser.add_argument("--real-check", default="data/real-check")
    parser.add_argument("--test-corpus", action="append", default=[], metavar="DIR",
                        help="also score the test split of this synthetic corpus (repeatable): corpora with other "
                        "texts compare on the same files")
    parser.add_argument("--steps", type=int, default=2250)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (1 on a crowded machine)")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--runs", default="/tmp/asr-poc-ablation-runs")
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "ablation.jsonl"))
    args = parser.parse_args()

    from asr_poc.config import load_config
    from asr_poc.runs import Run
    from asr_poc.training.trainer import train

    data = [f"datasets.synthetic.path={args.corpus}", f"datasets.real-check.path={args.real_check}"]
    cfg = load_config(None, data + [f"checkpoint_dir={args.runs}", f"training.max_steps={args.steps}",
                                    "training.max_minutes=null", f"training.num_threads={args.threads}", *args.overrides])
    run = Run.create(cfg)
    load_start, started = os.getloadavg(), time.monotonic()
    status = train(run)
    minutes = (time.monotonic() - started) / 60
    load_end = os.getloadavg()
    checkpoint = run.last_checkpoint  # the weights after exactly `steps` steps
    rates = [e["audio_seconds_per_second"] for e in _events(run.path / "events.jsonl")
             if e.get("type") == "step" and e.get("audio_seconds_per_second")]
    line = {"name": args.name, "run": str(run.path), "steps": status.get("step", args.steps),
            "state": status.get("state"), "minutes": round(minutes, 1),
            "steps_per_minute": round(status.get("step", args.steps) / minutes, 1),
            "audio_seconds_per_second": round(sum(rates) / len(rates), 1) if rates else None,
            "load_start": [round(x, 2) for x in load_start], "load_end": [round(x, 2) for x in load_end],
            "overrides": args.overrides, "corpus": args.corpus,
            "real_check": _score(checkpoint, "real-check", data),
            "synthetic_test": _score(checkpoint, "synthetic", data),
            "other_tests": {corpus: _score(checkpoint, "synthetic", [*data, f"datasets.synthetic.path={corpus}"])
                            for corpus in args.test_corpus}}
    print(json.dumps(line))
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    with open(results, "a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
