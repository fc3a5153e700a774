"""`BaseASRDataset` and the shared `collate_fn`."""
from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator, Optional

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch.utils.data import Dataset, Sampler

from ..audio import load_audio
from ..augment import AugmentConfig, Augmenter
from ..augment_batch import split_config
from ..paths import resolve_path
from ..plugins import register_base
from ..text import CharTokenizer, TextConfig, normalize_text

SPLITS = ("train", "dev", "test")


class DatasetConfig(BaseModel):
    """Keys every data set has (`datasets.<name>`); a plugin may subclass to add its own."""

    model_config = ConfigDict(extra="forbid")
    path: str
    sample_rate: int = Field(16000, ge=4000, le=192000)
    n_fft: int = Field(400, ge=16, le=8192)
    hop_length: int = Field(160, ge=1, le=8192)
    n_mels: int = Field(80, ge=8, le=512)
    max_seconds: float = Field(30.0, gt=0)
    augment: Optional[AugmentConfig] = None  # on-the-fly augmentation of the train split (asr_poc.augment)
    text: TextConfig = Field(default_factory=TextConfig)  # what transcripts keep: case, digits, script (asr_poc.text)


@dataclass(frozen=True)
class Utterance:
    """One item of a data set's index: where the audio is, what was said, and how long it lasts."""

    id: str
    audio: Any  # a path, or anything `load_audio` reads
    text: str
    duration: float  # seconds; used to bucket batches


class BaseASRDataset(Dataset, ABC):
    """A split of a speech corpus. Built from `(config, split)`; items are dicts with 'waveform' and 'text'.

    Subclasses implement `_load_data()` -> list[Utterance]. Waveforms come back as float32 tensors at the
    config's `sample_rate`; texts are normalized (`asr_poc.text.normalize_text`).
    """

    name: ClassVar[str] = "base"
    Config: ClassVar[type[BaseModel]] = DatasetConfig
    prepare_hint: ClassVar[str] = ""

    def __init__(self, config: dict, split: str = "train"):
        if split not in SPLITS:
            raise ValueError(f"split {split!r}: must be one of {', '.join(SPLITS)}")
        self.config = dict(config)
        self.split = split
        self.sample_rate = int(config.get("sample_rate", 16000))
        self.max_seconds = config.get("max_seconds")
        self.text_config = TextConfig.model_validate(config.get("text") or {})
        self.items: list[Utterance] = self._load_data()
        augment = AugmentConfig.model_validate(config.get("augment") or {})
        self.augmenter = (Augmenter(augment, self.sample_rate, self._random_other_waveform)
                          if split == "train" and augment.active() else None)

    @classmethod
    def check_source(cls, config: dict) -> Optional[str]:
        """None if the data can be read, else why not (used by config validation)."""
        if not resolve_path(config["path"]).is_dir():
            return "folder does not exist" + (f" ({cls.prepare_hint})" if cls.prepare_hint else "")
        return None

    @abstractmethod
    def _load_data(self) -> list[Utterance]:
        """Return this split's utterances."""

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        item = self.items[index]
        waveform = torch.from_numpy(load_audio(item.audio, self.sample_rate, max_seconds=self.max_seconds))
        if self.augmenter is not None:
            waveform = self.augmenter(waveform)
        return {"id": item.id, "waveform": waveform, "text": normalize_text(item.text, self.text_config)}

    def start_epoch(self, epoch: int) -> bool:
        """Before epoch `epoch`'s batches: a data set that changes its items per epoch (a window of a stream) loads
        them and returns True, so that the trainer draws new batches; the others keep theirs (False)."""
        return False

    def start_augmenting_at(self, utterances_seen: int) -> None:
        """Where the augmentation ramp stands: `utterances_seen` training utterances came before the next loader."""
        if self.augmenter is not None:
            self.augmenter.start_at(utterances_seen)

    def take_batch_augmentation(self) -> Optional[AugmentConfig]:
        """Hand the effects that have a batched form (`asr_poc.augment_batch`) to the trainer: they stop here, the
        rest (pitch, codec) stays; returns them, or None when this split augments nothing."""
        if self.augmenter is None:
            return None
        in_workers, in_batches = split_config(self.augmenter.config)
        self.augmenter = (Augmenter(in_workers, self.sample_rate, self._random_other_waveform)
                          if in_workers.active() else None)
        return in_batches

    def _random_other_waveform(self) -> torch.Tensor:
        """A random utterance of this split (babble for the augmenter), drawn from torch's generator."""
        item = self.items[int(torch.randint(0, len(self.items), ()))]
        return torch.from_numpy(load_audio(item.audio, self.sample_rate, max_seconds=self.max_seconds))

    def durations(self) -> list[float]:
        return [u.duration for u in self.items]

    def texts(self) -> list[str]:
        return [normalize_text(u.text, self.text_config) for u in self.items]


register_base("datasets", BaseASRDataset)  # the registry finds a plugin module's data-set class by this base


def collate_fn(batch: list[dict], tokenizer: Optional[CharTokenizer] = None) -> dict:
    """Pad waveforms to the longest; with a tokenizer, turn texts into padded token ids with lengths.

    Returns {'waveforms' (B, T), 'waveform_lengths' (B,), 'texts', 'ids'} and, with a tokenizer,
    {'tokens' (B, L), 'token_lengths' (B,)}.
    """
    lengths = torch.tensor([len(b["waveform"]) for b in batch], dtype=torch.long)
    waveforms = torch.zeros(len(batch), int(lengths.max()), dtype=torch.float32)
    for i, b in enumerate(batch):
        waveforms[i, : lengths[i]] = b["waveform"]
    out = {"waveforms": waveforms, "waveform_lengths": lengths, "texts": [b["text"] for b in batch],
           "ids": [b.get("id", str(i)) for i, b in enumerate(batch)]}
    if tokenizer is not None:
        encoded = [tokenizer.encode(b["text"]) for b in batch]
        token_lengths = torch.tensor([len(e) for e in encoded], dtype=torch.long)
        tokens = torch.zeros(len(batch), max(1, int(token_lengths.max())), dtype=torch.long)
        for i, e in enumerate(encoded):
            tokens[i, : len(e)] = torch.tensor(e, dtype=torch.long)
        out.update(tokens=tokens, token_lengths=token_lengths)
    return out


class DurationBucketSampler(Sampler[list[int]]):
    """Batches of similar duration (less padding), shuffled per epoch from `seed + epoch`.

    Utterances are sorted by duration inside random pools of 50 batches, cut into batches, and the batches are
    shuffled. `set_epoch` makes the order reproducible, so a resumed run can skip the batches it has done.
    `rank`/`world_size` give each DDP process its share of the batches.
    """

    def __init__(self, durations: list[float], batch_size: int, seed: int = 0, shuffle: bool = True,
                 rank: int = 0, world_size: int = 1):
        self.durations = durations
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        rng = random.Random(self.seed + self.epoch)
        order = list(range(len(self.durations)))
        if self.shuffle:
            rng.shuffle(order)
        pool = self.batch_size * 50
        batches = []
        for start in range(0, len(order), pool):
            chunk = sorted(order[start : start + pool], key=self.durations.__getitem__)
            batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        if self.shuffle:
            rng.shuffle(batches)
        usable = len(batches) - len(batches) % self.world_size if self.world_size > 1 else len(batches)
        return batches[self.rank : usable : self.world_size]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return len(self.batches())
