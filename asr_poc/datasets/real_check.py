"""Real human speech with transcripts, shipped inside the package: every run is scored on it.

The clips come from packages in the registries (PyPI sdists, Debian packages, npm; see
`asr_poc/data/real_check/SOURCES.md` for each clip's origin and licence); `clips.csv` lists them as
`id|transcript|source|licence|group`, where `group` names the source (one reader or one collection), so that
figures can be given per source. The audio is `wavs/<id>.wav` or `wavs/<id>.flac` beside it. They are kept in the
package, so the set builds with no network. `prepare(out)` writes the LJSpeech layout:

    metadata.csv   id|text|normalized text
    splits.csv     id|test              (every utterance is in the test split: this set is never trained on)
    sources.csv    id|group|source|licence   (the Data tab shows the group as the speaker)
    SOURCES.md     provenance and licences
    wavs/<id>.wav  16 kHz mono 16-bit

`RealCheckDataset` reads the result (`asr-poc eval --dataset real-check`, `training.extra_eval`);
`datasets.real-check.groups: [asterisk]` keeps only the clips of those groups.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Optional

import numpy as np
import soundfile as sf

from ..io import atomic_write_text
from ..paths import resolve_path
from ..text import normalize_text
from .interface import DatasetConfig
from .ljspeech import LJSpeechDataset, read_pipe_csv

CLIPS_DIR = Path(__file__).resolve().parent.parent / "data" / "real_check"
SAMPLE_RATE = 16000
COLUMNS = ("id", "text", "source", "licence", "group")
AUDIO_SUFFIXES = (".wav", ".flac")


def shipped_clips(clips_dir: Path = CLIPS_DIR) -> list[dict[str, str]]:
    """The rows of `clips.csv`: id, text, source, licence, group."""
    rows = []
    for line, row in enumerate(read_pipe_csv(clips_dir / "clips.csv"), start=1):
        if len(row) != len(COLUMNS) or not all(c.strip() for c in row):
            raise ValueError(f"{clips_dir / 'clips.csv'}, line {line}: expected {'|'.join(COLUMNS)}, none empty")
        rows.append(dict(zip(COLUMNS, (c.strip() for c in row))))
    return rows


def clip_audio(clip_id: str, clips_dir: Path = CLIPS_DIR) -> Optional[Path]:
    """The shipped audio file of `clip_id` (`wavs/<id>.wav` or `.flac`), or None."""
    for suffix in AUDIO_SUFFIXES:
        path = clips_dir / "wavs" / f"{clip_id}{suffix}"
        if path.is_file():
            return path
    return None


def _to_16k_mono(src: Path, dst: Path) -> float:
    """Write `src` to `dst` as 16 kHz mono PCM-16 (resampled with torchaudio if needed); return its seconds."""
    audio, rate = sf.read(str(src), dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    if rate != SAMPLE_RATE:
        import torch
        import torchaudio.functional as AF

        audio = AF.resample(torch.from_numpy(audio), rate, SAMPLE_RATE).numpy()
    tmp = dst.with_name(f".{dst.name}.tmp")
    sf.write(str(tmp), np.clip(audio, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16", format="WAV")
    os.replace(tmp, dst)
    return len(audio) / SAMPLE_RATE


def prepare(out: str | os.PathLike, clips_dir: Path = CLIPS_DIR) -> Path:
    """Write the real-speech check set to `out` (LJSpeech layout, all in `test`) and return its path.

    `metadata.csv` is written last, so an interrupted run never looks like a complete set."""
    out = Path(out)
    clips = shipped_clips(clips_dir)
    ids = [c["id"] for c in clips]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{clips_dir / 'clips.csv'}: duplicate ids: {sorted({i for i in ids if ids.count(i) > 1})}")
    missing = [c["id"] for c in clips if clip_audio(c["id"], clips_dir) is None]
    if missing:
        raise FileNotFoundError(f"real-check clips missing from {clips_dir / 'wavs'}: {', '.join(missing)}")
    (out / "wavs").mkdir(parents=True, exist_ok=True)
    (out / "metadata.csv").unlink(missing_ok=True)
    for clip in clips:
        _to_16k_mono(clip_audio(clip["id"], clips_dir), out / "wavs" / f"{clip['id']}.wav")
    shutil.copyfile(clips_dir / "SOURCES.md", out / "SOURCES.md")
    lines = lambda rows: "".join("|".join(r) + "\n" for r in rows)  # noqa: E731
    atomic_write_text(out / "sources.csv", lines((c["id"], c["group"], c["source"], c["licence"]) for c in clips))
    atomic_write_text(out / "splits.csv", lines((c["id"], "test") for c in clips))
    atomic_write_text(out / "metadata.csv", lines((c["id"], c["text"], normalize_text(c["text"])) for c in clips))
    return out


def read_groups(folder: str | os.PathLike) -> dict[str, str]:
    """{id: group} from a prepared set's `sources.csv` ({} if it has none)."""
    path = Path(folder) / "sources.csv"
    if not path.is_file():
        return {}
    return {row[0].strip(): row[1].strip() for row in read_pipe_csv(path) if len(row) == 4}


class RealCheckConfig(DatasetConfig):
    """`datasets.real-check`: the common keys, and `groups` (empty: every source's clips)."""

    path: str = "data/real-check"
    groups: list[str] = []


class RealCheckDataset(LJSpeechDataset):
    """The real-speech check set written by `prepare` (LJSpeech layout; every utterance in `test`), only the
    clips of `groups` when the config names some."""

    name = "real-check"
    Config = RealCheckConfig
    prepare_hint = "create it with: asr-poc prepare real-check --out <path>"

    def _load_data(self):
        items = super()._load_data()
        wanted = list(self.config.get("groups") or [])
        if not wanted:
            return items
        group_of = read_groups(resolve_path(self.config["path"]))
        unknown = sorted(set(wanted) - set(group_of.values()))
        if unknown:
            known = ", ".join(sorted(set(group_of.values()))) or "none: rebuild it with asr-poc prepare real-check"
            raise ValueError(f"real-check has no group {', '.join(unknown)} (groups: {known})")
        return [u for u in items if group_of.get(u.id) in wanted]


DATASET = RealCheckDataset
