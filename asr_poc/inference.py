"""Transcriber: load a checkpoint, transcribe files, byte strings or arrays, stream PCM, and report speed.

Decoding: greedy unless `decoding` (the config's `decoding` section) asks for beam search with an n-gram LM
(`asr_poc.decoding`). It applies to whole inputs and to a stream's final text; a stream's partial texts stay greedy
(cheap, and shown only until the final one), so a recording and the same audio as a file end in the same text. An `.onnx` file from `asr-poc export` loads
like a checkpoint and runs in onnxruntime.

Streaming: `Transcriber.open_stream()` returns a `StreamSession`; `push(pcm)` takes a chunk of any length (float32
in [-1, 1] or int16, at the model's rate or `source_rate`) and returns the text so far, `finish()` the final text.
`Transcriber.stream(chunks)` does the same for an iterable. A streaming model (`model.streaming`) runs its own
incremental step (`BaseASRModel.stream_step`: chunk by chunk, state carried, so the compute per push stays
constant). Any other model falls back to re-decoding everything buffered, at most once per `REDECODE_SECONDS` of
new audio: correct text, but the cost of each partial grows with the length of the stream.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional

import numpy as np
import torch
import torchaudio

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

    def __init__(self, model: BaseASRModel, max_seconds: Optional[float] = 600.0, decoding: Optional[dict] = None):
        """`decoding`: the config's `decoding` section (or `DecodingOptions`); None decodes greedily."""
        from .decoding.beam import make_decoder

        self.model = model.eval()
        self.max_seconds = max_seconds
        self.decoder = make_decoder(model.tokenizer, decoding)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str = "cpu", max_seconds: Optional[float] = 600.0,
                        decoding: Optional[dict] = None) -> "Transcriber":
        """A checkpoint file alone is enough: model class, config, tokenizer and features are inside.

        A `.onnx` file written by `asr-poc export` runs in onnxruntime (on the CPU) instead of torch.
        """
        if Path(path).suffix == ".onnx":
            from .export_streaming import load_onnx_model

            return cls(load_onnx_model(path), max_seconds=max_seconds, decoding=decoding)
        return cls(BaseASRModel.from_checkpoint(path, device=device), max_seconds=max_seconds, decoding=decoding)

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
        text = self.decoder.transcribe(self.model, wav, torch.tensor([wav.shape[1]], device=self.model.device))[0]
        elapsed = time.perf_counter() - start
        name = str(source) if isinstance(source, (str, os.PathLike)) else ""
        return Transcript(text=text, audio_seconds=len(waveform) / self.sample_rate, compute_seconds=elapsed,
                          source=name)

    def open_stream(self, source_rate: Optional[int] = None, incremental: Optional[bool] = None) -> "StreamSession":
        """A live stream: push PCM chunks, get partial text after each and the final text at `finish()`.

        `incremental` (default: whether the model streams) False forces the re-decoding fallback, e.g. to compare.
        """
        return StreamSession(self, source_rate=source_rate, incremental=incremental)

    def stream(self, chunks: Iterable[np.ndarray], source_rate: Optional[int] = None,
               incremental: Optional[bool] = None) -> Iterator["StreamResult"]:
        """Partial text after each chunk, then the final text (`is_final=True`) once `chunks` is exhausted."""
        session = self.open_stream(source_rate=source_rate, incremental=incremental)
        for chunk in chunks:
            yield session.push(chunk)
        yield session.finish()

    def transcribe_files(self, paths: Iterable[str | os.PathLike]) -> list[Transcript | Failure]:
        """Transcribe each file; a file that cannot be read becomes a `Failure`, the others still run."""
        results: list[Transcript | Failure] = []
        for path in paths:
            try:
                results.append(self.transcribe(Path(path)))
            except AudioError as err:
                results.append(Failure(source=str(path), error=str(err)))
        return results


REDECODE_SECONDS = 0.5  # non-streaming models: re-decode the buffered audio at most this often


@dataclass
class StreamResult:
    """The text so far; `audio_seconds` received so far; `compute_seconds` spent decoding in this call."""

    text: str
    is_final: bool
    audio_seconds: float
    compute_seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


class StreamResampler:
    """torchaudio's sinc resampling, chunk by chunk: the output equals `torchaudio.functional.resample` of the whole
    signal. Each block of `orig` input samples (rates divided by their gcd) gives `new` output samples once the
    filter's `width` samples after it have arrived."""

    def __init__(self, orig_freq: int, new_freq: int):
        t = torchaudio.transforms.Resample(orig_freq, new_freq)
        self.orig, self.new, self.kernel, self.width = orig_freq // t.gcd, new_freq // t.gcd, t.kernel, t.width
        self.buffer = torch.zeros(self.width)  # the zero padding before the first sample, as offline
        self.received = self.emitted = 0

    def __call__(self, samples: torch.Tensor, final: bool = False) -> torch.Tensor:
        self.received += samples.numel()
        self.buffer = torch.cat([self.buffer, samples] + ([torch.zeros(self.width + self.orig)] if final else []))
        blocks = (self.buffer.numel() - 2 * self.width - self.orig) // self.orig + 1
        if blocks <= 0:
            return torch.zeros(0)
        used = self.buffer[: (blocks - 1) * self.orig + 2 * self.width + self.orig]
        out = torch.nn.functional.conv1d(used[None, None], self.kernel, stride=self.orig)[0].T.reshape(-1)
        self.buffer = self.buffer[blocks * self.orig :]
        if final:  # offline keeps ceil(new * length / orig) samples
            out = out[: max(0, -(-self.new * self.received // self.orig) - self.emitted)]
        self.emitted += out.numel()
        return out


class StreamSession:
    """One live stream into a `Transcriber`'s model (see the module docstring). Not thread-safe: one producer."""

    def __init__(self, transcriber: Transcriber, source_rate: Optional[int] = None,
                 incremental: Optional[bool] = None):
        self.model = transcriber.model
        self.rate = self.model.sample_rate
        self.source_rate = source_rate
        self.max_seconds = transcriber.max_seconds
        can_stream = bool(getattr(self.model, "streaming", False))
        if incremental and not can_stream:
            raise ValueError(f"model {self.model.name!r} does not stream; use incremental=None or False")
        self.streaming = can_stream if incremental is None else bool(incremental)
        self.state = self.model.init_stream_state() if self.streaming else None
        self.decoder = transcriber.decoder
        self.final_decode = getattr(self.decoder.options, "method", "greedy") != "greedy"
        self.buffered: list[torch.Tensor] = []  # everything received (the fallback re-decodes it; beam decodes it last)
        self.samples = 0  # samples received, at the model's rate
        self.decoded_samples = 0
        self.text = ""
        self.finished = False
        self._resampler: Optional[StreamResampler] = None
        self._resampler_rate: Optional[int] = None

    @property
    def audio_seconds(self) -> float:
        return self.samples / self.rate

    def _samples(self, pcm, source_rate: Optional[int], final: bool = False) -> torch.Tensor:
        """A chunk (float in [-1, 1] or integer PCM, 1-D) -> float32 samples at the model's rate."""
        data = pcm.detach().cpu().numpy() if isinstance(pcm, torch.Tensor) else np.asarray(pcm)
        if data.ndim != 1:
            raise AudioError(f"a stream chunk must be 1-D (mono samples), got shape {data.shape}")
        if np.issubdtype(data.dtype, np.integer):
            data = data.astype(np.float32) / float(np.iinfo(data.dtype).max + 1)
        wav = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))
        if not torch.isfinite(wav).all():
            raise AudioError("audio contains NaN or infinite samples")
        rate = source_rate or self.source_rate or self.rate
        if self._resampler_rate is not None and rate != self._resampler_rate:
            raise AudioError(f"source_rate changed from {self._resampler_rate} to {rate} within one stream")
        if rate != self.rate:
            if self._resampler is None:
                self._resampler, self._resampler_rate = StreamResampler(int(rate), self.rate), rate
            wav = self._resampler(wav, final=final)
        else:
            self._resampler_rate = rate
        return wav

    def _decode(self, wav: torch.Tensor, final: bool) -> float:
        """Feed new samples to the model; returns the compute time (seconds)."""
        self.samples += wav.numel()
        start = time.perf_counter()
        if not self.streaming or self.final_decode:  # a streaming model decoded greedily needs no copy
            self.buffered.append(wav)
        if self.streaming:
            self.text, self.state = self.model.stream_step(wav.to(self.model.device), self.state, final=final)
        elif self.max_seconds is not None and self.audio_seconds > self.max_seconds:
            raise AudioError(f"stream is {self.audio_seconds:.1f} s long; the limit for a non-streaming model is "
                             f"{self.max_seconds:g} s")
        if final and self.final_decode:
            self.text = self._decode_all()
        elif not self.streaming and (final or self.samples - self.decoded_samples >= REDECODE_SECONDS * self.rate):
            audio = torch.cat(self.buffered)
            self.buffered = [audio]
            if audio.numel() > self.model.features.n_fft // 2:  # the frontend needs half a window at least
                self.text = self.model.inference(audio)
            self.decoded_samples = self.samples
        return time.perf_counter() - start

    def _decode_all(self) -> str:
        """The whole stream through the transcriber's decoder (beam search, LM): the final text, as for a file."""
        audio = torch.cat(self.buffered) if self.buffered else torch.zeros(0)
        self.buffered = [audio]
        if audio.numel() <= self.model.features.n_fft // 2:
            return self.text
        wav = audio[None].to(self.model.device)
        return self.decoder.transcribe(self.model, wav, torch.tensor([wav.shape[1]], device=self.model.device))[0]

    @property
    def audio(self) -> np.ndarray:
        """The samples received so far at the model's rate (kept when the final text is decoded from them)."""
        return torch.cat(self.buffered).numpy() if self.buffered else np.zeros(0, dtype=np.float32)

    def push(self, pcm, source_rate: Optional[int] = None) -> StreamResult:
        """Add a chunk of any length; returns the text so far (updated when a chunk of the model completed)."""
        if self.finished:
            raise RuntimeError("this stream is finished; open a new one")
        compute = self._decode(self._samples(pcm, source_rate), final=False)
        return StreamResult(self.text, False, self.audio_seconds, compute)

    def finish(self) -> StreamResult:
        """Decode what is left (the last partial chunk) and return the final text."""
        if self.finished:
            raise RuntimeError("this stream is already finished")
        tail = self._resampler(torch.zeros(0), final=True) if self._resampler is not None else torch.zeros(0)
        compute = self._decode(tail, final=True)
        self.finished = True
        return StreamResult(self.text, True, self.audio_seconds, compute)
