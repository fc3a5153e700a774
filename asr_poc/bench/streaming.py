"""Streaming figures: algorithmic latency (chunk + look-ahead) and compute per chunk (p50, p95) on one thread.

The audio of each file is pushed to `Transcriber.open_stream()` one chunk at a time, as a microphone would
deliver it, and each `push` is timed. A sound that starts a chunk waits for the chunk and its look-ahead to
arrive (the algorithmic latency), then for the chunk's compute: so latency from speech to partial text is
about `algorithmic_latency_ms + compute`. Models that do not stream get a one-line reason instead of figures.
"""
from __future__ import annotations

import time
from typing import Optional

import numpy as np

from ..evaluation import error_rates
from ..inference import Transcriber
from .speed import torch_threads


def not_streaming_reason(model) -> Optional[str]:
    """None when `model` can be measured streaming, else why not (one line, for the table)."""
    if not getattr(model, "streaming", False):
        return "n/a: model does not stream"
    if not getattr(model, "chunk_ms", None):
        return "n/a: model does not say its chunk_ms"
    return None


def latency_parts(model) -> dict:
    """chunk_ms, lookahead_ms and algorithmic_latency_ms as the model states them."""
    chunk = float(getattr(model, "chunk_ms"))
    lookahead = float(getattr(model, "lookahead_ms", 0.0) or 0.0)
    algorithmic = getattr(model, "algorithmic_latency_ms", None)
    return {"chunk_ms": chunk, "lookahead_ms": lookahead,
            "algorithmic_latency_ms": float(algorithmic) if algorithmic is not None else chunk + lookahead}


def measure_streaming(model, waveforms: list[np.ndarray], rate: int, threads: int = 1, max_files: Optional[int] = None,
                      progress: bool = False) -> tuple[dict, Optional[list[str]]]:
    """Stream each waveform chunk by chunk; return the figures and the final transcripts (None if n/a)."""
    reason = not_streaming_reason(model)
    if reason:
        return {"available": False, "reason": reason}, None

    parts = latency_parts(model)
    model.to("cpu").eval()
    transcriber = Transcriber(model)
    step = max(1, int(round(rate * parts["chunk_ms"] / 1000)))
    files = waveforms[:max_files] if max_files else waveforms
    if progress:
        from tqdm.auto import tqdm

        files = tqdm(files, desc="streaming, 1 thread", unit="file", leave=False)
    chunk_times: list[float] = []
    finish_times: list[float] = []
    texts: list[str] = []
    audio = 0.0
    with torch_threads(threads) as used:
        _stream_one(transcriber, waveforms[0][: step * 4], step)  # warm-up, not counted
        for wav in files:
            pushes, final, finish = _stream_one(transcriber, wav, step)
            chunk_times += pushes
            finish_times.append(finish)
            texts.append(final)
            audio += len(wav) / rate
    compute = sum(chunk_times) + sum(finish_times)
    p50, p95 = (1000 * float(np.percentile(chunk_times, q)) for q in (50, 95))
    return {
        "available": True, **parts, "threads": used, "files": len(texts), "chunks": len(chunk_times),
        "chunk_compute_ms_p50": p50, "chunk_compute_ms_p95": p95,
        "chunk_compute_fraction_p95": p95 / parts["chunk_ms"],
        "finish_ms_p50": 1000 * float(np.percentile(finish_times, 50)),
        "latency_ms_p50": parts["algorithmic_latency_ms"] + p50,
        "latency_ms_p95": parts["algorithmic_latency_ms"] + p95,
        "rtf": compute / audio if audio else None, "rtfx": audio / compute if compute else None,
    }, texts


def streamed_and_full_context(references: list[str], full_context: list[str], streamed: list[str]) -> dict:
    """WER/CER of the streamed transcripts and of the full-context ones on the same files (the streamed ones)."""
    n = len(streamed)
    s, f = error_rates(references[:n], streamed), error_rates(references[:n], full_context[:n])
    return {"wer": s["wer"], "cer": s["cer"], "full_context_wer": f["wer"], "full_context_cer": f["cer"],
            "files_compared": n}


def _stream_one(transcriber, wav: np.ndarray, step: int) -> tuple[list[float], str, float]:
    """Push `wav` in chunks of `step` samples; the wall time of each push, the final text, the finish time."""
    session = transcriber.open_stream()
    pushes = []
    for start in range(0, len(wav), step):
        chunk = wav[start : start + step]
        began = time.perf_counter()
        session.push(chunk)
        pushes.append(time.perf_counter() - began)
    began = time.perf_counter()
    result = session.finish()
    finish = time.perf_counter() - began
    return pushes, str(getattr(result, "text", result) or ""), finish
