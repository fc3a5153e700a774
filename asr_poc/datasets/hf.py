"""Any Hugging Face audio data set: a folder saved with `save_to_disk`, an audiofolder, or a hub id.

Audio is read undecoded (`datasets.Audio(decode=False)`: raw bytes or a file path) and decoded by
`asr_poc.audio.load_audio`. A split the source lacks (often dev or test) is carved out of its train split by a
stable hash of each row's id (see `asr_poc.datasets.ljspeech.hash_split`).
"""
from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any, Optional

import soundfile as sf
from pydantic import Field

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


def looks_like_hub_id(path: str) -> bool:
    """`owner/name` whose first part is not a local folder (so `data/hf` with an existing `data/` is local)."""
    return bool(_HUB_ID.match(path)) and not resolve_path(path.split("/")[0]).exists()


def load_source(path: str):
    """A `DatasetDict` (or `Dataset`) from a saved folder, an audiofolder, or the hub."""
    import datasets

    local = resolve_path(path)
    if local.is_dir():
        if (local / "dataset_dict.json").is_file() or (local / "state.json").is_file():
            return datasets.load_from_disk(str(local))
        return datasets.load_dataset("audiofolder", data_dir=str(local))
    if local.exists():
        raise NotADirectoryError(f"hf data set path is not a folder: {local}")
    if not looks_like_hub_id(path):
        raise FileNotFoundError(f"hf data set folder not found: {local} ({HFDataset.prepare_hint})")
    return datasets.load_dataset(path)


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

    @classmethod
    def check_source(cls, config: dict) -> Optional[str]:
        path = str(config["path"])
        local = resolve_path(path)
        if local.exists():
            return None if local.is_dir() else "not a folder"
        if looks_like_hub_id(path):
            return None  # a hub id; only checked when loaded (needs the internet)
        return f"folder does not exist ({cls.prepare_hint})"

    def _load_data(self) -> list[Utterance]:
        import datasets

        cfg = HFConfig.model_validate(self.config)
        source = load_source(cfg.path)
        if isinstance(source, datasets.Dataset):
            source = datasets.DatasetDict({cfg.split_names.get("train", "train"): source})
        present = {s for s in SPLITS if cfg.split_names.get(s, s) in source}
        if self.split in present and self.split != "train":
            table, wanted = source[cfg.split_names[self.split]], None
        elif "train" in present:
            table = source[cfg.split_names.get("train", "train")]
            wanted = self.split  # carve the missing splits out of train
        else:
            raise ValueError(f"hf data set {cfg.path}: no split {cfg.split_names.get(self.split, self.split)!r} "
                             f"and no train split to carve it from; splits: {', '.join(source)}")

        for key, column in (("audio_column", cfg.audio_column), ("text_column", cfg.text_column)):
            if column not in table.column_names:
                raise ValueError(f"hf data set {cfg.path}: no column {column!r} (datasets.hf.{key}); "
                                 f"columns: {', '.join(table.column_names)}")
        if isinstance(table.features[cfg.audio_column], datasets.Audio):
            table = table.cast_column(cfg.audio_column, datasets.Audio(decode=False))
        columns = [cfg.audio_column, cfg.text_column]
        table = table.select_columns(columns + [c for c in ("id", "duration") if c in table.column_names
                                                and c not in columns])

        items = []
        for index, row in enumerate(table):
            audio = path = row[cfg.audio_column]
            if isinstance(audio, dict):
                path = audio.get("path")
                audio = audio.get("bytes") or path
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
