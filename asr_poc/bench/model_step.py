"""The training step alone: what the trainer's throughput is measured against.

The trainer waits for data (reading, resampling, augmentation, collation) between steps; the model step alone does
not. Here the first batches of a benchmark run's own batch order are read once, without augmentation, and put on
the device; then forward, backward, gradient clipping and an AdamW step run on them back to back, under the same
mixed precision as the trainer (bf16 autocast on CUDA). The trainer's throughput over this one is its share: how
much of the model's speed the data pipeline lets it reach (issue 22's target: >= 80% on one GPU).
"""
from __future__ import annotations

import contextlib
import time
from functools import partial

import torch

from ..config import dataset_section, validate_config
from ..datasets.bucketing import make_batch_sampler
from ..datasets.interface import collate_fn
from ..models.interface import BaseASRModel
from ..plugins import get_dataset_class
from ..runs import Run


def model_step_throughput(run_dir: str, steps: int = 10, warmup: int = 2) -> dict:
    """Audio seconds per second of `steps` training steps of run `run_dir`'s model (its last.pt) on batches held on
    the device (after `warmup` steps that are not counted)."""
    run = Run(run_dir)
    cfg = validate_config(run.config, check_data=False)
    tc = cfg["training"]
    device = _device(tc["device"])
    model = BaseASRModel.from_checkpoint(run.last_checkpoint).to(device)
    model.train()
    data = get_dataset_class(cfg["dataset"])({**dataset_section(cfg), "augment": None}, "train")
    sampler = make_batch_sampler(data.durations(), tc["batch_size"], tc.get("batch_seconds"), seed=tc["seed"])
    sampler.set_epoch(0)
    order = sampler.batches()
    collate = partial(collate_fn, tokenizer=model.tokenizer)
    batches = [_on(collate([data[i] for i in order[k % len(order)]]), device) for k in range(warmup + steps)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    amp = device.type == "cuda" and tc["mixed_precision"]
    autocast = partial(torch.autocast, "cuda", dtype=torch.bfloat16) if amp else contextlib.nullcontext

    def step(batch: dict) -> None:
        with autocast():
            loss = model({**batch, "step": 10**9})  # a transducer's figure is of its transducer step, not a warm-up
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc["grad_clip"])
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for batch in batches[:warmup]:
        step(batch)
    _sync(device)
    started = time.perf_counter()
    for batch in batches[warmup:]:
        step(batch)
    _sync(device)
    wall = time.perf_counter() - started
    audio = sum(float(b["waveform_lengths"].sum()) for b in batches[warmup:]) / model.sample_rate
    return {"audio_seconds_per_second": audio / wall, "steps": steps, "step_ms_mean": 1000 * wall / steps,
            "mixed_precision": amp, "path": "forward, backward, clip and AdamW on batches already on the device"}


def _device(wanted: str) -> torch.device:
    if wanted == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(wanted)


def _on(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
