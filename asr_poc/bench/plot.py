"""Accuracy against speed for all runs: the points (for the dashboard's run browser) and a PNG (matplotlib).

A run's point takes its figures from the newest `asr-poc bench` result that measured it (WER/CER on the bench's
test files, RTFx at batch 1 on one thread), else from the run itself (best dev CER/WER in status.json, and the
RTFx of its last dev evaluation during training: batch 8, the training's threads, so only roughly comparable).
The baseline's point is the newest bench result's PocketSphinx.

`dataset` picks the CER of one evaluation set instead (e.g. `real-check`, real human speech): bench results on
that set, else the run's own `extra_eval` score on it at its best dev evaluation (what best.pt holds).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

TARGET_CER = 0.05  # the targets, drawn as guides
TARGET_RTFX = 200.0
DEFAULT_RESULTS = "benchmarks/results"


def _rtfx_1_thread(entry: dict) -> Optional[float]:
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
                       "parameters": None, "cer": base.get("cer"), "wer": base.get("wer"), "rtfx": _rtfx_1_thread(base),
                       "accuracy_source": where, "rtfx_source": where + "; batch 1, 1 thread", "state": None,
                       "bench_file": source, "created": result.get("created"), "dataset": dataset})
    for s in result.get("systems") or []:
        if not s.get("trained"):
            continue
        run = Path(s["run_dir"]).name if s.get("run_dir") else None
        points.append({"kind": "run" if run else "checkpoint", "label": run or s["name"], "run": run,
                       "model": s.get("model"), "parameters": s.get("parameters"), "cer": s.get("cer"),
                       "wer": s.get("wer"), "rtfx": _rtfx_1_thread(s), "accuracy_source": where,
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
        from ..training.extra_eval import scores_at_best

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
    from ..paths import resolve_path
    from ..runs import list_runs

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


def speed_only_points(result: dict) -> list[dict]:
    """Untrained presets of a bench result: RTFx without accuracy (drawn as vertical dotted lines)."""
    return [{"label": s["name"], "rtfx": _rtfx_1_thread(s)} for s in result.get("systems") or []
            if not s.get("trained") and _rtfx_1_thread(s)]


def plot_accuracy_speed(points: list[dict], path: str | Path, title: str = "accuracy vs speed",
                        speed_only: Optional[list[dict]] = None) -> Path:
    """Write a PNG: CER and WER against RTFx (log scale), one marker per run, the baseline as a star.

    `speed_only` points (untrained presets: label, rtfx) are drawn as labelled vertical dotted lines.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 5), constrained_layout=True)
    for ax, metric in zip(axes, ("cer", "wer")):
        usable = [p for p in points if p.get(metric) is not None and p.get("rtfx")]
        for p in usable:
            base = p["kind"] == "baseline"
            ax.scatter(p["rtfx"], p[metric], marker="*" if base else "o", s=160 if base else 50,
                       color="tab:red" if base else "tab:blue", zorder=3)
            ax.annotate(_short(p["label"]), (p["rtfx"], p[metric]), textcoords="offset points", xytext=(5, 4),
                        fontsize=7)
        for p in speed_only or []:
            ax.axvline(p["rtfx"], color="tab:green", linestyle=":", linewidth=1)
            ax.annotate(f"{p['label']} (untrained: speed only)", (p["rtfx"], 0.98), xycoords=("data", "axes fraction"),
                        rotation=90, va="top", ha="right", fontsize=7, color="tab:green")
        ax.axvline(TARGET_RTFX, color="grey", linestyle="--", linewidth=0.8)
        if metric == "cer":
            ax.axhline(TARGET_CER, color="grey", linestyle="--", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("RTFx (audio s per compute s, higher is faster)")
        ax.set_ylabel(f"{metric.upper()} (lower is better)")
        top = max([p[metric] for p in usable] + [TARGET_CER if metric == "cer" else 0.1])
        ax.set_ylim(0, top * 1.12)
        ax.grid(True, which="both", alpha=0.3)
        if not usable and not speed_only:
            ax.text(0.5, 0.5, "no evaluated runs yet", transform=ax.transAxes, ha="center", color="grey")
            ax.set_xlim(1, 1000)
    fig.suptitle(title + "   (dashed: targets CER 5%, RTFx 200)", fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _short(label: str) -> str:
    """`20261125-063012-conformer-3fa2` -> `063012-conformer-3fa2`; other labels as they are."""
    parts = label.split("-")
    return "-".join(parts[1:]) if len(parts) >= 4 and parts[0].isdigit() and len(parts[0]) == 8 else label
