"""The audio a benchmark measures: the first N utterances of a data set's split, read once into memory.

Every system (models and the baseline) gets exactly these waveforms, so reading files never counts as compute
and every figure is comparable. Waveforms are kept at the data set's rate and resampled once per other rate.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
import torchaudio

from ..config import dataset_section
from ..plugins import load_dataset


@dataclass
class BenchCorpus:
    """Ids, reference texts and mono float32 waveforms at `sample_rate`."""

    dataset: str
    split: str
    sample_rate: int
    ids: list[str]
    texts: list[str]
    waveforms: list[np.ndarray]
    path: str = ""
    _resampled: dict[int, list[np.ndarray]] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def audio_seconds(self) -> float:
        return sum(len(w) for w in self.waveforms) / self.sample_rate

    def at_rate(self, rate: int) -> list[np.ndarray]:
        """The waveforms at `rate` (resampled once, then cached)."""
        if rate == self.sample_rate:
            return self.waveforms
        if rate not in self._resampled:
            self._resampled[rate] = [
                torchaudio.functional.resample(torch.from_numpy(w), self.sample_rate, rate).numpy()
                for w in self.waveforms]
        return self._resampled[rate]

    def describe(self) -> dict:
        return {"dataset": self.dataset, "split": self.split, "path": self.path, "utterances": len(self),
                "audio_seconds": round(self.audio_seconds, 3), "sample_rate": self.sample_rate}


def load_corpus(cfg: dict, split: str = "test", limit: Optional[int] = None, progress: bool = False) -> BenchCorpus:
    """Read the first `limit` utterances of `split` of the config's data set (validated config from `load_config`)."""
    section = dataset_section(cfg)
    dataset = load_dataset(cfg["dataset"], section, split)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    if count == 0:
        raise ValueError(f"the {split} split of {cfg['dataset']!r} ({section.get('path')}) has no utterances")
    indices = range(count)
    if progress:
        from tqdm.auto import tqdm

        indices = tqdm(indices, desc="reading audio", unit="file", leave=False)
    ids, texts, waveforms = [], [], []
    for i in indices:
        item = dataset[i]
        ids.append(str(item.get("id", i)))
        texts.append(item["text"])
        waveforms.append(item["waveform"].numpy().astype(np.float32, copy=False))
    return BenchCorpus(dataset=cfg["dataset"], split=split, sample_rate=int(dataset.sample_rate), ids=ids,
                       texts=texts, waveforms=waveforms, path=str(section.get("path", "")))
