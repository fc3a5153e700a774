"""Eager torch vs exported ONNX (fp32, int8) on the same files in one run: RTFx, speed-up, and what changed.

Each backend transcribes the same waveforms at batch 1 on `threads` threads (onnxruntime gets the same intra-op
thread count as torch). Beside each speed-up stands the WER difference: against the references when there are
any, and against eager's own transcripts (`wer_vs_eager`: 0 means the export changed no word; an export that
changes transcripts is a bug, quantisation may change a few). The load average is taken before and after.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np

from . import machine
from .speed import make_batches, time_transcribe, torch_threads


def _vs(reference_texts: list[str], texts: list[str]) -> dict:
    from ..evaluation import error_rates

    changed = sum(a != b for a, b in zip(reference_texts, texts))
    try:
        rates = error_rates(reference_texts, texts)
    except ValueError:  # every reference text empty (an untrained model says nothing)
        rates = {"wer": float(changed > 0), "cer": float(changed > 0)}
    return {"wer_vs_eager": rates["wer"], "cer_vs_eager": rates["cer"], "changed_transcripts": changed}


def compare_backends(model, exported: dict[str, str | os.PathLike], waveforms: list[np.ndarray],
                     references: Optional[list[str]], rate: int, threads: int = 1, repeats: int = 3) -> dict:
    """Time and score the eager `model` and each exported file (name -> path) on `waveforms`."""
    from ..evaluation import error_rates
    from ..export import OnnxCTCModel

    batches = make_batches(waveforms, rate, 1)
    load_start = machine.load_average()
    rows, eager_texts = [], None
    with torch_threads(threads) as used:
        systems = [("eager", model)] + [(name, OnnxCTCModel(path, threads=used)) for name, path in exported.items()]
        for name, system in systems:
            figures, texts = time_transcribe(system, batches, repeats, thread_cpu=used == 1)
            row = {"backend": name, "rtfx": figures["rtfx"], "rtf": figures["rtf"], "call_ms_p50": figures["call_ms_p50"],
                   "threads": used, "file": str(exported.get(name, "")) or None}
            if references:
                row.update(error_rates(references, texts))
            eager_texts = texts if eager_texts is None else eager_texts
            row.update(_vs(eager_texts, texts))
            rows.append(row)
    base = rows[0]["rtfx"]
    for row in rows:
        row["speedup"] = round(row["rtfx"] / base, 3) if base and row["rtfx"] else None
        if references:
            row["wer_delta"] = row["wer"] - rows[0]["wer"]
    return {"backends": rows, "utterances": len(waveforms), "threads": threads,
            "load_average": {"start": load_start, "end": machine.load_average()}}


def bench_exports(checkpoint: str | os.PathLike, waveforms: list[np.ndarray], references: Optional[list[str]],
                  threads: int = 1, repeats: int = 3) -> dict:
    """Export `checkpoint` (fp32 and int8, into a temporary folder) and compare it with eager torch."""
    from ..export import export_checkpoint
    from ..models.interface import BaseASRModel

    model = BaseASRModel.from_checkpoint(checkpoint, device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        files = export_checkpoint(checkpoint, int8=True, out_dir=tmp)
        result = compare_backends(model, {"onnx": files["onnx"], "int8": files["int8"]}, waveforms, references,
                                  model.sample_rate, threads=threads, repeats=repeats)
    result["export_seconds"] = files["export_seconds"]
    for row in result["backends"]:
        row.pop("file", None)
    return result


def markdown(result: dict) -> str:
    """The comparison as a Markdown table."""
    refs = "wer" in result["backends"][0]
    head = "| backend | RTFx | speed-up | " + ("WER | WER diff | " if refs else "") + "WER vs eager | changed |"
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    for r in result["backends"]:
        lines.append(f"| {r['backend']} | {r['rtfx']:.0f} | {r['speedup']:.2f}x | "
                     + (f"{r['wer']:.3f} | {r['wer_delta']:+.3f} | " if refs else "")
                     + f"{r['wer_vs_eager']:.3f} | {r['changed_transcripts']}/{result['utterances']} |")
    lines.append(f"\n{result['utterances']} utterances, batch 1, {result['threads']} thread(s); load average "
                 f"{result['load_average']['start']} -> {result['load_average']['end']}")
    return "\n".join(lines)
