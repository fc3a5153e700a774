"""The baseline every figure is compared with: PocketSphinx 5.1.1 from PyPI, measured on the same files in the
same run. Its wheel carries an en-US acoustic model, a trigram language model and a dictionary, so it runs
offline. It decodes on one thread (its C decoder has no threading), 16 kHz 16-bit PCM in.
"""
from __future__ import annotations

import time
from typing import Optional

import numpy as np

from ..evaluation import real_time_factor
from ..text import normalize_text

NAME = "pocketsphinx"
SAMPLE_RATE = 16000


def available() -> Optional[str]:
    """None when PocketSphinx can be imported, else why not."""
    try:
        import pocketsphinx  # noqa: F401
    except Exception as err:  # not installed, or a broken wheel
        return f"pocketsphinx is not importable ({err.__class__.__name__}: {err}); pip install pocketsphinx==5.1.1"
    return None


class PocketSphinx:
    """A PocketSphinx decoder with its packaged en-US model; `transcribe` takes float32 samples at 16 kHz."""

    def __init__(self) -> None:
        from pocketsphinx import Decoder

        start = time.perf_counter()
        self.decoder = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")
        self.load_seconds = time.perf_counter() - start

    @staticmethod
    def version() -> str:
        from importlib.metadata import version

        return version("pocketsphinx")

    def transcribe(self, waveform: np.ndarray) -> str:
        pcm = (np.clip(waveform, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        return normalize_text(hyp.hypstr) if hyp is not None else ""


def measure_baseline(waveforms: list[np.ndarray], rate: int = SAMPLE_RATE, progress: bool = False
                     ) -> tuple[dict, list[str]]:
    """Transcribe each 16 kHz waveform once; return speed figures and the transcripts (in input order)."""
    if rate != SAMPLE_RATE:
        raise ValueError(f"PocketSphinx's model wants {SAMPLE_RATE} Hz audio, got {rate} Hz")
    recognizer = PocketSphinx()
    recognizer.transcribe(waveforms[0][:rate])  # warm-up, not counted
    items = waveforms
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(waveforms, desc="baseline: pocketsphinx", unit="file", leave=False)
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
