"""Audio as the faces receive it: an uploaded file's bytes, a recording's samples, or a path, read at the rate a
model wants; anything that cannot be used is an `AudioError` with one line that says why.

The reading is `asr_poc.audio` (torchaudio, torchcodec), imported inside the call and `AudioError` on first use.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    import numpy as np

    from ..audio import AudioSource

__all__ = ["AudioError", "load_clip"]


def __getattr__(name: str):
    """`AudioError`, imported (with torch) on first use."""
    if name == "AudioError":
        from ..audio import AudioError

        return AudioError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_clip(source: "AudioSource", sample_rate: int, source_rate: Optional[int] = None,
              max_seconds: Optional[float] = None) -> "np.ndarray":
    """Mono float32 samples at `sample_rate` from a path, encoded bytes or samples (at `source_rate`)."""
    from ..audio import load_audio

    return load_audio(source, sample_rate, source_rate=source_rate, max_seconds=max_seconds)
