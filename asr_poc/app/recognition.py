"""Recognition as a person does it: choose a checkpoint and a decoding, then give it a file, samples, or a live
stream; compare the text with reference recognisers and other checkpoints on the same clip.

A `RecognitionSession` holds one model and one decoder. Its file path (`transcribe`) and its streaming path
(`open_stream` -> `feed` ... `finish`) use that same decoder, so a recording's final text and the same audio
uploaded as a file come from the same decoding settings (partial texts while a person speaks stay greedy).
A stream resamples once, in the stream itself; the samples it decoded are kept for playback (`LiveStream.audio`).

    session = open_session("checkpoints/RUN/best.pt", {"method": "beam", "lm_path": "data/lm/english"})
    session.transcribe("a.wav").text
    live = session.open_stream(source_rate=16000); live.feed(pcm) ...; live.finish().text
    compare(samples, 16000, main=result, references=["pocketsphinx", "whisper-tiny.en"])
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..audio import AudioSource, load_audio
from ..bench.side_by_side import SAMPLE_RATE, Reference, Row, run_side_by_side
from ..config import DecodingOptions
from ..decoding.emissions import NoCTCOutput, ctc_logits_fn
from ..decoding.lm import LMError
from ..inference import StreamResult, StreamSession, Transcriber, Transcript

DecodingChoice = DecodingOptions | dict | None


class RecognitionSession:
    """One checkpoint with one decoding: files and streams through the same decoder."""

    def __init__(self, transcriber: Transcriber, decoding: DecodingChoice = None, source: str = ""):
        self.decoding = DecodingOptions.from_dict(decoding)
        if self.decoding.method == "beam":
            try:
                ctc_logits_fn(transcriber.model)
            except NoCTCOutput:
                raise NoCTCOutput(f"{transcriber.model.name} does not decode with CTC beam search and an n-gram LM; "
                                  f"choose greedy (its own decoding: models.{transcriber.model.name} settings)") from None
        self.transcriber = Transcriber(transcriber.model, max_seconds=transcriber.max_seconds, decoding=self.decoding)
        self.source = source

    @property
    def sample_rate(self) -> int:
        return self.transcriber.sample_rate

    @property
    def model_name(self) -> str:
        return self.transcriber.model.name

    @property
    def streams(self) -> bool:
        """Whether partial text comes from the model's own incremental step (else the audio so far is re-decoded)."""
        return bool(getattr(self.transcriber.model, "streaming", False))

    def with_decoding(self, decoding: DecodingChoice) -> "RecognitionSession":
        """The same loaded model with another decoding (nothing is read from disk again)."""
        return RecognitionSession(self.transcriber, decoding, self.source)

    def transcribe(self, source: AudioSource, source_rate: Optional[int] = None) -> Transcript:
        """A path, encoded bytes, or samples (at `source_rate`, default the model's rate). Raises `AudioError`."""
        return self.transcriber.transcribe(source, source_rate=source_rate)

    def open_stream(self, source_rate: Optional[int] = None) -> "LiveStream":
        """A live stream: `feed` chunks of PCM as they arrive, `finish` for the final text."""
        return LiveStream(self.transcriber.open_stream(source_rate=source_rate))


class LiveStream:
    """Chunks in, partial text out; the final text is decoded like a file of the same samples."""

    def __init__(self, stream: StreamSession):
        self._stream = stream
        self.compute_seconds = 0.0  # summed over every call, partials included

    def feed(self, pcm: np.ndarray) -> StreamResult:
        """Add a chunk (int16 or float32 mono, any length); returns the text so far."""
        result = self._stream.push(pcm)
        self.compute_seconds += result.compute_seconds
        return result

    def finish(self) -> StreamResult:
        result = self._stream.finish()
        self.compute_seconds += result.compute_seconds
        return result

    @property
    def audio(self) -> np.ndarray:
        """What was received, at the model's rate (the samples the final text was decoded from)."""
        return self._stream.audio

    @property
    def sample_rate(self) -> int:
        return self._stream.rate

    @property
    def audio_seconds(self) -> float:
        return self._stream.audio_seconds


def open_session(checkpoint: str | os.PathLike, decoding: DecodingChoice = None, max_seconds: Optional[float] = 600.0,
                 device: str = "cpu") -> RecognitionSession:
    """Load a checkpoint (or an exported `.onnx`) for recognition with `decoding` (None: greedy)."""
    transcriber = Transcriber.from_checkpoint(checkpoint, device=device, max_seconds=max_seconds)
    return RecognitionSession(transcriber, decoding, source=str(checkpoint))


class SessionCache:
    """Sessions by checkpoint file and decoding: a model is loaded once per version of its file (its mtime), and a
    decoder (an LM takes seconds to read) once per decoding of it; thread-safe."""

    def __init__(self, max_seconds: Optional[float] = 600.0):
        self.max_seconds = max_seconds
        self._loaded: dict[str, tuple[float, dict[str, RecognitionSession]]] = {}
        self._lock = threading.Lock()

    def get(self, checkpoint: str | os.PathLike, decoding: DecodingChoice = None,
            keep: Sequence[str] = ()) -> RecognitionSession:
        """The session of `checkpoint` with `decoding`; other files than `keep` and this one are let go."""
        path = str(Path(checkpoint).resolve())
        wanted = DecodingOptions.from_dict(decoding)
        key = wanted.model_dump_json()
        with self._lock:
            mtime = Path(path).stat().st_mtime
            cached = self._loaded.get(path)
            if cached is None or cached[0] != mtime:
                kept = {str(Path(k).resolve()) for k in keep if k}
                self._loaded = {k: v for k, v in self._loaded.items() if k in kept}
                greedy = open_session(path, None, self.max_seconds)
                cached = self._loaded[path] = (mtime, {DecodingOptions().model_dump_json(): greedy})
            sessions = cached[1]
            if key not in sessions:
                sessions[key] = next(iter(sessions.values())).with_decoding(wanted)
            return sessions[key]


_REFERENCES: dict[str, Reference] = {}


def reference_session(name: str) -> Reference:
    """A reference recogniser (`asr_poc.references`: pocketsphinx, whisper-tiny.en), loaded at its first use."""
    if name not in _REFERENCES:
        _REFERENCES[name] = Reference(name)
    return _REFERENCES[name]


def compare(samples: np.ndarray, sample_rate: int, main: Optional[Row] = None,
            others: Sequence[tuple[str, RecognitionSession]] = (), references: Sequence[str] = ()) -> list[Row]:
    """The same clip through other checkpoints and reference recognisers, timed alike; one `Row` each, after `main`.
    A system that fails gives its one-line error in its row and the others still run."""
    clip = load_audio(samples, SAMPLE_RATE, source_rate=sample_rate)
    systems = [(name, lambda s, session=session: session.transcribe(s, source_rate=SAMPLE_RATE).text)
               for name, session in others]
    systems += [(reference_session(name).label, reference_session(name)) for name in references]
    return ([main] if main is not None else []) + run_side_by_side(clip, systems)
