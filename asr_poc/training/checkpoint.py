"""A training run's checkpoints: which one to resume from, the RNG states they carry, and leftovers of a killed save.

Checkpoints are written with `asr_poc.io.atomic_torch_save` and read with `asr_poc.checkpoint_io` (weights_only: a
file cannot run code). What a training checkpoint holds is `TRAINING_KEYS`; the run folder's names are in
`asr_poc.runs`.
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from ..checkpoint_io import CheckpointRefused, load_checkpoint_file

TRAINING_KEYS = ("state_dict", "config", "optimizer", "scheduler", "step", "epoch", "batch_in_epoch")
STALE_TEMPORARY_SECONDS = 60.0  # a temporary file this old belongs to a writer that died (saves take seconds)


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete temporary files left by a killed writer: a checkpoint's always (only the trainer writes those, under
    the run lock), others once older than a minute (a reader may be writing STOP right now). Returns them."""
    removed = []
    for tmp in Path(folder).glob(".*.tmp"):
        try:
            old = time.time() - tmp.stat().st_mtime > STALE_TEMPORARY_SECONDS
            if re.match(r"^\.(last|best|epoch-\d+)\.pt\.", tmp.name) or old:
                tmp.unlink()
                removed.append(tmp)
        except FileNotFoundError:
            continue
    return removed


def resume_candidates(folder: str | os.PathLike) -> list[Path]:
    """Checkpoints to resume from, newest first: last.pt, epoch-N.pt (highest N first), best.pt."""
    folder = Path(folder)
    epochs = sorted((p for p in folder.glob("epoch-*.pt") if re.fullmatch(r"epoch-\d+\.pt", p.name)),
                    key=lambda p: int(p.stem.split("-")[1]), reverse=True)
    return [p for p in (folder / "last.pt", *epochs, folder / "best.pt") if p.is_file()]


def load_resume_checkpoint(folder: str | os.PathLike, map_location: Any = "cpu"
                           ) -> tuple[Optional[dict], Optional[Path], list[str]]:
    """(state, its path, one line per checkpoint passed over) of the newest readable training checkpoint.

    (None, None, []) when the folder has no checkpoint at all; `CheckpointRefused` when it has some and none of
    them can be read (the message lists why, file by file).
    """
    skipped: list[str] = []
    for path in resume_candidates(folder):
        try:
            state = load_checkpoint_file(path, map_location=map_location)
        except (CheckpointRefused, OSError) as err:
            skipped.append(str(err))
            continue
        missing = [k for k in TRAINING_KEYS if k not in state]
        if missing:
            skipped.append(f"{path}: not a training checkpoint (no {', '.join(missing)})")
            continue
        return state, path, skipped
    if skipped:
        raise CheckpointRefused("no readable checkpoint to resume from: " + "; ".join(skipped))
    return None, None, []


def rng_to_plain(numpy_state: tuple, python_state: tuple) -> dict:
    """numpy's and Python's generator states as tensors and lists (what `weights_only` loads)."""

    name, keys, pos, has_gauss, cached = numpy_state
    version, internal, gauss_next = python_state
    return {"numpy": {"name": str(name), "keys": torch.from_numpy(keys.astype("int64")), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
            "python": [int(version), [int(x) for x in internal], gauss_next]}


def rng_from_plain(numpy_state: Any, python_state: Any) -> tuple[tuple, tuple]:
    """The inverse of `rng_to_plain` (also accepts the raw states of older checkpoints)."""

    if isinstance(numpy_state, dict):
        numpy_state = (numpy_state["name"], np.asarray(numpy_state["keys"].numpy(), dtype=np.uint32),
                       numpy_state["pos"], numpy_state["has_gauss"], numpy_state["cached_gaussian"])
    version, internal, gauss_next = python_state
    return tuple(numpy_state), (int(version), tuple(int(x) for x in internal), gauss_next)
