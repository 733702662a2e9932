from __future__ import annotations

import random

import pytest

from labelgen.data.sampler import BucketBatchSampler, ResumableDataLoader

_rng = random.Random(0)
LENGTHS = [_rng.randint(5, 500) for _ in range(203)]


def _padding(batches, lengths=LENGTHS) -> float:
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return 1 - sum(lengths[i] for b in batches for i in b) / padded


def test_every_item_once_per_epoch_and_order_per_epoch_seed():
    sampler = BucketBatchSampler(LENGTHS, batch_size=8, seed=1)
    first = list(sampler)
    assert sorted(i for b in first for i in b) == list(range(len(LENGTHS)))
    assert len(first) == len(sampler)
    assert list(sampler) == first
    sampler.set_epoch(1)
    assert list(sampler) != first


def test_a_cycle_repeats_the_order_every_cycle_epochs():
    sampler = BucketBatchSampler(LENGTHS, batch_size=8, seed=1, cycle=3)
    orders = []
    for epoch in range(7):
        sampler.set_epoch(epoch)
        orders.append(list(sampler))
    assert orders[0] == orders[3] == orders[6] and orders[1] == orders[4]
    assert len({str(order) for order in orders[:3]}) == 3
    # the cycle's epochs are the plain sampler's first ones
    assert orders[:3] == [
        list(_at_epoch(BucketBatchSampler(LENGTHS, batch_size=8, seed=1), e)) for e in range(3)
    ]
    with pytest.raises(ValueError, match="cycle"):
        BucketBatchSampler(LENGTHS, 8, cycle=-1)


def _at_epoch(sampler: BucketBatchSampler, epoch: int) -> BucketBatchSampler:
    sampler.set_epoch(epoch)
    return sampler


def test_bucketing_cuts_padding():
    bucketed = list(BucketBatchSampler(LENGTHS, batch_size=8, pool_batches=50))
    plain = list(BucketBatchSampler(LENGTHS, batch_size=8, pool_batches=1))
    assert _padding(bucketed) < 0.5 * _padding(plain)


@pytest.mark.parametrize("replicas", [2, 3])
def test_ranks_split_the_batches_evenly(replicas):
    per_rank = [
        list(BucketBatchSampler(LENGTHS, 8, seed=2, num_replicas=replicas, rank=r))
        for r in range(replicas)
    ]
    assert len({len(b) for b in per_rank}) == 1
    assert all(
        len(b) == len(BucketBatchSampler(LENGTHS, 8, num_replicas=replicas)) for b in per_rank
    )
    seen = [i for batches in per_rank for b in batches for i in b]
    assert set(seen) == set(range(len(LENGTHS)))
    # Only the padding batches (repeats to even out the ranks) may appear twice.
    assert len(seen) - len(LENGTHS) < replicas * 8


def test_batch_size_must_be_positive():
    with pytest.raises(ValueError, match="batch_size"):
        BucketBatchSampler(LENGTHS, 0)


def test_loader_takes_each_epoch_from_the_trainer_and_resumes_mid_epoch():
    # Lightning's per-epoch set_epoch reaches samplers, not batch samplers: without the
    # loader asking the trainer, every epoch repeated the first one's order.
    progress = {"epoch": 0, "done": 0}
    sampler = BucketBatchSampler([random.Random(i).randrange(5, 50) for i in range(64)], 4)
    loader = ResumableDataLoader(
        list(range(64)),
        batch_sampler=sampler,
        collate_fn=list,
        progress=lambda: (progress["epoch"], progress["done"]),
    )
    epoch0, again = list(loader), list(loader)
    progress["epoch"] = 1
    epoch1 = list(loader)
    assert epoch0 == again and epoch1 != epoch0
    assert sorted(i for b in epoch1 for i in b) == list(range(64))
    # a checkpoint after 5 batches of epoch 1: the resumed loader yields the other 11
    progress["done"] = 5
    state = loader.state_dict()
    sampler.set_epoch(0)
    loader.load_state_dict(state)
    assert list(loader) == epoch1[5:]
