"""The baseline every figure is compared with, PocketSphinx 5.1.1, and the other reference recognisers
(`asr_poc.references`: Whisper tiny.en), each measured on the same files in the same run, one thread, one call a
file. PocketSphinx's C decoder has no threads; Whisper runs with torch on one thread.
"""
from __future__ import annotations

import time
from typing import Optional

import numpy as np

from ..evaluation import real_time_factor
from ..references import PocketSphinx, reference, unavailable

NAME = PocketSphinx.name
SAMPLE_RATE = 16000


def available(name: str = NAME) -> Optional[str]:
    """None when reference `name` can run here, else why not."""
    return unavailable(name)


def measure_baseline(waveforms: list[np.ndarray], rate: int = SAMPLE_RATE, progress: bool = False,
                     name: str = NAME) -> tuple[dict, list[str]]:
    """Transcribe each 16 kHz waveform once with reference `name` on one thread; return speed figures (the p50/p95
    of a call is the latency from the end of speech to the text) and the transcripts (in input order)."""
    if rate != SAMPLE_RATE:
        raise ValueError(f"the references take {SAMPLE_RATE} Hz audio, got {rate} Hz")
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _measure(reference(name), waveforms, rate, progress, name)
    finally:
        torch.set_num_threads(threads)


def _measure(recognizer, waveforms: list[np.ndarray], rate: int, progress: bool, name: str) -> tuple[dict, list[str]]:
    items = waveforms
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(waveforms, desc=f"reference: {name}", unit="file", leave=False)
    times, cpu, texts, audio = [], 0.0, [], 0.0
    for wav in items:
        start, cpu_start = time.perf_counter(), time.thread_time()
        texts.append(recognizer.transcribe(wav))
        times.append(time.perf_counter() - start)
        cpu += time.thread_time() - cpu_start
        audio += len(wav) / rate
    rtf = real_time_factor(sum(times), audio)
    figures = {"rtf": rtf, "rtfx": 1.0 / rtf if rtf > 0 else None, "compute_seconds": sum(times),
               "audio_seconds": audio, "calls": len(times), "repeats": 1, "threads": 1, "device": "cpu",
               "call_ms_p50": 1000 * float(np.percentile(times, 50)),
               "call_ms_p95": 1000 * float(np.percentile(times, 95)), "load_seconds": recognizer.load_seconds,
               "thread_cpu_seconds": cpu, "rtfx_thread_cpu": audio / cpu if cpu > 0 else None}
    return figures, texts
