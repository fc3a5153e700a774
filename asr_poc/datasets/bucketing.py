"""Batches by duration: a bucketing batch sampler in the spirit of lhotse's `DynamicBucketingSampler`.

Utterances are put into `num_buckets` buckets of similar duration (boundaries at the duration quantiles, fixed
for the corpus; fewer for a small corpus, at least `MIN_BUCKET_SIZE` utterances a bucket). Each epoch, every bucket is shuffled and cut, in that order, into batches that hold at most
`max_seconds` of *padded* audio (the longest utterance of the batch x its count: what the model computes and
memory holds); inside a bucket that is close to the sum of the durations. An utterance longer than `max_seconds`
is a batch of its own, never dropped. The batches of all buckets are then shuffled together.

Everything is drawn from a generator seeded with (seed, epoch): the same seed and epoch give the same batches on every
rank and after a resume, so a run resumes at a position in the epoch by skipping `batches()[:done]`.
With `world_size` > 1 each rank gets every `world_size`-th batch of the same list, cut to a multiple of
`world_size`: disjoint batches, the same number on every rank (the few batches left over wait for next epoch's
shuffle).
"""
from __future__ import annotations

import bisect
import random
from typing import Iterator, Optional, Sequence

from torch.utils.data import Sampler

from .interface import DurationBucketSampler

DEFAULT_BUCKETS = 30  # as lhotse: fewer buckets pad more (benchmarks/README.md, "Batches by duration")
MIN_BUCKET_SIZE = 50  # utterances: fewer buckets for a small corpus, so that a bucket still fills several batches


class DynamicBucketingSampler(Sampler[list[int]]):
    """Batches of at most `max_seconds` of padded audio, from buckets of similar duration; see the module doc."""

    def __init__(self, durations: Sequence[float], max_seconds: float, *, num_buckets: int = DEFAULT_BUCKETS,
                 seed: int = 0, shuffle: bool = True, rank: int = 0, world_size: int = 1):
        if max_seconds <= 0:
            raise ValueError(f"max_seconds = {max_seconds}: must be above 0")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in a world of {world_size}")
        self.durations = [float(d) for d in durations]
        self.max_seconds = float(max_seconds)
        self.seed, self.shuffle = seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.boundaries = bucket_boundaries(self.durations, max(1, min(num_buckets, len(durations) // MIN_BUCKET_SIZE)))

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose batches `batches()` returns (the shuffle is drawn from seed and epoch)."""
        self.epoch = epoch

    def buckets(self) -> list[list[int]]:
        """The utterance indices of each bucket, shortest bucket first, in index order."""
        buckets: list[list[int]] = [[] for _ in range(len(self.boundaries) + 1)]
        for index, duration in enumerate(self.durations):
            buckets[bisect.bisect_right(self.boundaries, duration)].append(index)
        return [b for b in buckets if b]

    def batches(self) -> list[list[int]]:
        """This rank's batches of the current epoch, in training order."""
        rng = random.Random(f"bucketing {self.seed} {self.epoch}")  # seed 1 epoch 0 is not seed 0 epoch 1
        batches = []
        for bucket in self.buckets():
            if self.shuffle:
                rng.shuffle(bucket)
            batches += self._fill(bucket)
        if self.shuffle:
            rng.shuffle(batches)
        usable = len(batches) - len(batches) % self.world_size
        return batches[self.rank:usable:self.world_size]

    def _fill(self, indices: list[int]) -> list[list[int]]:
        """Cut `indices` in order into batches whose padded audio (longest x count) stays within max_seconds."""
        batches: list[list[int]] = []
        batch: list[int] = []
        longest = 0.0
        for index in indices:
            duration = self.durations[index]
            if batch and max(longest, duration) * (len(batch) + 1) > self.max_seconds:
                batches.append(batch)
                batch, longest = [], 0.0
            batch.append(index)
            longest = max(longest, duration)
        if batch:
            batches.append(batch)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return len(self.batches())


def bucket_boundaries(durations: Sequence[float], num_buckets: int) -> list[float]:
    """Durations that split `durations` into `num_buckets` groups of about equal size (duplicates merged)."""
    if num_buckets < 1:
        raise ValueError(f"num_buckets = {num_buckets}: must be at least 1")
    ordered = sorted(durations)
    if not ordered:
        return []
    cuts = {ordered[len(ordered) * k // num_buckets] for k in range(1, num_buckets)}
    return sorted(cuts - {ordered[0]})


def make_batch_sampler(durations: Sequence[float], batch_size: int, batch_seconds: Optional[float], *,
                       seed: int = 0, rank: int = 0, world_size: int = 1) -> Sampler[list[int]]:
    """The training batch sampler: by duration (`batch_seconds` of padded audio) or, with None, `batch_size` utterances."""
    if batch_seconds is not None:
        return DynamicBucketingSampler(durations, batch_seconds, seed=seed, rank=rank, world_size=world_size)
    return DurationBucketSampler(list(durations), batch_size, seed=seed, rank=rank, world_size=world_size)
