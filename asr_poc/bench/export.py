"""Eager torch vs exported ONNX (fp32, int8) on the same files in one run: RTFx, speed-up, and what changed.

Each backend transcribes the same waveforms at batch 1 on `threads` threads (onnxruntime gets the same intra-op
thread count as torch), interleaved utterance by utterance (each call the median of `repeats`). Beside each
speed-up stands the WER difference: against the references when there are any, and against eager's own
transcripts (`wer_vs_eager`: 0 means the export changed no word; an export that changes transcripts is a bug,
quantisation may change a few). The load average is taken before and after. On one
thread the speed-up is also given by the calling thread's CPU time (`speedup_thread_cpu`), which a busy machine
barely moves: onnxruntime with one intra-op thread runs its kernels on the calling thread.
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


def _timed_interleaved(systems: list[tuple[str, object]], batches: list, repeats: int, thread_cpu: bool
                       ) -> dict[str, dict]:
    """Each batch through every system in turn (so a busy machine slows them alike), after two warm-up calls each:
    per system the wall and thread-CPU seconds (sums of each call's median), the call times and the transcripts."""
    for _, system in systems:
        time_transcribe(system, batches[:2], repeats=1, warmup=0)
    out = {name: {"wall": 0.0, "cpu": 0.0, "calls": [], "texts": []} for name, _ in systems}
    for batch in batches:
        for name, system in systems:
            figures, texts = time_transcribe(system, [batch], repeats, warmup=0, thread_cpu=thread_cpu)
            out[name]["wall"] += figures["compute_seconds"]
            out[name]["cpu"] += figures.get("thread_cpu_seconds", 0.0)
            out[name]["calls"].append(figures["compute_seconds"])
            out[name]["texts"] += texts
    return out


def compare_backends(model, exported: dict[str, str | os.PathLike], waveforms: list[np.ndarray],
                     references: Optional[list[str]], rate: int, threads: int = 1, repeats: int = 3) -> dict:
    """Time and score the eager `model` and each exported file (name -> path) on `waveforms`, interleaved."""
    from ..evaluation import error_rates
    from ..export import OnnxCTCModel

    batches = make_batches(waveforms, rate, 1)
    audio = sum(seconds for _, _, seconds in batches)
    load_start = machine.load_average()
    rows = []
    with torch_threads(threads) as used:
        systems = [("eager", model)] + [(name, OnnxCTCModel(path, threads=used)) for name, path in exported.items()]
        timed = _timed_interleaved(systems, batches, repeats, thread_cpu=used == 1)
    eager_texts = timed["eager"]["texts"]
    for name, _ in systems:
        t = timed[name]
        row = {"backend": name, "rtfx": audio / t["wall"] if t["wall"] else None,
               "rtf": t["wall"] / audio if audio else None, "call_ms_p50": 1000 * float(np.median(t["calls"])),
               "rtfx_thread_cpu": audio / t["cpu"] if t["cpu"] else None, "threads": used,
               "file": str(exported.get(name, "")) or None}
        if references:
            row.update(error_rates(references, t["texts"]))
        row.update(_vs(eager_texts, t["texts"]))
        rows.append(row)
    base, base_cpu = rows[0]["rtfx"], rows[0]["rtfx_thread_cpu"]
    for row in rows:
        row["speedup"] = round(row["rtfx"] / base, 3) if base and row["rtfx"] else None
        cpu = row["rtfx_thread_cpu"]
        row["speedup_thread_cpu"] = round(cpu / base_cpu, 3) if base_cpu and cpu else None
        if references:
            row["wer_delta"] = row["wer"] - rows[0]["wer"]
            row["cer_delta"] = row["cer"] - rows[0]["cer"]
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
    """The comparison as a Markdown table (speed-up by wall clock, and by the thread's CPU time on one thread)."""
    refs = "wer" in result["backends"][0]
    cpu = result["backends"][0].get("speedup_thread_cpu") is not None
    head = ("| backend | RTFx | speed-up | " + ("speed-up (thread CPU) | " if cpu else "")
            + ("WER | WER diff | CER diff | " if refs else "") + "WER vs eager | changed |")
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    for r in result["backends"]:
        lines.append(f"| {r['backend']} | {r['rtfx']:.0f} | {r['speedup']:.2f}x | "
                     + (f"{r['speedup_thread_cpu']:.2f}x | " if cpu else "")
                     + (f"{r['wer']:.3f} | {r['wer_delta']:+.3f} | {r.get('cer_delta', 0.0):+.3f} | " if refs else "")
                     + f"{r['wer_vs_eager']:.3f} | {r['changed_transcripts']}/{result['utterances']} |")
    lines.append(f"\n{result['utterances']} utterances, batch 1, {result['threads']} thread(s); load average "
                 f"{result['load_average']['start']} -> {result['load_average']['end']}")
    return "\n".join(lines)
