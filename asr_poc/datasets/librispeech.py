"""LibriSpeech (https://www.openslr.org/12) in its own folder layout, read by lhotse's `prepare_librispeech`.

    <path>/<part>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt    "<speaker>-<chapter>-<n> TEXT" per line
    <path>/<part>/<speaker>/<chapter>/<speaker>-<chapter>-<n>.flac

`path` is the extracted `LibriSpeech/` folder; `split_names` picks its parts: `train-clean-100`, `train-clean-360`,
`train-other-500`, `dev-clean`, `dev-other`, `test-clean`, `test-other` (Mini LibriSpeech: `train-clean-5`,
`dev-clean-2`). An utterance whose .flac is missing is left out (lhotse logs a warning).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from ._cuts import utterance_cuts
from ._recipe import RecipeConfig, RecipeDataset


class LibriSpeechConfig(RecipeConfig):
    """`datasets.librispeech`: the recipe keys with LibriSpeech's part names."""

    split_names: dict[str, list[str]] = Field(
        default_factory=lambda: {"train": ["train-clean-100"], "dev": ["dev-clean"], "test": ["test-clean"]})


class LibriSpeechDataset(RecipeDataset):
    """A split of LibriSpeech; see the module docstring."""

    name = "librispeech"
    Config = LibriSpeechConfig
    prepare_hint = ("download parts from https://www.openslr.org/12 (e.g. train-clean-100.tar.gz, dev-clean.tar.gz, "
                    "test-clean.tar.gz) and extract them: each adds a part under LibriSpeech/")

    def prepare_part(self, root: Path, part: str, cfg: Any) -> Any:
        from lhotse.recipes import prepare_librispeech

        manifests = prepare_librispeech(root, dataset_parts=[part], num_jobs=cfg.num_jobs).get(part)
        if not manifests or len(manifests["recordings"]) == 0:
            raise ValueError(f"{self.name} {root / part}: no utterances (expected <speaker>/<chapter>/"
                             f"<speaker>-<chapter>.trans.txt with the .flac files beside it)")
        return utterance_cuts(manifests["recordings"], manifests["supervisions"])


DATASET = LibriSpeechDataset
