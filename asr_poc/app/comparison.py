"""Models compared as `asr-poc bench` compares them: checkpoints, runs and untrained presets measured on the same
test files in one run (speed at batch 1 and batched, streaming latency, training throughput, WER/CER), each beside
PocketSphinx and the reference recognisers, written as JSON, Markdown and an accuracy-versus-speed plot.

The measuring is `asr_poc.bench`; `BenchOptions` is its own options class, imported (with torch) on first use.
The Test tab's side-by-side table of one clip is `asr_poc.app.recognition.compare`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..bench.runner import BenchOptions

__all__ = ["BenchOptions", "report_markdown", "run_bench"]


def __getattr__(name: str):
    """`BenchOptions`, imported with the bench (torch) on first use."""
    if name == "BenchOptions":
        from ..bench.runner import BenchOptions

        return BenchOptions
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def run_bench(options: "BenchOptions") -> dict:
    """Measure what `options` says, write the files under `options.out` (unless None); return the result."""
    from ..bench.runner import run_bench as run

    return run(options)


def report_markdown(result: dict) -> str:
    """A bench result as Markdown: the machine, the audio, and a table each for speed/accuracy, streaming, training."""
    from ..bench.report import markdown

    return markdown(result)
