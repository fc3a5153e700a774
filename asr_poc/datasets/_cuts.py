"""lhotse cuts as this package's utterances: the index, the audio behind each one, and a cache of prepared cuts.

A cut that is a whole single-file recording (LibriSpeech, Common Voice, most recipes) becomes a plain path, read
by `asr_poc.audio.load_audio` like any other data set's file. Any other cut (a segment of a long recording, a
multi-file or in-memory source) keeps the cut and is read through lhotse (`CutAudio`). lhotse is imported only
inside the functions, so that listing or configuring data sets does not pay for its import (~1.3 s).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import numpy as np

from ..audio import load_audio
from .interface import Utterance


@dataclass(frozen=True)
class CutAudio:
    """The audio of a lhotse cut that is not a whole file (a segment, several files, or bytes in memory)."""

    cut: Any  # lhotse.cut.Cut

    def read(self, sample_rate: int, max_seconds: Optional[float]) -> np.ndarray:
        samples = self.cut.load_audio()  # (channels, samples) at the cut's own rate
        return load_audio(samples, sample_rate, source_rate=self.cut.sampling_rate, max_seconds=max_seconds)


def read_audio(audio: Any, sample_rate: int, max_seconds: Optional[float]) -> np.ndarray:
    """Mono float32 samples at `sample_rate` of an utterance's audio: a path, bytes, or an object with `read`."""
    if hasattr(audio, "read"):
        return audio.read(sample_rate, max_seconds)
    return load_audio(audio, sample_rate, max_seconds=max_seconds)


def whole_file(cut: Any) -> Optional[str]:
    """The path of `cut`'s audio when the cut is all of one audio file, else None."""
    recording = getattr(cut, "recording", None)
    if recording is None or len(recording.sources) != 1 or recording.transforms:
        return None
    source = recording.sources[0]
    if source.type != "file" or cut.start > 1e-3 or abs(cut.duration - recording.duration) > 1e-3:
        return None
    if getattr(cut, "num_channels", 1) != recording.num_channels:  # one channel of a multi-channel file
        return None
    return str(source.source)


def cut_text(cut: Any) -> str:
    """What is said in `cut`: its supervisions' texts in time order."""
    return " ".join(s.text.strip() for s in sorted(cut.supervisions, key=lambda s: s.start) if s.text)


def to_utterances(cuts: Iterable[Any], max_seconds: Optional[float], source: str,
                  audio_of: Callable[[Any], Any] = lambda cut: whole_file(cut) or CutAudio(cut)) -> list[Utterance]:
    """One `Utterance` per cut with a transcript; cuts without text or longer than `max_seconds` are left out
    (with a warning naming `source`). `audio_of(cut)` says where each cut's audio is read from."""
    items, untranscribed, too_long = [], 0, 0
    for cut in cuts:
        text = cut_text(cut)
        if not text:
            untranscribed += 1
        elif max_seconds is not None and cut.duration > max_seconds:
            too_long += 1
        else:
            items.append(Utterance(id=cut.id, audio=audio_of(cut), text=text, duration=float(cut.duration)))
    if untranscribed or too_long:
        warnings.warn(f"{source}: left out {untranscribed} cut(s) without a transcript and {too_long} longer than "
                      f"max_seconds={max_seconds}", stacklevel=2)
    return items


def utterance_cuts(recordings: Any, supervisions: Any) -> Any:
    """A CutSet of one cut per supervision (an utterance) from a recipe's recordings and supervisions."""
    from lhotse import CutSet

    cuts = CutSet.from_manifests(recordings=recordings, supervisions=supervisions)
    return cuts.trim_to_supervisions(keep_overlapping=False)


def cached_cuts(path: Optional[Path], prepare: Callable[[], Any]) -> Any:
    """The CutSet saved at `path`, or `prepare()`'s, saved there for next time (written to a temporary name and
    renamed, so that a killed run or two ranks at once never leave half a file). `path` None: no cache."""
    from lhotse import CutSet

    if path is not None and path.is_file():
        return CutSet.from_file(path)
    cuts = prepare().to_eager()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name[:-len('.jsonl.gz')]}.{os.getpid()}.tmp.jsonl.gz")
        cuts.to_file(tmp)
        os.replace(tmp, path)
    return cuts
