"""Accuracy against speed for all runs as a PNG (matplotlib). The points come from `asr_poc.results`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..results import rtfx_1_thread

TARGET_CER = 0.05  # the targets, drawn as guides
TARGET_RTFX = 200.0


def speed_only_points(result: dict) -> list[dict]:
    """Untrained presets of a bench result: RTFx without accuracy (drawn as vertical dotted lines)."""
    return [{"label": s["name"], "rtfx": rtfx_1_thread(s)} for s in result.get("systems") or []
            if not s.get("trained") and rtfx_1_thread(s)]


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
