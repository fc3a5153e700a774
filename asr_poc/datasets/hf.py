"""Any Hugging Face audio data set: a folder saved with `save_to_disk`, an audiofolder, a folder of parquet files
(split by file name: `train.parquet`, `data/test-00000-of-00001.parquet`), or a hub id.

`config_name` picks a data set's configuration (LibriSpeech `clean`, FLEURS `hi_in`, Common Voice's language),
`revision` a commit or tag of a hub data set, and `split_names` the source's names of our train/dev/test splits
(LibriSpeech: `train.clean.100`, `validation.clean`, `test.clean`). A local folder with a configuration name is
read with `datasets.load_dataset(folder, config_name)`: a clone of a hub repository, whose README lists its configs.
From the hub only the splits in use are fetched.

Audio is read undecoded (`datasets.Audio(decode=False)`: raw bytes or a file path) and decoded by
`asr_poc.audio.load_audio`. A split the source lacks (often dev or test) is carved out of its train split by a
stable hash of each row's id (see `asr_poc.datasets.ljspeech.hash_split`).

`streaming: true` opens each split as a stream (`datasets.load_dataset(..., streaming=True)`: nothing is downloaded
or converted up front) and reads only its first `streaming_utterances` rows into memory (audio bytes or local paths
and texts), so a huge hub data set or local parquet/audiofolder folder is usable without fetching all of it. A
missing split is then carved out of the first `streaming_utterances` rows of train. A `save_to_disk` folder cannot
be streamed (use it without `streaming`, or write it as parquet with `Dataset.to_parquet`).

`streaming_windows: true` walks the train split through the whole stream instead: epoch k trains on rows
k*N .. (k+1)*N - 1 (N = `streaming_utterances`; `IterableDataset.skip` then `take`), one window in memory at a time,
and after the stream's last row it starts again from the first window. A window depends only on its epoch, so a
resumed run reads the window it stopped in. Dev and test stay the first N rows of their splits; the vocabulary of a
new run comes from the first window's texts.
"""
from __future__ import annotations

import io
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Optional

import soundfile as sf
from pydantic import Field, model_validator

from ..audio import load_audio
from ..paths import resolve_path
from .interface import SPLITS, BaseASRDataset, DatasetConfig, Utterance
from .ljspeech import hash_split

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class HFConfig(DatasetConfig):
    """`datasets.hf`: the common keys plus the column names and the source's split names."""

    audio_column: str = "audio"
    text_column: str = "text"
    split_names: dict[str, str] = Field(default_factory=lambda: {"train": "train", "dev": "validation", "test": "test"})
    config_name: Optional[str] = None  # the data set's configuration ("subset"): clean, hi_in, en ...
    revision: Optional[str] = None  # a hub data set's commit, tag or branch (reproducible runs)
    streaming: bool = False  # open splits as streams and read only their first `streaming_utterances` rows
    streaming_utterances: int = Field(1000, ge=1)  # rows of each streamed split read into memory
    streaming_windows: bool = False  # with streaming: each epoch trains on the next streaming_utterances rows

    @model_validator(mode="after")
    def _windows_need_streaming(self) -> "HFConfig":
        if self.streaming_windows and not self.streaming:
            raise ValueError("streaming_windows walks through a stream: set streaming: true as well")
        return self


def looks_like_hub_id(path: str) -> bool:
    """`owner/name` whose first part is not a local folder (so `data/hf` with an existing `data/` is local)."""
    return bool(_HUB_ID.match(path)) and not resolve_path(path.split("/")[0]).exists()


class HubSplits(Mapping):
    """A hub data set's splits by name, each one downloaded when it is first used (LibriSpeech's test split
    without its 100 hours of training audio)."""

    def __init__(self, path: str, config_name: Optional[str] = None, revision: Optional[str] = None,
                 streaming: bool = False):
        import datasets

        self.path, self.config_name, self.revision, self.streaming = path, config_name, revision, streaming
        self.names = list(datasets.get_dataset_split_names(path, config_name, revision=revision))
        self._loaded: dict[str, Any] = {}

    def __getitem__(self, name: str):
        import datasets

        if name not in self.names:
            raise KeyError(name)
        if name not in self._loaded:
            self._loaded[name] = datasets.load_dataset(self.path, self.config_name, revision=self.revision,
                                                       split=name, streaming=self.streaming)
        return self._loaded[name]

    def __contains__(self, name: object) -> bool:  # without downloading (Mapping's would fetch the split)
        return name in self.names

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


def is_saved_folder(local: Path) -> bool:
    """A folder written by `save_to_disk` (a `DatasetDict` or one `Dataset`)."""
    return (local / "dataset_dict.json").is_file() or (local / "state.json").is_file()


def saved_folder_not_streamable(path: str) -> str:
    return (f"hf data set {path}: a folder saved with save_to_disk cannot be streamed (datasets.hf.streaming = "
            f"true); set streaming to false, or write the data set as parquet (Dataset.to_parquet) to stream it")


_AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".webm"}


def _is_parquet_folder(local: Path) -> bool:
    """Parquet files (`train.parquet`, `data/test-00000-of-00001.parquet` ...) and no audio files."""
    if any(p.suffix.lower() in _AUDIO_SUFFIXES for p in local.rglob("*")):
        return False  # an audiofolder (whose metadata may be a parquet file)
    return any(local.rglob("*.parquet"))


def load_source(path: str, config_name: Optional[str] = None, revision: Optional[str] = None,
                streaming: bool = False):
    """The splits by name (a `DatasetDict`, a `Dataset` or `HubSplits`) of a saved folder, an audiofolder, a
    repository folder (with `config_name`) or a hub id; with `streaming`, each split an `IterableDataset`."""
    import datasets

    local = resolve_path(path)
    if local.is_dir():
        if revision:
            raise ValueError(f"hf data set {path}: datasets.hf.revision = {revision!r} applies to hub ids only; "
                             f"check out the revision of a local folder yourself")
        if is_saved_folder(local):
            if streaming:
                raise ValueError(saved_folder_not_streamable(path))
            if config_name:
                raise ValueError(f"hf data set {path}: a folder saved with save_to_disk has no configurations "
                                 f"(datasets.hf.config_name = {config_name!r}); save the configuration you want")
            return datasets.load_from_disk(str(local))
        if config_name:
            return datasets.load_dataset(str(local), config_name, streaming=streaming)
        if _is_parquet_folder(local):  # e.g. a hub repository's clone without configs: splits by file name
            return datasets.load_dataset(str(local), streaming=streaming)
        return datasets.load_dataset("audiofolder", data_dir=str(local), streaming=streaming)
    if local.exists():
        raise NotADirectoryError(f"hf data set path is not a folder: {local}")
    if not looks_like_hub_id(path):
        raise FileNotFoundError(f"hf data set folder not found: {local} ({HFDataset.prepare_hint})")
    return HubSplits(path, config_name, revision, streaming)


def _fetch(path: str) -> bytes:
    """The bytes of a streamed row's audio file that is not on this machine (`hf://...`, `zip://...::https://...`),
    read through `datasets`' streaming file opener."""
    from datasets.utils.file_utils import xopen

    with xopen(path, "rb") as f:
        return f.read()


def _duration(audio: Any) -> float:
    """Seconds of audio given as bytes or a path; soundfile's header read, else a full decode."""
    try:
        return sf.info(io.BytesIO(audio) if isinstance(audio, (bytes, bytearray)) else str(audio)).duration
    except Exception:
        return len(load_audio(audio, 16000)) / 16000


class HFDataset(BaseASRDataset):
    """A split of a Hugging Face audio data set; see the module docstring."""

    name = "hf"
    Config = HFConfig
    prepare_hint = "give a folder saved with Dataset.save_to_disk, an audiofolder, or a hub id like owner/name"

    def __init__(self, config: dict, split: str = "train"):
        self.window = 0  # which streaming_utterances rows of the stream (streaming_windows), before _load_data
        self.windows: Optional[int] = None  # how many windows the stream holds, once its end has been read
        super().__init__(config, split)

    def start_epoch(self, epoch: int) -> bool:
        """With `streaming_windows` (train split): hold the rows of epoch `epoch`'s window; True when they changed."""
        cfg = HFConfig.model_validate(self.config)
        if not (cfg.streaming and cfg.streaming_windows and self.split == "train"):
            return False
        window = epoch % self.windows if self.windows else epoch
        if window == self.window:
            return False
        self.window = window
        self.items = self._load_data()
        if self.rows_read < cfg.streaming_utterances:  # the stream ended in (or before) this window
            self.windows = self._count_windows(cfg) if self.rows_read == 0 else window + 1
            if window >= self.windows:
                self.window = window % self.windows
                self.items = self._load_data()
        return True

    def _count_windows(self, cfg: HFConfig) -> int:
        """Windows in the whole train stream (a resume past its end: read its text column once to count rows)."""
        source = load_source(cfg.path, cfg.config_name, cfg.revision, True)
        table = source[cfg.split_names.get("train", "train")] if isinstance(source, Mapping) else source
        rows = sum(1 for _ in table.select_columns([cfg.text_column]))
        return max(1, -(-rows // cfg.streaming_utterances))

    @classmethod
    def check_source(cls, config: dict) -> Optional[str]:
        path = str(config["path"])
        local = resolve_path(path)
        if local.exists():
            if local.is_dir() and config.get("streaming") and is_saved_folder(local):
                return saved_folder_not_streamable(path).split(": ", 1)[1]
            return None if local.is_dir() else "not a folder"
        if looks_like_hub_id(path):
            return None  # a hub id; only checked when loaded (needs the internet)
        return f"folder does not exist ({cls.prepare_hint})"

    def _load_data(self) -> list[Utterance]:
        import datasets

        cfg = HFConfig.model_validate(self.config)
        source = load_source(cfg.path, cfg.config_name, cfg.revision, cfg.streaming)
        if isinstance(source, datasets.Dataset):
            source = datasets.DatasetDict({cfg.split_names.get("train", "train"): source})
        elif isinstance(source, datasets.IterableDataset):
            source = {cfg.split_names.get("train", "train"): source}
        present = {s for s in SPLITS if cfg.split_names.get(s, s) in source}
        if self.split in present and self.split != "train":
            table, wanted = source[cfg.split_names[self.split]], None
        elif "train" in present:
            table = source[cfg.split_names.get("train", "train")]
            wanted = self.split  # carve the missing splits out of train
        else:
            raise ValueError(f"hf data set {cfg.path}: no split {cfg.split_names.get(self.split, self.split)!r} "
                             f"and no train split to carve it from; splits: {', '.join(source)}")

        column_names = table.column_names
        if column_names is None:  # a stream whose features are unknown until read: its first row's keys
            column_names = list(next(iter(table.take(1)), {}))
        for key, column in (("audio_column", cfg.audio_column), ("text_column", cfg.text_column)):
            if column not in column_names:
                raise ValueError(f"hf data set {cfg.path}: no column {column!r} (datasets.hf.{key}); "
                                 f"columns: {', '.join(column_names)}")
        if table.features is not None and isinstance(table.features[cfg.audio_column], datasets.Audio):
            table = table.cast_column(cfg.audio_column, datasets.Audio(decode=False))
        columns = [cfg.audio_column, cfg.text_column]
        table = table.select_columns(columns + [c for c in ("id", "duration") if c in column_names
                                                and c not in columns])
        streamed = isinstance(table, datasets.IterableDataset)
        if streamed:
            from datasets.utils.file_utils import is_local_path

            if self.window:
                table = table.skip(self.window * cfg.streaming_utterances)  # rows of earlier windows: not kept
            table = table.take(cfg.streaming_utterances)  # the only rows read, once

        items, self.rows_read = [], 0
        for index, row in enumerate(table, start=self.window * cfg.streaming_utterances if streamed else 0):
            self.rows_read += 1
            audio = path = row[cfg.audio_column]
            if isinstance(audio, dict):
                path = audio.get("path")
                audio = audio.get("bytes") or path
                if streamed and isinstance(audio, str) and not is_local_path(audio):
                    audio = _fetch(audio)  # a remote file: kept in memory, not fetched again each epoch
            uid = str(row.get("id") or (Path(path).stem if isinstance(path, str) and path else f"{index:06d}"))
            if wanted is not None:
                carved = hash_split(uid)
                if (carved if carved not in present else "train") != wanted:
                    continue
            duration = float(row["duration"]) if row.get("duration") is not None else _duration(audio)
            if self.max_seconds is not None and duration > self.max_seconds:
                continue
            items.append(Utterance(id=uid, audio=audio, text=str(row[cfg.text_column] or ""), duration=duration))
        return items


DATASET = HFDataset
