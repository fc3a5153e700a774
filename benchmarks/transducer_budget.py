"""Score a finished run for the transducer-at-a-budget comparison (issue 10): the dev CER its own evaluations recorded
(events.jsonl), then its last.pt on the synthetic test split and on real-check, with full context and, for a
streaming model, streamed chunk by chunk (`Transcriber.open_stream`, as `asr-poc bench`); one JSON line appended.

    .venv/bin/python benchmarks/transducer_budget.py RUN_DIR --name NAME \
        [--results benchmarks/results/rnnt-10min-scores.jsonl]

The scoring code is the one `benchmarks/ablation.py` uses (`asr_poc.evaluation.evaluate`, the config's data sets),
so the conformer-CTC reference and a transducer are compared on the same files.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _score(model, dataset: str, threads: int) -> dict:
    """Full-context WER/CER of `model` on the test split of `dataset`, and streamed ones if it streams."""
    import numpy as np

    from asr_poc.bench.streaming import measure_streaming, streamed_and_full_context
    from asr_poc.config import dataset_section, load_config
    from asr_poc.evaluation import evaluate
    from asr_poc.plugins import load_dataset

    cfg = load_config(None, [f"dataset={dataset}"])
    data = load_dataset(dataset, {**dataset_section(cfg), "sample_rate": model.sample_rate}, "test")
    full = evaluate(model, data, batch_size=8, progress=False)
    line = {"utterances": full["utterances"], "full_context_wer": round(full["wer"], 4),
            "full_context_cer": round(full["cer"], 4)}
    if not getattr(model, "streaming", False):
        return line
    by_id = dict(zip(full["ids"], full["hypotheses"]))
    ids, refs, waves = [], [], []
    for i in range(len(data)):
        item = data[i]
        ids.append(item["id"])
        refs.append(item["text"])
        waves.append(np.asarray(item["waveform"], dtype=np.float32))
    _, streamed = measure_streaming(model, waves, model.sample_rate, threads=threads)
    both = streamed_and_full_context(refs, [by_id[i] for i in ids], streamed)
    return {**line, "streamed_wer": round(both["wer"], 4), "streamed_cer": round(both["cer"], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a run folder (events.jsonl, last.pt)")
    parser.add_argument("--name", required=True)
    parser.add_argument("--checkpoint", default="last.pt", help="which checkpoint of the run to score")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "rnnt-10min-scores.jsonl"))
    args = parser.parse_args()
    import torch

    from asr_poc.io import append_json_line
    from asr_poc.models.interface import BaseASRModel

    torch.set_num_threads(args.threads)
    run = Path(args.run)
    events = _events(run / "events.jsonl")
    steps = [e for e in events if e.get("type") == "step"]
    dev = [{"step": e["step"], "cer": round(e["cer"], 4), "wer": round(e["wer"], 4)}
           for e in events if e.get("type") == "eval"]
    real = [{"step": e["step"], "cer": round(e["cer"], 4)} for e in events
            if e.get("type") == "extra_eval" and e.get("dataset") == "real-check"]
    model = BaseASRModel.from_checkpoint(run / args.checkpoint)
    load_start, started = os.getloadavg(), time.monotonic()
    line = {"name": args.name, "run": str(run), "checkpoint": args.checkpoint, "model": model.name,
            "parameters": model.num_parameters(), "steps": steps[-1]["step"] if steps else None,
            "train_minutes": round((steps[-1]["time"] - steps[0]["time"]) / 60, 1) if steps else None,
            "dev_cer_last": dev[-1]["cer"] if dev else None, "dev": dev, "real_check_events": real,
            "synthetic_test": _score(model, "synthetic", args.threads),
            "real_check": _score(model, "real-check", args.threads)}
    line.update(score_minutes=round((time.monotonic() - started) / 60, 1),
                load_start=[round(x, 2) for x in load_start], load_end=[round(x, 2) for x in os.getloadavg()])
    print(json.dumps(line), flush=True)
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    append_json_line(args.results, line)


if __name__ == "__main__":
    main()
