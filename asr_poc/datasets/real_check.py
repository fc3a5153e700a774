"""Real human speech with transcripts, shipped inside the package: every run is scored on it.

The clips come from the source distributions of packages on PyPI (see `asr_poc/data/real_check/SOURCES.md` for
each clip's origin and licence); `clips.csv` lists them as `id|transcript|source|licence`. They are kept in the
package, so the set builds with no network. `prepare(out)` writes the LJSpeech layout:

    metadata.csv   id|text|normalized text
    splits.csv     id|test              (every utterance is in the test split: this set is never trained on)
    sources.csv    id|source|licence
    SOURCES.md     provenance and licences
    wavs/<id>.wav  16 kHz mono 16-bit

`RealCheckDataset` reads the result (`asr-poc eval --dataset real-check`, `training.extra_eval`).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf

from ..text import normalize_text
from ..io import atomic_write_text
from .ljspeech import LJSpeechDataset, read_pipe_csv

CLIPS_DIR = Path(__file__).resolve().parent.parent / "data" / "real_check"
SAMPLE_RATE = 16000


def shipped_clips(clips_dir: Path = CLIPS_DIR) -> list[dict[str, str]]:
    """The rows of `clips.csv`: id, text, source, licence (each clip's wav is `wavs/<id>.wav` beside it)."""
    rows = []
    for line, row in enumerate(read_pipe_csv(clips_dir / "clips.csv"), start=1):
        if len(row) != 4:
            raise ValueError(f"{clips_dir / 'clips.csv'}, line {line}: expected id|text|source|licence")
        rows.append(dict(zip(("id", "text", "source", "licence"), (c.strip() for c in row))))
    return rows


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
    missing = [c["id"] for c in clips if not (clips_dir / "wavs" / f"{c['id']}.wav").is_file()]
    if missing:
        raise FileNotFoundError(f"real-check clips missing from {clips_dir / 'wavs'}: {', '.join(missing)}")
    (out / "wavs").mkdir(parents=True, exist_ok=True)
    (out / "metadata.csv").unlink(missing_ok=True)
    for clip in clips:
        _to_16k_mono(clips_dir / "wavs" / f"{clip['id']}.wav", out / "wavs" / f"{clip['id']}.wav")
    shutil.copyfile(clips_dir / "SOURCES.md", out / "SOURCES.md")
    lines = lambda rows: "".join("|".join(r) + "\n" for r in rows)  # noqa: E731
    atomic_write_text(out / "sources.csv", lines((c["id"], c["source"], c["licence"]) for c in clips))
    atomic_write_text(out / "splits.csv", lines((c["id"], "test") for c in clips))
    atomic_write_text(out / "metadata.csv", lines((c["id"], c["text"], normalize_text(c["text"])) for c in clips))
    return out


class RealCheckDataset(LJSpeechDataset):
    """The real-speech check set written by `prepare` (LJSpeech layout; every utterance in `test`)."""

    name = "real-check"
    prepare_hint = "create it with: asr-poc prepare real-check --out <path>"


DATASET = RealCheckDataset
