"""Length-bucketed batches, shuffled per epoch, split across data-parallel ranks."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from torch.utils.data import DataLoader, Sampler


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of dialogues of similar turn length, so turns are padded little.

    Dialogues are shuffled, cut into pools of `batch_size * pool_batches`, each pool sorted by
    length and cut into batches, and the batches shuffled again: similar lengths without a
    fixed order. Ranks take every `num_replicas`-th batch; the batch list is padded by
    repetition so every rank runs the same number of steps (DDP needs that).

    The order depends only on (seed, epoch), so a resumed run sees the same batches. With
    `cycle`, only on (seed, epoch % cycle): the batches repeat every `cycle` epochs, and with
    them whatever is drawn per batch (pretraining's corruptions, seeded by the batch's
    dialogues).
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        pool_batches: int = 50,
        num_replicas: int = 1,
        rank: int = 0,
        cycle: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if cycle < 0:
            raise ValueError(f"cycle must be >= 0 (0: a new order every epoch), got {cycle}")
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.pool_batches = pool_batches
        self.num_replicas = num_replicas
        self.rank = rank
        self.cycle = cycle
        self.epoch = 0
        self._skip = 0

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self._skip = 0
        self.epoch = epoch

    def resume(self, epoch: int, batches_done: int) -> None:
        """The next iteration continues `epoch` after its first `batches_done` batches."""
        self.epoch = epoch
        self._skip = batches_done

    def _all_batches(self) -> list[list[int]]:
        order = list(range(len(self.lengths)))
        epoch = self.epoch % self.cycle if self.cycle else self.epoch
        rng = random.Random(f"{self.seed}:{epoch}")
        if self.shuffle:
            rng.shuffle(order)
        else:
            order.sort(key=lambda i: self.lengths[i])
        pool = self.batch_size * self.pool_batches
        batches = []
        for start in range(0, len(order), pool):
            chunk = sorted(order[start : start + pool], key=lambda i: self.lengths[i])
            batches += [
                chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)
            ]
        if self.shuffle:
            rng.shuffle(batches)
        if batches and len(batches) % self.num_replicas:
            batches += batches[: self.num_replicas - len(batches) % self.num_replicas]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        skip, self._skip = self._skip, 0
        yield from self._all_batches()[self.rank :: self.num_replicas][skip:]

    def __len__(self) -> int:
        n_batches = 0
        pool = self.batch_size * self.pool_batches
        for start in range(0, len(self.lengths), pool):
            n_batches += math.ceil(min(pool, len(self.lengths) - start) / self.batch_size)
        return math.ceil(n_batches / self.num_replicas)


class ResumableDataLoader(DataLoader):
    """A DataLoader that Lightning checkpoints mid-epoch (it has `state_dict`).

    The state is the epoch and the number of batches the trainer has finished in it, read from
    the trainer rather than counted here, because the trainer prefetches batches it has not
    trained on yet. On resume the bucketed sampler skips exactly those batches.

    Lightning hands this state back only when the loader is built after the loops are
    restored; `estimated_stepping_batches` (the LR schedule) builds it before, so the data
    module also keeps the state and resumes the sampler itself. And Lightning's per-epoch
    `set_epoch` reaches samplers, not batch samplers, so each new iteration takes the epoch
    from the trainer here (else every epoch repeats the first one's order).
    """

    def __init__(self, *args: Any, progress: Callable[[], tuple[int, int]], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._progress = progress

    def __iter__(self):
        self.batch_sampler.set_epoch(self._progress()[0])
        return super().__iter__()

    def state_dict(self) -> dict[str, int]:
        epoch, done = self._progress()
        return {"epoch": epoch, "batches_done": done}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.batch_sampler.resume(state["epoch"], state["batches_done"])
