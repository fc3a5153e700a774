"""Set-up for the training loop: data, the checkpoint to resume from, and what trains the model (optimizer,
learning-rate schedule, batches, mixed precision, DDP), gathered in one `Setup` that stays fixed while it trains.

The order of the calls in `trainer.train` matters for an exact resume: the model's initial weights are drawn
after `seed_everything`, and the random generators are restored from the checkpoint last, in `assemble`.
"""
from __future__ import annotations

import contextlib
import math
import threading
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, ContextManager, Optional

import torch
from torch.utils.data import DataLoader, Sampler

from ..augment_batch import BatchAugmenter, batch_augmenter
from ..config import dataset_section
from ..datasets.bucketing import make_batch_sampler
from ..datasets.interface import BaseASRDataset, collate_fn
from ..models.interface import BaseASRModel
from ..plugins import get_dataset_class
from ..runs import Run
from .checkpoint import load_resume_checkpoint, remove_stale_temporaries
from .distributed import Ranks
from .extra_eval import load_extra_sets
from .recorder import Recorder
from .state import TrainState, set_rng_state


class TrainingError(RuntimeError):
    """Training cannot go on; the message says what to change."""


@dataclass
class Setup:
    """What the loop works with; built once by `assemble`, never changed while the run trains."""

    run: Run
    training: dict                  # the validated `training` section
    ranks: Ranks
    device: torch.device
    record: Recorder
    stop_event: Optional[threading.Event]
    train_set: BaseASRDataset
    dev_set: Optional[BaseASRDataset]
    extra_sets: dict                # training.extra_eval: {name: test split}, rank 0 only
    raw_model: BaseASRModel
    model: torch.nn.Module          # raw_model, inside DistributedDataParallel when there are several ranks
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    autocast: Callable[[], ContextManager]
    sampler: Sampler
    batch_augmenter: Optional[BatchAugmenter] = None  # training.augment_in: batches; None when the workers augment

    def loader(self, state: TrainState) -> DataLoader:
        """The batches of epoch `state.epoch` not yet done (all of them unless resuming inside it)."""
        if self.train_set.start_epoch(state.epoch):  # new items this epoch (a window of a stream): new batches
            tc = self.training
            self.sampler = make_batch_sampler(self.train_set.durations(), tc["batch_size"], tc.get("batch_seconds"),
                                              seed=tc["seed"], rank=self.ranks.rank, world_size=self.ranks.world_size)
            self.record.log(f"epoch {state.epoch + 1}: {len(self.train_set)} utterances, window "
                            f"{getattr(self.train_set, 'window', '?')} of the stream; {len(self.sampler)} batches")
        self.sampler.set_epoch(state.epoch)
        batches = self.sampler.batches()
        done_this_epoch = sum(len(b) for b in batches[:state.batch_in_epoch])
        seen = state.epoch * sum(len(b) for b in batches) + done_this_epoch
        self.train_set.start_augmenting_at(seen)
        if self.batch_augmenter is not None:
            self.batch_augmenter.start_at(seen)
        return DataLoader(self.train_set, batch_sampler=batches[state.batch_in_epoch:],
                          collate_fn=partial(collate_fn, tokenizer=self.raw_model.tokenizer),
                          num_workers=self.training["num_workers"],
                          pin_memory=self.device.type == "cuda",  # page-locked batches: faster copies to the GPU
                          # its own generator: creating a loader must not draw from the global RNG, which a
                          # resumed run restores exactly (SpecAugment, dropout)
                          generator=torch.Generator().manual_seed(self.training["seed"] + state.epoch))


def load_data(cfg: dict) -> tuple[BaseASRDataset, Optional[BaseASRDataset]]:
    """The train split and (when `training.eval_utterances` > 0) the dev split of the configured data set."""
    dataset_cls = get_dataset_class(cfg["dataset"])
    train_set = dataset_cls(dataset_section(cfg), "train")
    dev_set = dataset_cls(dataset_section(cfg), "dev") if cfg["training"]["eval_utterances"] > 0 else None
    if len(train_set) == 0:
        raise TrainingError(f"the train split of {cfg['dataset']!r} is empty")
    return train_set, dev_set


def resume_checkpoint(run: Run, record: Recorder, device: torch.device) -> tuple[Optional[dict], Optional[Path]]:
    """The newest readable checkpoint of `run` (last.pt, else epoch-N.pt newest first, else best.pt) and its path."""
    checkpoint, path, skipped = load_resume_checkpoint(run.path, map_location=device)
    for line in skipped:
        record.log(f"{line}; trying an older checkpoint", "warning")
    if checkpoint is None:
        record.log("no last.pt to resume from; starting from step 0", "warning")
    return checkpoint, path


def remove_leftovers(run: Run, record: Recorder) -> None:
    """Delete the temporary files of a save that was killed (rank 0 only)."""
    if record.enabled:
        for tmp in remove_stale_temporaries(run.path):
            record.log(f"removed {tmp.name}, left by a killed save")


def assemble(run: Run, cfg: dict, ranks: Ranks, device: torch.device, record: Recorder,
             stop_event: Optional[threading.Event], raw_model: BaseASRModel, train_set: BaseASRDataset,
             dev_set: Optional[BaseASRDataset], checkpoint: Optional[dict], resumed_from: Optional[Path],
             state: TrainState) -> Setup:
    """Optimizer, schedule, batches and mixed precision for `raw_model`; with a checkpoint, their saved states,
    the random generators' and the position (into `state`); DDP around the model when there are several ranks.
    Reports what it built (status.json and a log line), then loads the extra evaluation sets."""
    tc = cfg["training"]
    optimizer_cls = torch.optim.AdamW if tc["optimizer"] == "adamw" else torch.optim.Adam
    # a model may give parameter groups of its own (e.g. a pretrained model's head at another learning rate)
    groups = getattr(raw_model, "parameter_groups", None)
    params = groups(tc["learning_rate"]) if callable(groups) else raw_model.parameters()
    # on CUDA the fused kernel: one launch for all parameters instead of several per tensor
    optimizer = optimizer_cls(params, lr=tc["learning_rate"], weight_decay=tc["weight_decay"],
                              fused=True if device.type == "cuda" else None)
    sampler = make_batch_sampler(train_set.durations(), tc["batch_size"], tc.get("batch_seconds"), seed=tc["seed"],
                                 rank=ranks.rank, world_size=ranks.world_size)
    total_steps = min(tc["max_steps"] or math.inf, tc["epochs"] * len(sampler))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, partial(lr_factor, warmup=tc["warmup_steps"], schedule=tc["lr_schedule"], total=total_steps))
    use_amp = device.type == "cuda" and tc["mixed_precision"]
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp and amp_dtype == torch.float16)
    autocast = partial(torch.autocast, device.type, dtype=amp_dtype) if use_amp else contextlib.nullcontext

    if checkpoint is not None:
        raw_model.load_state_dict(checkpoint["state_dict"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        if checkpoint.get("scaler"):
            scaler.load_state_dict(checkpoint["scaler"])
        state.restore(checkpoint)
        if checkpoint.get("rng"):
            set_rng_state(checkpoint["rng"])
        record.log(f"resumed from {resumed_from.name} at step {state.step} "
                   f"(epoch {state.epoch + 1}, batch {state.batch_in_epoch} of {len(sampler)})")
    raw_model.train()
    model = raw_model
    if ranks.distributed:
        # a model whose training steps leave some parameters out of the loss for a while (rnn-t's CTC warm-up) says
        # so; DDP then finds them each step instead of waiting for gradients that never come
        model = torch.nn.parallel.DistributedDataParallel(
            raw_model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=bool(getattr(raw_model, "leaves_parameters_unused", False)))
    state.in_epoch = True
    augmenter = augment_in_batches(cfg, device, ranks, train_set, record)
    report_start(cfg, ranks, device, record, raw_model, train_set, dev_set, len(sampler), state)
    extra_sets = load_extra_sets(cfg, raw_model.sample_rate, record.event) if ranks.master else {}
    return Setup(run, tc, ranks, device, record, stop_event, train_set, dev_set, extra_sets, raw_model, model,
                 optimizer, scheduler, scaler, autocast, sampler, augmenter)


def augment_in_batches(cfg: dict, device: torch.device, ranks: Ranks, train_set: BaseASRDataset,
                       record: Recorder) -> Optional[BatchAugmenter]:
    """With `training.augment_in` batches (auto: on CUDA), take the effects that have a batched form from the data
    set's workers and return what applies them to each batch on `device`; None when the workers keep them."""
    tc = cfg["training"]
    where = tc["augment_in"]
    if where == "auto":
        where = "batches" if device.type == "cuda" else "workers"
    if where == "workers":
        return None
    config = train_set.take_batch_augmentation()
    augmenter = batch_augmenter(config, train_set.sample_rate, seed=tc["seed"], rank=ranks.rank)
    if augmenter is not None:
        effects = ", ".join(e for e in augmenter.active_effects())
        record.log(f"augmenting batches on {device}: {effects}")
    else:
        record.log("training.augment_in is batches, but no batched effect is on for all of the train split (a mix "
                   "whose parts augment differently keeps augmenting in the workers)")
    return augmenter


def report_start(cfg: dict, ranks: Ranks, device: torch.device, record: Recorder, raw_model: BaseASRModel,
                 train_set: BaseASRDataset, dev_set: Optional[BaseASRDataset], batches_per_epoch: int,
                 state: TrainState) -> None:
    """status.json's size and position fields (with `batches_per_epoch`), and one log line saying what trains on
    what (the figure also as a field of the line)."""
    tc, num_parameters = cfg["training"], raw_model.num_parameters()
    record.status(num_parameters=num_parameters, best_cer=state.best_cer, best_wer=state.best_wer,
                  batches_per_epoch=batches_per_epoch, **state.progress())  # followers' progress reads it here
    batches = f"of {tc['batch_seconds']:g} s" if tc.get("batch_seconds") else f"of {tc['batch_size']}"
    record.event({"type": "log", "level": "info", "batches_per_epoch": batches_per_epoch,
                  "message": f"{cfg['model']}: {num_parameters:,} parameters; {cfg['dataset']}: {len(train_set)} "
                             f"train and {len(dev_set) if dev_set is not None else 0} dev utterances; "
                             f"{batches_per_epoch} batches an epoch {batches} on {device}"
                             + (f" x {ranks.world_size}" if ranks.distributed else "")})


def lr_factor(step: int, warmup: int, schedule: str, total: float) -> float:
    """Learning-rate multiplier at `step`: linear warm-up, then inverse_sqrt, cosine (to `total`) or constant."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "inverse_sqrt":
        return math.sqrt(max(warmup, 1) / max(step, 1))
    if schedule == "cosine" and math.isfinite(total):
        done = min(1.0, (step - warmup) / max(1.0, total - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * done))
    return 1.0
