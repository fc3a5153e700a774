"""What a benchmark measures: a checkpoint file, a run (folder or id: its best.pt, else last.pt), or an untrained
size preset such as `conformer:xs` or `rnn-t:xs,chunk_ms=80` (for speed alone: its transcripts are noise).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch

from ..config import load_config
from ..models.interface import BaseASRModel
from ..plugins import get_model_class
from ..runs import Run
from ..text import CharTokenizer

PRESET_ALPHABET = "abcdefghijklmnopqrstuvwxyz'"  # the vocabulary of an untrained preset


@dataclass
class System:
    """A model to measure, where it came from, and whether its transcripts mean anything."""

    name: str  # short label for tables and plots
    kind: str  # "checkpoint" | "preset"
    source: str  # the path or preset spec given
    model: BaseASRModel
    model_name: str  # plugin name (conformer, rnn-t ...)
    trained: bool
    run_dir: Optional[str] = None

    @property
    def model_section(self) -> dict:
        """The model's own config keys (what `models.<name>` holds), e.g. to train the same architecture."""
        return self.model.spec.arch.model_dump()

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "source": self.source, "model": self.model_name,
                "trained": self.trained, "run_dir": self.run_dir, "parameters": self.model.num_parameters(),
                "config": self.model_section}


def is_preset(spec: str) -> bool:
    """`name:size[,key=value...]` that is not an existing path."""
    return ":" in spec and not Path(spec).exists() and "/" not in spec.split(":", 1)[0]


def load_system(spec: str, config_path: Optional[str] = None, overrides: Sequence[str] = (),
                root: Optional[str | os.PathLike] = None) -> System:
    """Resolve a command-line argument to a `System` on the CPU (the benchmark moves it where it measures).

    A preset is built from the default config merged with `config_path` and `overrides` (as `asr-poc train`
    would build it), then `models.<name>.size` and the preset's own keys.
    """
    if is_preset(spec):
        return _preset(spec, config_path, overrides)
    path = Path(spec)
    if path.is_file():
        return _checkpoint(path)

    run = Run.open(spec, root=root)
    for candidate in (run.best_checkpoint, run.last_checkpoint):
        if candidate.is_file():
            return _checkpoint(candidate)
    raise FileNotFoundError(f"run {run.id} has no best.pt or last.pt yet")


def _checkpoint(path: Path) -> System:
    model = BaseASRModel.from_checkpoint(path, device="cpu")
    run_dir = path.parent if (path.parent / "config.yaml").is_file() else None
    name = f"{run_dir.name}/{path.name}" if run_dir else path.name
    return System(name=name, kind="checkpoint", source=str(path), model=model,
                  model_name=model.name, trained=True,
                  run_dir=str(run_dir) if run_dir else None)


def _preset(spec: str, config_path: Optional[str], overrides: Sequence[str]) -> System:
    """`conformer:xs,subsampling=8` -> an untrained model built exactly as training would build it."""
    from ..models.spec import model_spec

    name, rest = spec.split(":", 1)
    size, *extra = [p.strip() for p in rest.split(",") if p.strip()] or ["xs"]
    key = f"models.{name}"
    preset = [f"model={name}", f"{key}.size={size}", *[f"{key}.{kv}" for kv in extra]]
    cfg = load_config(config_path, [*overrides, *preset], check_data=False)
    tokenizer = CharTokenizer.from_texts([PRESET_ALPHABET])
    torch.manual_seed(0)
    model = get_model_class(name)(model_spec(cfg, tokenizer.vocab)).eval()
    return System(name=spec, kind="preset", source=spec, model=model, model_name=name, trained=False)
