"""Offline decoding speed: real-time factor (RTF = compute / audio) and its inverse RTFx.

Measured on waveforms already in memory, around `model.transcribe` alone (features, encoder, decoding to text),
as `Transcriber` and `asr-poc eval` time it. Each call is repeated `repeats` times back to back and its median
kept, which damps the noise of a shared machine; a few warm-up calls come first and are not counted.
"""
from __future__ import annotations

import contextlib
import statistics
import time
from typing import Iterator, Optional

import numpy as np
import torch

from ..evaluation import real_time_factor

Batch = tuple[torch.Tensor, torch.Tensor, float]  # padded waveforms (B, T), lengths (B,), audio seconds


@contextlib.contextmanager
def torch_threads(n: Optional[int]) -> Iterator[int]:
    """Run the block with `n` intra-op threads (None: leave as is); yields the number in force."""
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(old)


def make_batches(waveforms: list[np.ndarray], rate: int, batch_size: int = 1) -> list[Batch]:
    """Batch 1 keeps the order; larger batches group similar lengths (as a server would) to limit padding."""
    order = list(range(len(waveforms))) if batch_size == 1 else sorted(range(len(waveforms)),
                                                                        key=lambda i: len(waveforms[i]))
    batches = []
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        lengths = torch.tensor([len(waveforms[i]) for i in idx], dtype=torch.long)
        wav = torch.zeros(len(idx), int(lengths.max()))
        for row, i in enumerate(idx):
            wav[row, : len(waveforms[i])] = torch.from_numpy(waveforms[i])
        batches.append((wav, lengths, float(lengths.sum()) / rate))
    return batches


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_transcribe(model, batches: list[Batch], repeats: int = 3, warmup: int = 2, progress: Optional[str] = None,
                    thread_cpu: bool = False) -> tuple[dict, list[str]]:
    """Time `model.transcribe` on each batch (median of `repeats`); return the figures and the transcripts.

    With `thread_cpu` (for one CPU thread only) the calling thread's CPU time is reported too: on one thread it
    is the compute itself, whatever else runs on the machine, while wall time under load also counts the waits
    for a core. Both are kept; the wall-clock figure is the headline.
    """
    device = model.device
    model.eval()
    moved = [(w.to(device), n.to(device), s) for w, n, s in batches]
    for wav, lengths, _ in moved[: max(0, warmup)]:
        model.transcribe(wav, lengths)
    _sync(device)
    iterator = moved
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(moved, desc=progress, unit="batch", leave=False)
    times, cpu_times, texts, audio = [], [], [], 0.0
    for wav, lengths, seconds in iterator:
        samples, cpu_samples = [], []
        for r in range(max(1, repeats)):
            start, cpu_start = time.perf_counter(), time.thread_time()
            out = model.transcribe(wav, lengths)
            _sync(device)
            samples.append(time.perf_counter() - start)
            cpu_samples.append(time.thread_time() - cpu_start)
            if r == 0:
                texts += out
        times.append(statistics.median(samples))
        cpu_times.append(statistics.median(cpu_samples))
        audio += seconds
    compute = sum(times)
    rtf = real_time_factor(compute, audio)
    per_second = sorted(t / s for t, (_, _, s) in zip(times, moved))
    figures = {
        "rtf": rtf, "rtfx": 1.0 / rtf if rtf > 0 else None, "compute_seconds": compute, "audio_seconds": audio,
        "calls": len(times), "repeats": max(1, repeats), "call_ms_p50": 1000 * _percentile(times, 50),
        "call_ms_p95": 1000 * _percentile(times, 95), "rtf_p95": _percentile(per_second, 95),
    }
    if thread_cpu:
        cpu = sum(cpu_times)
        figures.update(thread_cpu_seconds=cpu, rtfx_thread_cpu=audio / cpu if cpu > 0 else None)
    return figures, texts


def measure_speed(model, waveforms: list[np.ndarray], rate: int, threads: list[int], batch_size: int = 16,
                  repeats: int = 3, cuda: bool = True, progress: bool = False) -> tuple[dict, list[str]]:
    """Batch-1 RTF on the CPU with each thread count, batched throughput with the most threads, and CUDA.

    Returns {"batch1": {"threads=N": figures, "cuda": figures}, "batched": figures, "batched_cuda": figures}
    and the transcripts of the first batch-1 pass (in input order).
    """
    model.to("cpu")
    one = make_batches(waveforms, rate, 1)
    results: dict = {"batch1": {}}
    hypotheses: list[str] = []
    for n in threads:
        with torch_threads(n) as used:
            figures, texts = time_transcribe(model, one, repeats, thread_cpu=used == 1,
                                             progress=f"batch 1, {used} thread(s)" if progress else None)
        results["batch1"][f"threads={used}"] = {**figures, "threads": used, "device": "cpu"}
        hypotheses = hypotheses or texts
    if batch_size > 1:
        with torch_threads(max(threads)) as used:
            figures, _ = time_transcribe(model, make_batches(waveforms, rate, batch_size), repeats,
                                         warmup=1, progress=f"batch {batch_size}" if progress else None)
        results["batched"] = {**figures, "threads": used, "device": "cpu", "batch_size": batch_size}
    if cuda and torch.cuda.is_available():
        try:
            model.to("cuda")
            name = torch.cuda.get_device_name(0)
            figures, _ = time_transcribe(model, one, repeats, warmup=5, progress="batch 1, CUDA" if progress else None)
            results["batch1"]["cuda"] = {**figures, "device": name}
            if batch_size > 1:
                figures, _ = time_transcribe(model, make_batches(waveforms, rate, batch_size), repeats, warmup=2)
                results["batched_cuda"] = {**figures, "device": name, "batch_size": batch_size}
        finally:
            model.to("cpu")
    return results, hypotheses


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")
