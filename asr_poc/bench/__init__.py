"""`asr-poc bench`: speed, streaming latency, training throughput and accuracy of models, beside a baseline.

One purpose per file:
    corpus.py     the audio every system is measured on (the same files for all)
    systems.py    what is measured: a checkpoint, a run folder/id, or an untrained size preset (`conformer:xs`)
    speed.py      real-time factor at batch 1 (one thread, all threads, CUDA) and batched throughput
    streaming.py  algorithmic latency and compute per chunk (p50, p95) of streaming models
    training.py   training throughput (audio seconds per wall second) and peak memory, on the real trainer
    baseline.py   PocketSphinx (offline, from PyPI), measured on the same files in the same run
    machine.py    what the figures were measured on (CPU, cores, load, GPU)
    plot.py       the accuracy-vs-speed PNG (its points: `asr_poc.results`, which the dashboard reads too)
    report.py     ratios to the baseline, the JSON and Markdown files
    runner.py     `run_bench`: ties it together
"""
from __future__ import annotations

_EXPORTS = {"BenchOptions": "runner", "run_bench": "runner", "plot_accuracy_speed": "plot"}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    """Import on first use: `import asr_poc.bench` stays cheap (matplotlib and pocketsphinx load when needed)."""
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(name)
