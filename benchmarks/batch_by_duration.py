"""Batches by count against batches by duration, at fixed steps, on a shared machine (issue 10).

    .venv/bin/python benchmarks/batch_by_duration.py --corpus data/synthetic --steps 300 --chunks 4 \
        [--batch-size 16] [--batch-seconds auto] [--set KEY=VALUE ...]

Two runs of the default model on the same corpus: `training.batch_size` utterances a batch (count), and
`training.batch_seconds` of padded audio a batch (duration; `auto` picks the value whose batches hold, on average,
as much real audio as the count batches, so that equal steps mean equal audio seen). The two runs take turns in
`--chunks` pieces (train, stop at a step limit, resume exactly): both see the same neighbours on the machine.
For each: training throughput (audio seconds of its batches / wall seconds between its first and last step of
each piece, summed), padding, the load average around each piece, and the dev CER/WER of last.pt after exactly
`--steps` steps. Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path


def padded_and_real(sampler, durations: list[float], steps: int) -> tuple[float, float]:
    """(padded, real) audio seconds of the first `steps` batches the sampler gives (epochs in order)."""
    padded = real = 0.0
    epoch, done = 0, 0
    while done < steps:
        sampler.set_epoch(epoch)
        for batch in sampler.batches()[: steps - done]:
            lengths = [durations[i] for i in batch]
            padded, real, done = padded + max(lengths) * len(lengths), real + sum(lengths), done + 1
        epoch += 1
    return padded, real


def auto_batch_seconds(durations: list[float], batch_size: int, seed: int) -> float:
    """The batch_seconds whose batches hold on average as much real audio as `batch_size`-utterance batches."""
    from asr_poc.datasets.bucketing import DynamicBucketingSampler, make_batch_sampler

    count = make_batch_sampler(durations, batch_size, None, seed=seed)
    target = sum(durations) / len(count)  # real audio per count batch
    low, high = max(durations), 20 * target + max(durations)
    for _ in range(30):  # bisection: real audio per batch grows with the limit
        mid = (low + high) / 2
        sampler = DynamicBucketingSampler(durations, mid, seed=seed)
        low, high = (mid, high) if sum(durations) / len(sampler) < target else (low, mid)
    return round(high, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="data/synthetic")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--chunks", type=int, default=4, help="turns each run takes")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--batch-seconds", default="auto")
    parser.add_argument("--eval-utterances", type=int, default=200)
    parser.add_argument("--first", choices=["count", "duration"], default="count", help="which run takes each turn first")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--runs", default="/tmp/asr-poc-batching-runs")
    args = parser.parse_args()

    from asr_poc.config import load_config
    from asr_poc.datasets.bucketing import make_batch_sampler
    from asr_poc.evaluation import evaluate
    from asr_poc.models.interface import BaseASRModel
    from asr_poc.plugins import load_dataset
    from asr_poc.runs import Run
    from asr_poc.training.trainer import train

    base = [f"datasets.synthetic.path={args.corpus}", "dataset=synthetic", f"checkpoint_dir={args.runs}",
            "training.max_minutes=null", "training.eval_utterances=0", "training.extra_eval=[]",
            "training.checkpoint_minutes=null", f"training.batch_size={args.batch_size}", *args.overrides]
    cfg = load_config(None, base)
    section = {**cfg["datasets"]["synthetic"], "path": args.corpus}
    durations = load_dataset("synthetic", section, "train").durations()
    seconds = (auto_batch_seconds(durations, args.batch_size, cfg["training"]["seed"])
               if args.batch_seconds == "auto" else float(args.batch_seconds))
    arms = {"count": [], "duration": [f"training.batch_seconds={seconds}"]}
    arms = dict(sorted(arms.items(), key=lambda arm: arm[0] != args.first))
    runs = {name: Run.create(load_config(None, base + extra)) for name, extra in arms.items()}
    result: dict = {"corpus": args.corpus, "train_utterances": len(durations), "steps": args.steps, "first": args.first,
                    "batch_size": args.batch_size, "batch_seconds": seconds, "cpu_count": os.cpu_count(), "arms": {}}
    pieces: dict = {name: [] for name in arms}
    for chunk in range(1, args.chunks + 1):
        limit = args.steps * chunk // args.chunks
        for name, run in runs.items():
            run.override_training([f"training.max_steps={limit}"])
            load = os.getloadavg()[0]
            started = time.monotonic()
            status = train(run, resume=chunk > 1)
            assert status["state"] == "finished", status
            pieces[name].append({"to_step": limit, "load_1min": round(load, 2), "wall_s": time.monotonic() - started})
    dev = load_dataset("synthetic", section, "dev")
    for name, run in runs.items():
        tc = run.config["training"]
        sampler = make_batch_sampler(durations, tc["batch_size"], tc.get("batch_seconds"), seed=tc["seed"])
        padded, real = padded_and_real(sampler, durations, args.steps)
        steps = [e for e in run.events("step")]
        # wall time of each piece between its first and last step (set-up and loader start-up left out)
        by_piece, audio_rates = [], [e["audio_seconds_per_second"] for e in steps]
        start = 0
        for piece in pieces[name]:
            part = [e for e in steps if start < e["step"] <= piece["to_step"]]
            by_piece.append(part[-1]["time"] - part[0]["time"])
            start = piece["to_step"]
        seconds_timed = sum(by_piece)
        steps_timed = args.steps - len(pieces[name])  # the first step of each piece is not timed
        model = BaseASRModel.from_checkpoint(run.last_checkpoint, device="cpu")
        metrics = evaluate(model, dev, limit=args.eval_utterances, progress=False)
        result["arms"][name] = {
            "run": str(run.path), "batches_per_epoch": len(sampler),
            "real_audio_seen_s": round(real, 1), "padding": round(padded / real - 1, 3),
            "audio_s_per_s": round(real / args.steps * steps_timed / seconds_timed, 1),
            "median_step_audio_s_per_s": round(statistics.median(audio_rates), 1),
            "load_1min": [p["load_1min"] for p in pieces[name]],
            "dev_cer": round(metrics["cer"], 4), "dev_wer": round(metrics["wer"], 4),
            "dev_utterances": metrics["utterances"]}
    count, duration = result["arms"]["count"], result["arms"]["duration"]
    result["throughput_ratio"] = round(duration["audio_s_per_s"] / count["audio_s_per_s"], 3)
    result["load_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
