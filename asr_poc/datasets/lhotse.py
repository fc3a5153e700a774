"""Any lhotse recipe's output: CutSet manifests, recordings + supervisions manifests, or Shar folders.

    <path>/<prefix>_cuts_<part>.jsonl.gz                       a CutSet (`lhotse cut simple ...`)
    <path>/<prefix>_recordings_<part>.jsonl.gz  + _supervisions_<part>.jsonl.gz    what `lhotse prepare X` writes
    <path>/<part>/cuts.000000.jsonl.gz + recording.000000.tar ...                   a Shar folder (`to_shar`)

`split_names` lists the parts (or file/folder names inside `path`) of each split, e.g. LibriSpeech's
`{train: [train-clean-100, train-clean-360], dev: [dev-clean], test: [test-clean]}`. A split with no parts is
carved out of the train parts by a stable hash of each cut's id (as the LJSpeech and Hugging Face loaders do).
Recordings with several utterances are cut into one utterance per supervision.

This class is also the base of the recipe data sets (`librispeech`, `commonvoice`): they change only where a
part's cuts come from (`part_cuts`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from pydantic import Field, field_validator

from ..paths import resolve_path
from ..text import normalize_text
from ._cuts import read_audio, to_utterances, utterance_cuts
from ._shar import is_shar, shar_cuts
from .interface import SPLITS, BaseASRDataset, DatasetConfig, Utterance
from .ljspeech import hash_split


class LhotseConfig(DatasetConfig):
    """`datasets.lhotse`: the common keys plus the parts of each split."""

    split_names: dict[str, list[str]] = Field(
        default_factory=lambda: {"train": ["train"], "dev": ["dev"], "test": ["test"]})

    @field_validator("split_names", mode="before")
    @classmethod
    def _parts(cls, value: Any) -> Any:
        """One part may be given as a plain string; only train, dev and test are splits."""
        if isinstance(value, dict):
            unknown = set(value) - set(SPLITS)
            if unknown:
                raise ValueError(f"unknown split(s) {', '.join(sorted(unknown))}: the splits are {', '.join(SPLITS)}")
            return {k: [v] if isinstance(v, str) else (v or []) for k, v in value.items()}
        return value


class LhotseDataset(BaseASRDataset):
    """A split of a lhotse corpus; see the module docstring."""

    name = "lhotse"
    Config = LhotseConfig
    prepare_hint = "write manifests there with `lhotse prepare <recipe> <corpus> <path>` or CutSet.to_file/to_shar"

    def _load_data(self) -> list[Utterance]:
        cfg = self.Config.model_validate(self.config)
        root = resolve_path(cfg.path)
        if not root.is_dir():
            raise FileNotFoundError(f"{self.name} corpus folder not found: {root} ({self.prepare_hint})")
        present = {s for s in SPLITS if cfg.split_names.get(s)}
        if "train" not in present and self.split not in present:
            raise ValueError(f"{self.name}: datasets.{self.name}.split_names names no parts for {self.split} "
                             f"and none for train to carve it from")
        own = self.split in present and self.split != "train"
        items = []
        for part in cfg.split_names[self.split if own else "train"]:
            items += self.part_utterances(cfg, root, part)
        if own:
            return items
        # the train parts hold this split: keep the ids whose hash falls here (or in a split with parts of its own)
        return [u for u in items if (h if (h := hash_split(u.id)) not in present else "train") == self.split]

    def part_utterances(self, cfg: Any, root: Path, part: str) -> list[Utterance]:
        """The utterances of one part; Shar folders keep where each cut's bytes are in its tar."""
        folder = root / part
        if is_shar(folder):
            cuts, members = [], {}
            for cut, member in shar_cuts(folder):
                cuts.append(cut)
                members[cut.id] = member
            return to_utterances(cuts, self.max_seconds, f"{self.name} {part}", audio_of=lambda cut: members[cut.id])
        return to_utterances(self.part_cuts(cfg, root, part), self.max_seconds, f"{self.name} {part}")

    def part_cuts(self, cfg: Any, root: Path, part: str) -> Any:
        """The CutSet of one part: a manifest file named `part`, else `*cuts_<part>.jsonl*`, else a recordings +
        supervisions pair `*recordings_<part>.jsonl*` / `*supervisions_<part>.jsonl*`."""
        from lhotse import CutSet, load_manifest

        named = root / part
        if named.is_file():
            return CutSet.from_file(named)
        cuts = sorted(root.glob(f"*cuts_{part}.jsonl*"))
        if cuts:
            return CutSet.from_file(cuts[0])
        recordings = sorted(root.glob(f"*recordings_{part}.jsonl*"))
        supervisions = sorted(root.glob(f"*supervisions_{part}.jsonl*"))
        if recordings and supervisions:
            return utterance_cuts(load_manifest(recordings[0]), load_manifest(supervisions[0]))
        found = ", ".join(sorted(p.name for p in root.iterdir() if ".jsonl" in p.name or is_shar(p))) or "none"
        raise FileNotFoundError(f"{self.name} {root}: no manifest for part {part!r} (a file or Shar folder of that "
                                f"name, *cuts_{part}.jsonl.gz, or *recordings_/*supervisions_{part}.jsonl.gz); "
                                f"manifests here: {found}")

    def __getitem__(self, index: int) -> dict:
        item = self.items[index]
        if isinstance(item.audio, str):
            return super().__getitem__(index)
        waveform = torch.from_numpy(read_audio(item.audio, self.sample_rate, self.max_seconds))
        if self.augmenter is not None:
            waveform = self.augmenter(waveform)
        return {"id": item.id, "waveform": waveform, "text": normalize_text(item.text, self.text_config)}

    def _random_other_waveform(self) -> torch.Tensor:
        item = self.items[int(torch.randint(0, len(self.items), ()))]
        return torch.from_numpy(read_audio(item.audio, self.sample_rate, self.max_seconds))


DATASET = LhotseDataset
