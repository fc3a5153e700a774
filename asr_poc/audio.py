"""Audio in: any file, byte string or array -> mono float32 at the model's rate (log-mel
features: `asr_poc.models.features`).

soundfile reads WAV/FLAC/OGG/MP3; torchcodec (FFmpeg) reads other containers (WebM/Opus from a browser
recorder, M4A ...). Resampling is torchaudio's. Bad audio raises `AudioError` with a one-line reason.

With `max_seconds`, memory stays bounded whatever the file claims: a duration in the header (or found by the
demuxer without decoding) over the limit is refused before anything is decoded, and decoding itself stops a little
past the limit, so a file without a length in its header (a browser's WebM) cannot decode into gigabytes.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Union

import numpy as np
import soundfile as sf
import torch
import torchaudio

AudioSource = Union[str, os.PathLike, bytes, bytearray, np.ndarray, torch.Tensor]


class AudioError(ValueError):
    """Audio that cannot be used; the message says why in one line."""


# Decoding stops this far past `max_seconds`: enough to tell "over the limit" from "at the limit".
DECODE_MARGIN_SECONDS = 0.5


def _too_long(seconds: float, max_seconds: float, stopped: bool = False) -> AudioError:
    told = f"over {seconds:.1f} s long (decoding stopped there)" if stopped else f"{seconds:.1f} s long"
    return AudioError(f"audio is {told}; the limit is {max_seconds:g} s")


def _decode_with_torchcodec(data: bytes | str, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    try:
        from torchcodec.decoders import AudioDecoder
    except Exception as err:  # FFmpeg missing or torchcodec not installed
        raise AudioError(f"not a format soundfile reads, and torchcodec is unavailable ({err.__class__.__name__})")
    try:
        decoder = AudioDecoder(data)
        known = decoder.metadata.duration_seconds  # from the header, or from demuxing (no decoding); may be None
        if max_seconds is not None and known is not None and known > max_seconds:
            raise _too_long(known, max_seconds)
        if max_seconds is None:
            samples = decoder.get_all_samples()
        else:  # decodes from the start up to the stop time only: memory bounded by the limit
            samples = decoder.get_samples_played_in_range(0.0, max_seconds + DECODE_MARGIN_SECONDS)
    except AudioError:
        raise
    except Exception as err:
        raise AudioError(f"not audio, or a corrupt file ({str(err).splitlines()[0][:120]})") from None
    data_tc = samples.data.numpy().T  # (time, channels)
    rate = int(samples.sample_rate)
    if max_seconds is not None and data_tc.shape[0] > max_seconds * rate:
        raise _too_long(data_tc.shape[0] / rate, max_seconds, stopped=known is None)
    return data_tc, rate


def _read_with_soundfile(file: Any, max_seconds: float | None) -> tuple[np.ndarray, int]:
    """Read with soundfile; with a limit, check the header's length first and read no more than the limit."""
    with sf.SoundFile(file) as f:
        rate = f.samplerate
        if max_seconds is None:
            return f.read(dtype="float32", always_2d=True), rate
        if f.frames / rate > max_seconds:  # the header's length: nothing decoded yet
            raise _too_long(f.frames / rate, max_seconds)
        cap = int((max_seconds + DECODE_MARGIN_SECONDS) * rate)
        data = f.read(frames=cap, dtype="float32", always_2d=True)  # bounded even if the header lies
    if data.shape[0] > max_seconds * rate:
        raise _too_long(data.shape[0] / rate, max_seconds, stopped=True)
    return data, rate


def _read(source: AudioSource, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Decode to (samples[time, channels] float32, rate), refusing audio longer than `max_seconds`."""
    if isinstance(source, (bytes, bytearray)):
        if len(source) == 0:
            raise AudioError("empty audio (0 bytes)")
        try:
            return _read_with_soundfile(io.BytesIO(bytes(source)), max_seconds)
        except AudioError:
            raise
        except Exception:
            return _decode_with_torchcodec(bytes(source), max_seconds)
    path = Path(source)
    if not path.is_file():
        raise AudioError(f"no such file: {path}")
    if path.stat().st_size == 0:
        raise AudioError("empty file (0 bytes)")
    try:
        return _read_with_soundfile(str(path), max_seconds)
    except AudioError:
        raise
    except Exception:
        return _decode_with_torchcodec(str(path), max_seconds)


def load_audio(
    source: AudioSource,
    sample_rate: int = 16000,
    *,
    source_rate: int | None = None,
    max_seconds: float | None = None,
) -> np.ndarray:
    """Return mono float32 samples at `sample_rate` from a path, encoded bytes or an array.

    Arrays are taken as samples at `source_rate` (default: already at `sample_rate`); 16-bit integer arrays are
    scaled to [-1, 1]. Stereo is averaged, other rates resampled. Raises `AudioError` for empty, non-audio,
    NaN/infinite or over-long audio.
    """
    if isinstance(source, (np.ndarray, torch.Tensor)):
        data = source.detach().cpu().numpy() if isinstance(source, torch.Tensor) else source
        if np.issubdtype(data.dtype, np.integer):
            data = data.astype(np.float32) / float(np.iinfo(data.dtype).max + 1)
        data = np.asarray(data, dtype=np.float32)
        data = data[:, None] if data.ndim == 1 else data
        if data.ndim != 2:
            raise AudioError(f"audio array must be 1-D or (time, channels), got shape {tuple(source.shape)}")
        if data.shape[0] < data.shape[1]:  # (channels, time) -> (time, channels)
            data = data.T
        rate = source_rate or sample_rate
    else:
        data, rate = _read(source, max_seconds)
    if data.size == 0 or data.shape[0] == 0:
        raise AudioError("zero-length audio (no samples)")
    if not np.isfinite(data).all():
        raise AudioError("audio contains NaN or infinite samples")
    duration = data.shape[0] / rate
    if max_seconds is not None and duration > max_seconds:
        raise AudioError(f"audio is {duration:.1f} s long; the limit is {max_seconds:g} s")
    mono = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1)))
    if rate != sample_rate:
        mono = torchaudio.functional.resample(mono, rate, sample_rate)
    return mono.numpy().astype(np.float32, copy=False)
