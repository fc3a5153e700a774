"""Several data sets as one: the `mix` plugin.

    datasets:
      mix:
        parts:
          - {name: synthetic, path: data/synthetic}
          - {name: recordings, path: data/recordings, repeat: 8, speakers: [Anna]}
        eval_part: recordings   # dev and test come from this part ...
        eval_split: test        # ... and this split of it (null: the same split as asked)

The train split is the parts' train splits one after another, each `repeat` times (oversampling a small part).
Every key of a part other than `name` and `repeat` goes to that part's own config, over the mix's feature keys
(sample_rate, n_fft, hop_length, n_mels, max_seconds), and is validated by the part's plugin. Without
`eval_part`, dev and test are the parts' dev and test splits together.
"""
from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..augment import AugmentConfig
from ..plugins import get_dataset_class
from .interface import SPLITS, BaseASRDataset, DatasetConfig, Utterance

FEATURE_KEYS = ("sample_rate", "n_fft", "hop_length", "n_mels", "max_seconds")


class MixPart(BaseModel):
    """One part: a data set name, its repeat factor in the train split, and its own keys (path ...)."""

    model_config = ConfigDict(extra="allow")
    name: str
    repeat: int = Field(1, ge=1, le=1000)


class MixConfig(DatasetConfig):
    path: str = ""  # unused: each part has its own
    parts: list[MixPart] = Field(min_length=1)
    eval_part: Optional[str] = None
    eval_split: Optional[str] = None

    @model_validator(mode="after")
    def _eval_part_is_a_part(self) -> "MixConfig":
        names = [p.name for p in self.parts]
        if self.eval_part is not None and self.eval_part not in names:
            raise ValueError(f"eval_part {self.eval_part!r} is not one of the parts ({', '.join(names)})")
        if self.eval_split is not None and self.eval_split not in SPLITS:
            raise ValueError(f"eval_split {self.eval_split!r}: must be one of {', '.join(SPLITS)}")
        return self


def part_config(mix: dict, part: dict) -> dict:
    """The config a part is built with: the mix's feature keys, then the part's own keys, validated by its plugin."""
    own = {k: v for k, v in part.items() if k not in ("name", "repeat")}
    merged = {**{k: mix[k] for k in FEATURE_KEYS if k in mix}, **own}
    cls = get_dataset_class(part["name"])
    try:
        return cls.Config.model_validate(merged).model_dump()
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"mix part {part['name']!r}: {where}: {first['msg']}") from None


class MixDataset(BaseASRDataset):
    """The parts' splits concatenated (train: each part repeated); items are the parts' own items."""

    name = "mix"
    Config = MixConfig

    @classmethod
    def check_source(cls, config: dict) -> Optional[str]:
        problems = []
        for part in config["parts"]:
            part = dict(part)
            try:
                problem = get_dataset_class(part["name"]).check_source(part_config(config, part))
            except Exception as err:  # unknown plugin, bad keys
                problem = str(err)
            if problem:
                problems.append(f"part {part['name']!r}: {problem}")
        return "; ".join(problems) or None

    def _load_data(self) -> list[Utterance]:
        self.parts: list[BaseASRDataset] = []
        self._index: list[tuple[int, int]] = []  # (part, item of that part) for each item of the mix
        items: list[Utterance] = []
        eval_part, eval_split = self.config.get("eval_part"), self.config.get("eval_split")
        for part in self.config["parts"]:
            part = dict(part)
            if self.split == "train":
                split, repeat = "train", int(part.get("repeat", 1))
            elif eval_part is None or part["name"] == eval_part:
                split, repeat = (eval_split or self.split) if eval_part else self.split, 1
            else:
                continue
            dataset = get_dataset_class(part["name"])(part_config(self.config, part), split)
            number = len(self.parts)
            self.parts.append(dataset)
            for _ in range(repeat):
                self._index += [(number, i) for i in range(len(dataset))]
                items += dataset.items
        return items

    def __getitem__(self, index: int) -> dict[str, Any]:
        part, item = self._index[index]
        return self.parts[part][item]

    def take_batch_augmentation(self) -> Optional[AugmentConfig]:
        """The parts' batched effects when every part augments alike (one config for the whole batch); else
        None, and each part keeps augmenting its own utterances in the workers."""
        configs = [p.augmenter.config if p.augmenter is not None else None for p in self.parts]
        if any(c != configs[0] for c in configs):
            return None
        taken = [part.take_batch_augmentation() for part in self.parts]
        return taken[0]

    def start_augmenting_at(self, utterances_seen: int) -> None:
        for part in self.parts:  # each part starts from the whole mix's count, then counts only its own items
            part.start_augmenting_at(utterances_seen)


DATASET = MixDataset
