"""Batches by duration: every utterance once per epoch, padded seconds within the limit, reproducible, DDP shards."""
from __future__ import annotations

import random

import pytest

from asr_poc.datasets.bucketing import DynamicBucketingSampler, bucket_boundaries, make_batch_sampler
from asr_poc.datasets.interface import DurationBucketSampler

DURATIONS = [round(random.Random(3).uniform(0.5, 1.0) * (1 + i % 7), 3) for i in range(500)]  # 0.5 .. 7 s


def padded(batch: list[int]) -> float:
    return max(DURATIONS[i] for i in batch) * len(batch)


def test_each_epoch_uses_every_utterance_once_within_the_seconds_limit():
    sampler = DynamicBucketingSampler(DURATIONS, max_seconds=20.0, seed=1)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = sampler.batches()
        assert sorted(i for b in batches for i in b) == list(range(len(DURATIONS)))
        assert all(padded(b) <= 20.0 for b in batches)
        assert len(sampler) == len(batches) == len(list(sampler))


def test_batches_hold_similar_durations_and_more_short_utterances_than_long_ones():
    sampler = DynamicBucketingSampler(DURATIONS, max_seconds=30.0)
    batches = sampler.batches()
    padding = sum(padded(b) for b in batches) / sum(DURATIONS) - 1
    assert padding < 0.25, f"{padding:.0%} padding"
    by_length = sorted(batches, key=lambda b: max(DURATIONS[i] for i in b))
    assert len(by_length[0]) > 3 * len(by_length[-1])


def test_a_long_utterance_is_a_batch_of_its_own_not_dropped():
    sampler = DynamicBucketingSampler([1.0, 1.0, 12.0, 1.0], max_seconds=5.0, num_buckets=1, shuffle=False)
    assert sampler.batches() == [[0, 1], [2], [3]]  # one bucket, in order: the 12 s utterance cuts it


def test_order_is_drawn_from_seed_and_epoch_only():
    a, b = (DynamicBucketingSampler(DURATIONS, 20.0, seed=7) for _ in range(2))
    assert a.batches() == b.batches()
    b.set_epoch(1)
    assert a.batches() != b.batches(), "a new epoch, a new order"
    a.set_epoch(1)
    assert a.batches() == b.batches()
    assert DynamicBucketingSampler(DURATIONS, 20.0, seed=8).batches() != a.batches()


@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_get_disjoint_batches_and_the_same_number_of_them(world_size):
    shards = [DynamicBucketingSampler(DURATIONS, 20.0, seed=2, rank=r, world_size=world_size).batches()
              for r in range(world_size)]
    whole = DynamicBucketingSampler(DURATIONS, 20.0, seed=2).batches()
    assert len({len(s) for s in shards}) == 1 and len(shards[0]) == len(whole) // world_size
    seen = [i for shard in shards for b in shard for i in b]
    assert len(seen) == len(set(seen)), "no utterance on two ranks"
    assert len(whole) - len(shards[0]) * world_size < world_size  # at most world_size - 1 batches left over


def test_boundaries_split_into_groups_of_about_equal_size():
    boundaries = bucket_boundaries(DURATIONS, 5)
    assert boundaries == sorted(boundaries) and len(boundaries) == 4
    assert bucket_boundaries([2.0] * 10, 5) == []  # one duration: one bucket


def test_make_batch_sampler_counts_or_measures():
    assert isinstance(make_batch_sampler(DURATIONS, 8, None), DurationBucketSampler)
    sampler = make_batch_sampler(DURATIONS, 8, 25.0, seed=4, rank=1, world_size=2)
    assert isinstance(sampler, DynamicBucketingSampler) and sampler.max_seconds == 25.0 and sampler.rank == 1


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="max_seconds"):
        DynamicBucketingSampler(DURATIONS, 0)
    with pytest.raises(ValueError, match="rank 2"):
        DynamicBucketingSampler(DURATIONS, 10.0, rank=2, world_size=2)
