"""Transcriber: load a checkpoint, transcribe files, byte strings or arrays, and report speed."""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Optional

import torch

from .audio import AudioError, AudioSource, load_audio
from .evaluation import real_time_factor
from .models.interface import BaseASRModel


@dataclass
class Transcript:
    """What one input became: the text, how long the audio was and how long decoding took."""

    text: str
    audio_seconds: float
    compute_seconds: float
    source: str = ""

    @property
    def rtf(self) -> float:
        return real_time_factor(self.compute_seconds, self.audio_seconds)

    def to_dict(self) -> dict:
        return {**asdict(self), "rtf": self.rtf}


@dataclass
class Failure:
    """An input that could not be transcribed, and why (one line)."""

    source: str
    error: str

    def to_dict(self) -> dict:
        return asdict(self)


class Transcriber:
    """Wraps a trained model for inference on one device."""

    def __init__(self, model: BaseASRModel, max_seconds: Optional[float] = 600.0):
        self.model = model.eval()
        self.max_seconds = max_seconds

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str = "cpu", max_seconds: Optional[float] = 600.0
                        ) -> "Transcriber":
        """A checkpoint file alone is enough: model class, config, tokenizer and features are inside."""
        return cls(BaseASRModel.from_checkpoint(path, device=device), max_seconds=max_seconds)

    @property
    def sample_rate(self) -> int:
        return self.model.sample_rate

    def transcribe(self, source: AudioSource, source_rate: Optional[int] = None) -> Transcript:
        """Transcribe a path, encoded bytes, or an array of samples (at `source_rate`, default the model's).

        Raises `AudioError` for audio that cannot be used.
        """
        waveform = load_audio(source, self.sample_rate, source_rate=source_rate, max_seconds=self.max_seconds)
        wav = torch.from_numpy(waveform).unsqueeze(0).to(self.model.device)
        start = time.perf_counter()
        text = self.model.transcribe(wav, torch.tensor([wav.shape[1]], device=self.model.device))[0]
        elapsed = time.perf_counter() - start
        name = str(source) if isinstance(source, (str, os.PathLike)) else ""
        return Transcript(text=text, audio_seconds=len(waveform) / self.sample_rate, compute_seconds=elapsed,
                          source=name)

    def transcribe_files(self, paths: Iterable[str | os.PathLike]) -> list[Transcript | Failure]:
        """Transcribe each file; a file that cannot be read becomes a `Failure`, the others still run."""
        results: list[Transcript | Failure] = []
        for path in paths:
            try:
                results.append(self.transcribe(Path(path)))
            except AudioError as err:
                results.append(Failure(source=str(path), error=str(err)))
        return results
