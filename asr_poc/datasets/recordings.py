"""People's own recordings as a data set: a store the dashboard's Record tab writes, and the `recordings` plugin.

`RecordingStore(root)` keeps clips in the LJSpeech layout, so the LJSpeech loader reads them:

    metadata.csv   id|text|normalized text
    wavs/<id>.wav  16 kHz mono 16-bit
    speakers.csv   id|speaker
    splits.csv     id|split

The split is fixed when a clip is added and kept per speaker: every `TEST_EVERY`-th clip of a speaker goes to
test, the others to train (deleting a clip never moves another one). Every file is replaced atomically, and a
lock file serialises writers (several dashboard kernels may save at once). Bad input raises `RecordingError`
with a one-line reason before anything is written.
"""
from __future__ import annotations

import fcntl
import io
import os
import re
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import soundfile as sf

from ..audio import AudioError, AudioSource, load_audio
from ..paths import resolve_path
from ..text import normalize_text
from ..io import atomic_write_text
from .interface import SPLITS, DatasetConfig
from .ljspeech import LJSpeechDataset, read_pipe_csv

DEFAULT_PATH = "data/recordings"
SAMPLE_RATE = 16000
TEST_EVERY = 5  # every 5th clip of a speaker is held out for test
MIN_SECONDS = 0.5
MAX_SECONDS = 30.0
SILENCE_PEAK = 0.01  # a clip whose loudest sample is below -40 dBFS holds no speech
MAX_TEXT_CHARS = 400
SPEAKER_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,39}$")

_thread_lock = threading.Lock()


class RecordingError(ValueError):
    """A clip, text or speaker name that cannot be saved (or a clip id that does not exist); one line."""


@dataclass(frozen=True)
class Recording:
    """One saved clip."""

    id: str
    speaker: str
    text: str
    split: str
    seconds: float
    path: Path


def check_speaker(name: str) -> str:
    """The speaker name, stripped; raises RecordingError unless it is 1-40 letters, digits, spaces, . _ or -."""
    name = " ".join((name or "").split())
    if not name:
        raise RecordingError("the speaker name is empty: type your name (letters, digits, spaces, . _ -)")
    if not SPEAKER_PATTERN.match(name):
        raise RecordingError(f"speaker name {name!r}: use 1-40 letters, digits, spaces, '.', '_' or '-', "
                             "starting with a letter or digit")
    return name


def check_text(text: str) -> str:
    """The sentence on one line without `|`; raises RecordingError when it has no words to learn from."""
    text = " ".join((text or "").replace("|", " ").split())
    if not normalize_text(text):
        raise RecordingError("the text is empty: type or pick the sentence that was read")
    if re.search(r"\d", text):
        raise RecordingError("the text has digits: write numbers as they are said (twenty-one, not 21)")
    if len(text) > MAX_TEXT_CHARS:
        raise RecordingError(f"the text is {len(text)} characters long; the limit is {MAX_TEXT_CHARS}")
    return text


def check_audio(source: AudioSource, source_rate: Optional[int] = None) -> np.ndarray:
    """16 kHz mono float32 samples; raises RecordingError for empty, too short, too long or silent audio."""
    try:
        samples = load_audio(source, SAMPLE_RATE, source_rate=source_rate, max_seconds=MAX_SECONDS)
    except AudioError as err:
        raise RecordingError(f"the audio cannot be used: {err}") from None
    seconds = len(samples) / SAMPLE_RATE
    if seconds < MIN_SECONDS:
        raise RecordingError(f"the clip is {seconds:.2f} s long; record at least {MIN_SECONDS:g} s")
    peak = float(np.abs(samples).max())
    if peak < SILENCE_PEAK:
        level = 20 * np.log10(max(peak, 1e-9))
        raise RecordingError(f"the clip is silent (loudest sample {level:.0f} dBFS): is the microphone muted?")
    return samples


def speaker_slug(speaker: str) -> str:
    """A speaker name as part of a file name: `Anna Lee` -> `anna-lee`."""
    return re.sub(r"[^a-z0-9]+", "-", speaker.lower()).strip("-") or "speaker"


class RecordingStore:
    """Add, list and delete clips under `root` (default `data/recordings`, resolved like config paths)."""

    def __init__(self, root: str | os.PathLike = DEFAULT_PATH):
        self.root = resolve_path(root)

    @property
    def wavs(self) -> Path:
        return self.root / "wavs"

    # --- reading -------------------------------------------------------------------------------------------------
    def _table(self, name: str) -> dict[str, list[str]]:
        path = self.root / name
        return {row[0].strip(): row for row in read_pipe_csv(path)} if path.is_file() else {}

    def list(self, speaker: Optional[str] = None) -> list[Recording]:
        """Saved clips in the order they were added (only `speaker`'s when given)."""
        metadata, speakers, splits = self._table("metadata.csv"), self._table("speakers.csv"), self._table("splits.csv")
        out = []
        for uid, row in metadata.items():
            who = speakers.get(uid, ["", ""])[1]
            if speaker is not None and who != speaker:
                continue
            wav = self.wavs / f"{uid}.wav"
            try:
                seconds = sf.info(str(wav)).duration
            except Exception:  # removed by hand, or unreadable: the loader skips it too
                continue
            split = splits.get(uid, ["", "train"])[1]
            out.append(Recording(uid, who, row[1] if len(row) > 1 else "", split, seconds, wav))
        return out

    def speakers(self) -> list[str]:
        """Names of everyone with at least one clip, sorted."""
        return sorted({r.speaker for r in self.list()})

    def counts(self, speaker: Optional[str] = None) -> dict[str, int]:
        """Clips per split: {'train': n, 'dev': n, 'test': n}."""
        counts = dict.fromkeys(SPLITS, 0)
        for r in self.list(speaker):
            counts[r.split] = counts.get(r.split, 0) + 1
        return counts

    def get(self, clip_id: str) -> Recording:
        for r in self.list():
            if r.id == clip_id:
                return r
        raise RecordingError(f"no recording {clip_id!r} in {self.root}")

    # --- writing -------------------------------------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time: a thread lock in this process, an flock across processes."""
        self.wavs.mkdir(parents=True, exist_ok=True)
        with _thread_lock, open(self.root / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write_table(self, name: str, rows: list[list[str]]) -> None:
        atomic_write_text(self.root / name, "".join("|".join(row) + "\n" for row in rows))

    def add(self, audio: AudioSource, text: str, speaker: str, source_rate: Optional[int] = None,
            split: Optional[str] = None) -> Recording:
        """Check and save one clip; return it. `split` overrides the per-speaker rule (for prepared sets)."""
        speaker, text = check_speaker(speaker), check_text(text)
        if split is not None and split not in SPLITS:
            raise RecordingError(f"split {split!r}: must be one of {', '.join(SPLITS)}")
        samples = check_audio(audio, source_rate)
        with self._locked():
            metadata, speakers, splits = (self._table(n) for n in ("metadata.csv", "speakers.csv", "splits.csv"))
            slug = speaker_slug(speaker)
            numbers = [int(uid.rsplit("-", 1)[1]) for uid in set(metadata) | set(speakers)
                       if uid.rsplit("-", 1)[0] == slug and uid.rsplit("-", 1)[-1].isdigit()]
            number = max(numbers, default=0) + 1
            uid = f"{slug}-{number:04d}"
            split = split or ("test" if number % TEST_EVERY == 0 else "train")
            self._write_wav(self.wavs / f"{uid}.wav", samples)
            speakers[uid], splits[uid] = [uid, speaker], [uid, split]
            metadata[uid] = [uid, text, normalize_text(text)]
            self._write_table("speakers.csv", list(speakers.values()))
            self._write_table("splits.csv", list(splits.values()))
            self._write_table("metadata.csv", list(metadata.values()))  # last: the clip exists from here on
        return Recording(uid, speaker, text, split, len(samples) / SAMPLE_RATE, self.wavs / f"{uid}.wav")

    def delete(self, clip_id: str) -> None:
        """Remove a clip (its rows, then its file); raises RecordingError if there is none of that id."""
        with self._locked():
            tables = {n: self._table(n) for n in ("metadata.csv", "speakers.csv", "splits.csv")}
            if clip_id not in tables["metadata.csv"]:
                raise RecordingError(f"no recording {clip_id!r} in {self.root}")
            for name in ("metadata.csv", "speakers.csv", "splits.csv"):  # metadata first: the clip is gone
                tables[name].pop(clip_id, None)
                self._write_table(name, list(tables[name].values()))
            (self.wavs / f"{clip_id}.wav").unlink(missing_ok=True)

    @staticmethod
    def _write_wav(path: Path, samples: np.ndarray) -> None:
        buffer = io.BytesIO()
        sf.write(buffer, samples, SAMPLE_RATE, format="WAV", subtype="PCM_16")
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(buffer.getvalue())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class RecordingsConfig(DatasetConfig):
    """`datasets.recordings`: the common keys, and `speakers` (empty: everyone's clips)."""

    path: str = DEFAULT_PATH
    speakers: list[str] = []


class RecordingsDataset(LJSpeechDataset):
    """A split of the clips saved with `RecordingStore` (only those of `speakers`, when the config names some)."""

    name = "recordings"
    Config = RecordingsConfig
    prepare_hint = "record clips in the dashboard's Record tab (they are saved there)"

    def _load_data(self):
        items = super()._load_data()
        wanted = set(self.config.get("speakers") or [])
        if not wanted:
            return items
        speakers_file = resolve_path(self.config["path"]) / "speakers.csv"
        speaker_of = {row[0].strip(): row[1] for row in read_pipe_csv(speakers_file) if len(row) > 1} \
            if speakers_file.is_file() else {}
        return [u for u in items if speaker_of.get(u.id) in wanted]


DATASET = RecordingsDataset
