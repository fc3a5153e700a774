"""What every speech engine shares: the `Line` to speak, the `VoiceEngine` interface and writing its WAV.

An engine lists its voices and speaks `Line`s into 16 kHz mono 16-bit WAV files. Every engine takes the same
two knobs per line: `speed` in words per minute (165 is an ordinary pace) and `pitch` on espeak-ng's 0-99 scale
(50 is the voice's own). A voice name may end in `@<warp>` (e.g. `kal_diphone@1.12`): the audio is then
resampled as if the speaker's vocal tract were that much shorter (pitch and formants up, faster) -- one recorded
voice becomes several speakers.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import soundfile as sf
import torch
import torchaudio

SAMPLE_RATE = 16000
NORMAL_SPEED = 165  # words per minute that an engine's speed 1.0 stands for


@dataclass(frozen=True)
class Line:
    """One utterance to speak: its text, the engine's voice name (with an optional @warp), speed and pitch."""

    text: str
    voice: str
    speed: int  # words per minute
    pitch: int  # 0-99, 50 = the voice's own
    wav: Path


class VoiceEngine(ABC):
    """A text-to-speech engine. `voices()` names what it can speak; `speak()` writes 16 kHz WAV files."""

    name: str = "engine"

    @abstractmethod
    def voices(self) -> list[str]:
        """Voice names this engine offers on this machine (without @warp suffixes)."""

    @abstractmethod
    def speak(self, lines: list[Line], jobs: int = 2, done: Optional[Callable[[int], None]] = None) -> None:
        """Write every line's `wav` (16 kHz mono PCM16, atomically); call `done(n)` as lines complete."""


def split_warp(voice: str) -> tuple[str, float]:
    """'kal_diphone@1.12' -> ('kal_diphone', 1.12); a voice without a suffix has warp 1.0."""
    name, _, warp = voice.partition("@")
    return name, float(warp) if warp else 1.0


def write_wav(path: Path, samples: np.ndarray, rate: int, warp: float = 1.0) -> None:
    """Resample `samples` (float, at `rate`) to 16 kHz, applying `warp`, and write PCM16 atomically."""
    audio = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    source_rate = int(round(rate * warp / 10.0)) * 10  # a multiple of 10 keeps the resampling kernel small
    if source_rate != SAMPLE_RATE:
        audio = torchaudio.functional.resample(audio, source_rate, SAMPLE_RATE)
    peak = float(audio.abs().max()) if audio.numel() else 0.0
    if peak > 0.99:
        audio = audio * (0.99 / peak)
    tmp = path.with_name(f".{path.name}.tmp")
    sf.write(str(tmp), audio.numpy(), SAMPLE_RATE, subtype="PCM_16", format="WAV")
    os.replace(tmp, path)


def speak_lines(speak_one: Callable[[Line], None], lines: list[Line], jobs: int = 2,
                done: Optional[Callable[[int], None]] = None) -> None:
    """Run `speak_one` on every line, `jobs` at a time (engines that start one process per line); `done(1)` after
    each, in order; the first failure cancels what has not started and is raised."""
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        futures = [pool.submit(speak_one, line) for line in lines]
        try:
            for future in futures:
                future.result()
                if done:
                    done(1)
        except BaseException:
            for f in futures:
                f.cancel()
            raise
