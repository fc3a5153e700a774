"""Several processes training one run (DDP under `torchrun`): who is who, the process group, agreeing on things.

torchrun starts N copies of a command with RANK, WORLD_SIZE and LOCAL_RANK (and a rendezvous) in the environment.
Rank 0 is the only one that writes the run folder; all ranks step, skip, stop and end together because every
decision goes through `max_over_ranks`. The process group has a CPU backend (gloo) for small messages such as
which run to train (`from_rank_0`), and NCCL for CUDA tensors when there is a GPU.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ..config import ConfigError


@dataclass(frozen=True)
class Ranks:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0  # the rank on this machine: which GPU

    @classmethod
    def from_env(cls) -> "Ranks":
        """As torchrun sets them (RANK, WORLD_SIZE, LOCAL_RANK); without torchrun, rank 0 of 1."""
        env = os.environ
        return cls(int(env.get("RANK", "0")), int(env.get("WORLD_SIZE", "1")), int(env.get("LOCAL_RANK", "0")))

    @property
    def master(self) -> bool:
        """Rank 0: the one that writes events, status and checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def join_group(ranks: Ranks) -> None:
    """Join torchrun's process group (once; a no-op for one process or when already joined)."""
    if ranks.distributed and not dist.is_initialized():
        dist.init_process_group("cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo")


def leave_group(wait_for_all: bool = False) -> None:
    """Leave torchrun's process group. `wait_for_all` (a run that ended normally on every rank) first waits until
    every rank is here, so that no rank tears down its connections while another still has traffic on them (gloo
    then aborts that rank: "terminate called without an active exception")."""
    if dist.is_initialized():
        if wait_for_all:
            dist.barrier()
        dist.destroy_process_group()


def training_device(name: str, ranks: Ranks) -> torch.device:
    """The device `training.device` names; under torchrun with a GPU, this rank's own GPU (LOCAL_RANK)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError([f"training.device = {name!r}: no CUDA GPU is available (use auto or cpu)"])
    if ranks.distributed and name.startswith("cuda"):
        torch.cuda.set_device(ranks.local_rank)
        return torch.device("cuda", ranks.local_rank)
    return torch.device(name)


def max_over_ranks(value: int, device: torch.device, ranks: Ranks) -> int:
    """The largest `value` over all ranks (so that every rank skips, stops or goes on together)."""
    if not ranks.distributed:
        return value
    t = torch.tensor([value], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def from_rank_0(value: Any, ranks: Ranks) -> Any:
    """Rank 0's `value`, on every rank (a small picklable object, sent over the CPU backend)."""
    if not ranks.distributed:
        return value
    box = [value if ranks.master else None]
    dist.broadcast_object_list(box, src=0, device=torch.device("cpu"))
    return box[0]
