"""Accuracy against speed for all runs, read from files: run folders and `asr-poc bench` results (JSON).

A run's point takes its figures from the newest bench result that measured it (WER/CER on the bench's test
files, RTFx at batch 1 on one thread), else from the run itself (best dev CER/WER in status.json, and the RTFx of
its last dev evaluation during training: batch 8, the training's threads, so only roughly comparable). The
baseline's point is the newest bench result's PocketSphinx.

`dataset` picks the CER of one evaluation set instead (e.g. `real-check`, real human speech): bench results on
that set, else the run's own `extra_eval` score on it at its best dev evaluation (what best.pt holds).

The dashboard reads its points here, not through `asr_poc.bench` (which measures, and is heavy); `bench`
writes the results files and draws the PNG. Ground floor: imports nothing of the project but `paths` and `runs`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

from .paths import resolve_path
from .runs import list_runs, scores_at_best

DEFAULT_RESULTS = "benchmarks/results"


def rtfx_1_thread(entry: dict) -> Optional[float]:
    return (((entry.get("speed") or {}).get("batch1") or {}).get("threads=1") or {}).get("rtfx")


def points_from_result(result: dict, source: str = "") -> list[dict]:
    """Points of one bench result: its trained systems and its baseline."""
    corpus = result.get("corpus") or {}
    where = f"bench {result.get('created', '')}: {corpus.get('dataset')}/{corpus.get('split')}, " \
            f"{corpus.get('utterances')} files"
    points = []
    dataset = corpus.get("dataset")
    base = result.get("baseline") or {}
    if base.get("available"):
        points.append({"kind": "baseline", "label": f"{base['name']} (baseline)", "run": None, "model": base["name"],
                       "parameters": None, "cer": base.get("cer"), "wer": base.get("wer"), "rtfx": rtfx_1_thread(base),
                       "accuracy_source": where, "rtfx_source": where + "; batch 1, 1 thread", "state": None,
                       "bench_file": source, "created": result.get("created"), "dataset": dataset})
    for s in result.get("systems") or []:
        if not s.get("trained"):
            continue
        run = Path(s["run_dir"]).name if s.get("run_dir") else None
        points.append({"kind": "run" if run else "checkpoint", "label": run or s["name"], "run": run,
                       "model": s.get("model"), "parameters": s.get("parameters"), "cer": s.get("cer"),
                       "wer": s.get("wer"), "rtfx": rtfx_1_thread(s), "accuracy_source": where,
                       "rtfx_source": where + "; batch 1, 1 thread", "state": None, "bench_file": source,
                       "created": result.get("created"), "checkpoint": s.get("source"), "dataset": dataset})
    return points


def _bench_points(results_dir: Path) -> list[dict]:
    """Points of every bench result under `results_dir`, oldest first."""
    found = []
    for path in sorted(results_dir.glob("*.json")) if results_dir.is_dir() else []:
        try:
            result = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(result, dict) and "systems" in result:
            found.append((str(result.get("created", "")), points_from_result(result, str(path))))
    return [p for _, pts in sorted(found, key=lambda item: item[0]) for p in pts]


def _run_point(run, dataset: Optional[str] = None) -> dict:
    status = run.status
    all_evals = run.events("eval")
    evals = [e for e in all_evals if e.get("rtf")]
    rtf = evals[-1]["rtf"] if evals else None
    if dataset:  # the run's score on that set at its best dev evaluation
        score = scores_at_best(all_evals, run.events("extra_eval")).get(dataset) or {}
        return {"kind": "run", "label": run.id, "run": run.id, "path": str(run.path), "model": status.get("model"),
                "parameters": status.get("num_parameters"), "cer": score.get("cer"), "wer": score.get("wer"),
                "rtfx": 1.0 / rtf if rtf else None, "dataset": dataset,
                "accuracy_source": f"{dataset} during training, at the best dev evaluation",
                "rtfx_source": "last dev evaluation during training (batch 8)", "state": status.get("state"),
                "bench_file": None}
    return {"kind": "run", "label": run.id, "run": run.id, "path": str(run.path), "model": status.get("model"),
            "parameters": status.get("num_parameters"), "cer": status.get("best_cer"), "wer": status.get("best_wer"),
            "rtfx": 1.0 / rtf if rtf else None, "accuracy_source": "best dev CER/WER during training",
            "rtfx_source": "last dev evaluation during training (batch 8)", "state": status.get("state"),
            "bench_file": None}


def accuracy_speed_points(root: Optional[str | Path] = None, results_dir: Optional[str | Path] = None,
                          extra: Optional[list[dict]] = None, dataset: Optional[str] = None,
                          exclude_datasets: Sequence[str] = ()) -> list[dict]:
    """One point per run under `root` (default `checkpoints`), plus the baseline, for an accuracy-vs-speed plot.

    Each point: kind (run | checkpoint | baseline), label, run, model, parameters, cer, wer, rtfx, accuracy_source,
    rtfx_source, state, bench_file. cer/wer/rtfx may be None (a run not yet evaluated). `extra` points (a bench
    result being written) win over older ones; checkpoints outside `root` appear only through `extra`.
    `dataset`: only bench results on that set, and runs' own scores on it; else bench results on any set but those
    in `exclude_datasets`.
    """
    bench = _bench_points(resolve_path(results_dir or DEFAULT_RESULTS)) + list(extra or [])
    bench = [p for p in bench if (p.get("dataset") == dataset if dataset else p.get("dataset") not in exclude_datasets)]
    latest_bench = {p["run"]: p for p in bench if p["kind"] == "run"}
    baselines = [p for p in bench if p["kind"] == "baseline"]
    points = []
    seen = set()
    for run in list_runs(root):
        point = _run_point(run, dataset)
        measured = latest_bench.get(run.id)
        if measured:
            point.update({k: measured[k] for k in ("cer", "wer", "rtfx", "accuracy_source", "rtfx_source",
                                                   "bench_file")})
        points.append(point)
        seen.add(run.id)
    points += [p for p in (extra or []) if p["kind"] != "baseline" and p.get("run") not in seen]
    if baselines:
        points.append(baselines[-1])
    return points
