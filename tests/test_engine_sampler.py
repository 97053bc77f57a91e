"""Batches are a pure function of (seed, step): ranks split one global batch, and a resumed run sees the same data."""

from __future__ import annotations

import itertools

import pytest
import torch

from genkit.engine.data import EpochBatchSampler, eval_loader
from genkit.errors import ConfigError


def take(sampler, n):
    return list(itertools.islice(iter(sampler), n))


def test_an_epoch_visits_every_image_at_most_once_and_drops_only_the_remainder():
    batches = take(EpochBatchSampler(10, 3, seed=1), 3)
    seen = [i for b in batches for i in b]
    assert len(seen) == len(set(seen)) == 9
    assert seen == torch.randperm(10, generator=torch.Generator().manual_seed(1 * 1_000_003)).tolist()[:9]


def test_two_ranks_together_see_exactly_the_batches_of_one_process_with_twice_the_batch():
    alone = take(EpochBatchSampler(23, 4, seed=5), 12)
    rank0 = take(EpochBatchSampler(23, 2, seed=5, rank=0, world_size=2), 12)
    rank1 = take(EpochBatchSampler(23, 2, seed=5, rank=1, world_size=2), 12)
    assert [a + b for a, b in zip(rank0, rank1)] == alone


def test_starting_at_batch_k_continues_the_same_sequence_across_epochs():
    full = take(EpochBatchSampler(11, 3, seed=2), 10)
    assert take(EpochBatchSampler(11, 3, seed=2, start=4), 6) == full[4:]


def test_a_global_batch_larger_than_the_split_is_a_config_error():
    with pytest.raises(
        ConfigError,
        match=r"4 per micro-batch × 3 micro-batches \(train.accumulate\) × 2 processes = 24 images per update, "
        "but the training split has only 23",
    ):
        EpochBatchSampler(23, 4, seed=0, world_size=2, accumulate=3)


def test_accumulated_micro_batches_of_every_rank_together_are_the_batch_of_one_process():
    one = take(EpochBatchSampler(50, 12, seed=3), 5)
    ranks = [take(EpochBatchSampler(50, 3, seed=3, rank=r, world_size=2, accumulate=2), 5) for r in (0, 1)]
    # each rank's batch is its two micro-batches of 3, one after the other; rank 0's come first
    assert [ranks[0][i] + ranks[1][i] for i in range(5)] == one


def test_evaluation_shards_cover_the_first_max_images_once():
    data = torch.arange(10, dtype=torch.uint8).reshape(10, 1, 1, 1)
    seen = []
    for rank in range(2):
        loader = eval_loader(
            list(data), 2, max_images=7, num_workers=0, device=torch.device("cpu"), rank=rank, world_size=2
        )
        seen += [int(v) for batch in loader for v in batch.flatten()]
    assert sorted(seen) == list(range(7))
