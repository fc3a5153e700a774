"""A data set split as a light table for browsing: id, text, speaker, duration and audio of every utterance, with
filters, totals and a duration histogram (the dashboard's Data tab).

The utterances come from the data set's own plugin (the same ids, texts, durations and splits training sees; the
LJSpeech-layout loaders read durations from the WAV headers), the speaker from the corpus's side files:
`voices.csv` (synthetic: `<engine>:<voice>`), `speakers.csv` (recordings) or `sources.csv` (real-check). An index is
cached per process and read again when one of those files changes.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np

from .config import dataset_section, load_config
from .paths import resolve_path
from .plugins import load_dataset

SPEAKER_FILES = ("voices.csv", "speakers.csv", "sources.csv")  # id|speaker|... beside metadata.csv
WATCHED_FILES = ("metadata.csv", "splits.csv", *SPEAKER_FILES)

_cache: dict[tuple, tuple[tuple, list["Entry"]]] = {}
_cache_lock = threading.Lock()


@dataclass(frozen=True)
class Entry:
    """One utterance of a split, as the browser lists it."""

    id: str
    text: str
    duration: float
    speaker: str = ""
    audio: Optional[str] = None  # a file path, when the data set keeps one


def read_speakers(folder: str | os.PathLike) -> dict[str, str]:
    """{id: speaker} from the first side file the corpus folder has (see SPEAKER_FILES); {} without one."""
    from .datasets.ljspeech import read_pipe_csv  # the plugins are loaded already (torch): see corpus_entries

    for name in SPEAKER_FILES:
        path = Path(folder) / name
        if path.is_file():
            return {row[0].strip(): row[1].strip() for row in read_pipe_csv(path) if len(row) > 1}
    return {}


def _signature(folder: Optional[Path]) -> tuple:
    if folder is None:
        return ()
    return tuple((name, (folder / name).stat().st_mtime_ns if (folder / name).exists() else None)
                 for name in WATCHED_FILES)


def corpus_entries(name: str, split: str, config_path: Optional[str] = None, overrides: Sequence[str] = (),
                   use_cache: bool = True) -> list[Entry]:
    """The utterances of data set `name` (an entry of the config's `datasets`) in `split`, in the corpus's order.

    Raises the data set's own one-line errors (FileNotFoundError with how to prepare it, ConfigError, ValueError)."""
    # torch is imported here, not at module level: the data set plugins need it, the dashboard's idle page does not

    cfg = load_config(config_path, [*overrides, f"dataset={name}"], check_data=False)
    section = {**dataset_section(cfg), "augment": None}  # browsing reads files; it never augments them
    folder = resolve_path(section["path"]) if section.get("path") else None
    key = (name, split, repr(sorted(section.items(), key=lambda kv: kv[0])))
    signature = _signature(folder)
    with _cache_lock:
        hit = _cache.get(key)
    if use_cache and hit and hit[0] == signature:
        return hit[1]
    dataset = load_dataset(name, section, split)
    speakers = read_speakers(folder) if folder is not None else {}
    entries = [Entry(id=str(u.id), text=str(u.text), duration=float(u.duration), speaker=speakers.get(str(u.id), ""),
                     audio=str(u.audio) if isinstance(u.audio, (str, os.PathLike)) else None)
               for u in dataset.items]
    with _cache_lock:
        _cache[key] = (signature, entries)
    return entries


def filter_entries(entries: Iterable[Entry], text: str = "", speaker: str = "") -> list[Entry]:
    """The entries whose text (or id) holds every word of `text` and whose speaker is `speaker` (or, when no
    speaker is called exactly that, holds it: `festival` matches every Festival voice). Case is ignored."""
    entries = list(entries)
    words = text.lower().split()
    wanted = speaker.strip().lower()
    exact = bool(wanted) and any(e.speaker.lower() == wanted for e in entries)

    def speaker_ok(e: Entry) -> bool:
        if not wanted:
            return True
        return e.speaker.lower() == wanted if exact else wanted in e.speaker.lower()

    return [e for e in entries if speaker_ok(e) and all(w in e.text.lower() or w in e.id.lower() for w in words)]


def speakers_of(entries: Iterable[Entry]) -> list[tuple[str, int]]:
    """(speaker, utterances) pairs, most utterances first; entries without a speaker are left out."""
    counts: dict[str, int] = {}
    for e in entries:
        if e.speaker:
            counts[e.speaker] = counts.get(e.speaker, 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def corpus_totals(entries: Sequence[Entry]) -> dict:
    """How many utterances, their total seconds and hours, mean seconds, distinct speakers and words."""
    seconds = float(sum(e.duration for e in entries))
    return {"utterances": len(entries), "seconds": seconds, "hours": seconds / 3600,
            "mean_seconds": seconds / len(entries) if entries else 0.0,
            "speakers": len({e.speaker for e in entries if e.speaker}),
            "words": sum(len(e.text.split()) for e in entries)}


def duration_histogram(entries: Sequence[Entry], bins: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """(bin edges in seconds, counts) of the entries' durations; empty arrays for no entries."""
    if not entries:
        return np.zeros(0), np.zeros(0, dtype=int)
    counts, edges = np.histogram([e.duration for e in entries], bins=bins)
    return edges, counts
