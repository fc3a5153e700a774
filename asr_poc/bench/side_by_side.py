"""One clip, several recognisers: the chosen checkpoint, a second one (A/B) and the reference recognisers
(PocketSphinx, Whisper tiny.en).

Each system transcribes the same 16 kHz samples; each call is timed the same way (wall clock around the call),
so the real-time factors compare like with like. A system that fails gives its one-line error in its row and
the others still run. Used by the dashboard's Test tab.
"""
from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import Callable, Optional

import numpy as np

from ..evaluation import real_time_factor
from ..references import REFERENCES, Recogniser, reference, unavailable

SAMPLE_RATE = 16000
Recognise = Callable[[np.ndarray], str]  # 16 kHz float32 samples -> text


@dataclass
class Row:
    """What one system made of the clip, and how fast."""

    name: str
    text: str = ""
    audio_seconds: float = 0.0
    compute_seconds: float = 0.0
    error: Optional[str] = None

    @property
    def rtf(self) -> Optional[float]:
        return None if self.error else real_time_factor(self.compute_seconds, self.audio_seconds)

    def to_dict(self) -> dict:
        return {**asdict(self), "rtf": self.rtf}


def run_side_by_side(samples: np.ndarray, systems: list[tuple[str, Recognise]]) -> list[Row]:
    """Transcribe 16 kHz `samples` with each (name, recognise) in turn; one Row each, in the same order."""
    seconds = len(samples) / SAMPLE_RATE
    rows = []
    for name, recognise in systems:
        start = time.perf_counter()
        try:
            text = recognise(samples)
        except Exception as err:  # one system's failure must not hide the others
            rows.append(Row(name, audio_seconds=seconds, error=f"{type(err).__name__}: {err}".splitlines()[0]))
            continue
        rows.append(Row(name, text, seconds, time.perf_counter() - start))
    return rows


class Reference:
    """A reference recogniser (`asr_poc.references`), created on first use and kept (its model takes a moment to
    load); called with 16 kHz samples, it returns the text."""

    def __init__(self, name: str = "pocketsphinx") -> None:
        self.name = name
        self.label = REFERENCES[name].label if name in REFERENCES else name
        self._recognizer: Optional[Recogniser] = None
        self._lock = threading.Lock()

    def unavailable(self) -> Optional[str]:
        """None when this reference can run here, else why not."""
        return unavailable(self.name)

    def __call__(self, samples: np.ndarray) -> str:
        with self._lock:  # one model, one caller at a time
            if self._recognizer is None:
                self._recognizer = reference(self.name)  # warmed up, not timed
            return self._recognizer.transcribe(samples)


def model_recogniser(transcriber) -> Recognise:
    """A `Transcriber` as a recogniser of 16 kHz samples (it resamples to its own rate when that differs)."""
    return lambda samples: transcriber.transcribe(samples, source_rate=SAMPLE_RATE).text
