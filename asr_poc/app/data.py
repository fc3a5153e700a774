"""Data as a person handles it: build the offline corpora (`asr-poc prepare`), browse a data set's utterances (the
Data tab), and keep one's own recordings (the Record tab: a sentence to read, the clips saved, listed, deleted).

The corpora, the index and the store are `asr_poc.datasets` and `asr_poc.corpus_index`. The data set plugins read
audio with torch, so they are imported inside the calls, and `RecordingStore` / `RecordingError` on first use.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Optional

from ..corpus_index import Entry, corpus_entries, corpus_totals, duration_histogram, filter_entries, speakers_of

if TYPE_CHECKING:
    from ..datasets.recordings import RecordingStore
    from ..datasets.synthetic import SentenceGenerator

__all__ = ["Entry", "RecordingError", "RecordingStore", "corpus_entries", "corpus_totals", "duration_histogram",
           "filter_entries", "generate_synthetic", "prepare_asterisk", "prepare_real_check", "recording_store",
           "sentence_generator", "speakers_of"]


def __getattr__(name: str):
    """`RecordingStore` and `RecordingError`, imported (with torch, which reads the audio) on first use."""
    if name in ("RecordingStore", "RecordingError"):
        from ..datasets import recordings

        return getattr(recordings, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def generate_synthetic(out: str | os.PathLike, utterances: int, seed: int = 0, engines: Iterable[str] = (),
                       english_share: Optional[float] = None, progress: bool = True) -> Path:
    """Write the espeak-ng + Festival corpus (LJSpeech layout) to `out`; `engines` and `english_share` default to
    the generator's own. Raises RuntimeError or ValueError (one line) when it cannot."""
    from ..datasets import synthetic

    options = {"engines": list(engines)} if engines else {}
    if english_share is not None:
        options["english_share"] = english_share
    return synthetic.generate_corpus(out=out, utterances=utterances, seed=seed, progress=progress, **options)


def prepare_real_check(out: str | os.PathLike) -> Path:
    """Write real-check, the real-speech set shipped in the package, to `out`."""
    from ..datasets import real_check

    return real_check.prepare(out)


def prepare_asterisk(out: str | os.PathLike, debs: Optional[str | os.PathLike] = None) -> tuple[Path, dict[str, int]]:
    """Write the Asterisk prompts from Debian's packages to `out` (apt-get downloads them unless `debs` holds them);
    returns (out, {reason: prompts left out})."""
    from ..datasets import asterisk

    return asterisk.prepare(out, debs=debs)


def recording_store(path: str | os.PathLike) -> "RecordingStore":
    """The recordings data set in `path`: add a clip with its text and speaker, list, count, delete."""
    from ..datasets.recordings import RecordingStore

    return RecordingStore(path)


def sentence_generator(seed: int = 0) -> "SentenceGenerator":
    """Seeded sentences to read aloud, from the synthetic corpus's grammar (`.sentence()`)."""
    from ..datasets.synthetic import SentenceGenerator

    return SentenceGenerator(seed=seed)
