"""Where a training run is: the one small object the loop changes, and what of it a checkpoint keeps.

A checkpoint is a plain dict: `model.checkpoint_state()` (weights, config, vocabulary, features) plus
`optimizer`, `scheduler`, `scaler` (state dicts), `rng` (random generators, as tensors and lists) and the saved
fields of `TrainState` (`step`, `epoch`, `batch_in_epoch`, `best_cer`, `best_wer`), `run_id`.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from .checkpoint import rng_from_plain, rng_to_plain

SAVED_FIELDS = ("step", "epoch", "batch_in_epoch", "best_cer", "best_wer")


@dataclass
class TrainState:
    """The position of a run. The first five fields are saved in every checkpoint; the rest live in this process."""

    step: int = 0                     # optimizer steps done
    epoch: int = 0                    # epochs completed
    batch_in_epoch: int = 0           # batches done of the next epoch (skipped on resume)
    best_cer: Optional[float] = None  # best dev CER so far (best.pt holds those weights)
    best_wer: Optional[float] = None
    bad_steps: int = 0                # non-finite losses or gradients in a row
    evaluated_at: int = -1            # the step of the last dev evaluation and save (-1: none yet)
    in_epoch: bool = False            # set-up done and the epoch `epoch + 1` under way (not yet evaluated)
    started: float = field(default_factory=time.monotonic)   # this call's start (training.max_minutes)
    tick: float = field(default_factory=time.perf_counter)   # the last step's end (throughput)
    saved: float = field(default_factory=time.perf_counter)  # the last timed save (training.checkpoint_minutes)

    def restore(self, checkpoint: dict) -> None:
        """Take the saved fields from `checkpoint`."""
        self.step, self.epoch, self.batch_in_epoch = checkpoint["step"], checkpoint["epoch"], checkpoint["batch_in_epoch"]
        self.best_cer, self.best_wer = checkpoint.get("best_cer"), checkpoint.get("best_wer")

    def saved_fields(self) -> dict:
        return {k: getattr(self, k) for k in SAVED_FIELDS}

    def progress(self) -> dict:
        """What status.json shows: the step, and the epoch being trained (or the one just ended), from 1."""
        return {"step": self.step, "epoch": self.epoch + 1 if self.in_epoch else self.epoch}


def rng_state() -> dict:
    """Random generators' states (SpecAugment masks, dropout), so that a resumed run draws what it would have.

    Tensors and lists only, so that the checkpoint loads with `weights_only=True`."""
    return {"torch": torch.get_rng_state(), **rng_to_plain(np.random.get_state(), random.getstate()),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(state: dict) -> None:
    """Restore what `rng_state` returned."""
    torch.set_rng_state(state["torch"].cpu())
    numpy_state, python_state = rng_from_plain(state["numpy"], state["python"])
    np.random.set_state(numpy_state)
    random.setstate(python_state)
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
