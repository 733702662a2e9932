"""Input shards: the unit of work, of output and of resumption.

Shard i is input records [i*S, (i+1)*S) in input order, rejects included, so the same log
always cuts into the same shards whatever the number of processes. Its labels go to
`part-NNNNNN.parquet` and its rejects to `_rejects/part-NNNNNN.jsonl`, each renamed into place
whole; then `_done/part-NNNNNN.json`, written last, marks it done. A rerun skips done shards
and redoes the rest: nothing is lost or written twice, and a killed run never leaves a
half-written file visible (only hidden `.NAME.tmp-PID` files, which readers skip and the next
job removes)."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import IterableDataset, get_worker_info

from labelgen.data.atomic import committed
from labelgen.data.collate import Collator
from labelgen.data.features import Featurizer
from labelgen.data.readers import read_log
from labelgen.data.rejects import Reject
from labelgen.data.schema import Dialogue


def part_name(shard: int) -> str:
    return f"part-{shard:06d}"


DONE_DIR, REJECTS_DIR, MANIFEST = "_done", "_rejects", "_manifest.json"
"""Bookkeeping beside the Parquet parts; the leading underscore makes Parquet readers
(`pyarrow.parquet.read_table(DIR)`, `datasets`) skip it."""


def done_path(output: Path, shard: int) -> Path:
    return output / DONE_DIR / f"{part_name(shard)}.json"


def is_done(output: Path, shard: int) -> bool:
    return done_path(output, shard).exists()


class RejectLimitExceeded(Exception):
    """More of the input was rejected than the job allows: the log is probably not what the
    model expects (wrong --format, a broken export), and labeling the rest would waste time."""


class RejectLimit:
    """Rejected / input records over every shard committed in the output, by any process of
    this job or an earlier run. All processes read the same `_done` markers, so they agree on
    when to stop without talking to each other (a rank that stopped alone would leave the
    others waiting at the next collective)."""

    def __init__(self, output: Path, fraction: float) -> None:
        self.output, self.fraction = output, fraction
        self._seen: dict[str, tuple[int, int]] = {}

    def counts(self) -> tuple[int, int, int]:
        """Rejected records, input records, shards committed."""
        for path in (self.output / DONE_DIR).glob("part-*.json"):
            if path.name not in self._seen:  # markers are final: read each once
                done = json.loads(path.read_text())
                self._seen[path.name] = (done["rejected"], done["dialogues"] + done["rejected"])
        rejected = sum(r for r, _ in self._seen.values())
        return rejected, sum(n for _, n in self._seen.values()), len(self._seen)

    def exceeded(self) -> bool:
        rejected, records, _ = self.counts()
        return records > 0 and rejected / records > self.fraction

    def check(self) -> None:
        if self.exceeded():
            rejected, records, shards = self.counts()
            raise RejectLimitExceeded(
                f"stopped: {rejected} of {records} input records rejected "
                f"({rejected / records:.1%}) in the {shards} shards done, above the maximum "
                f"reject fraction {self.fraction:g}; the rejects and their reasons are in "
                f"{self.output / REJECTS_DIR}. The shards done are kept: rerun without the "
                "limit (or with a higher one) to label the rest"
            )


class BatchMeta:
    """What decoding and writing need beside the tensors. A plain class on purpose: Lightning
    moves batches to devices by walking lists, dicts and dataclasses, and this stays put."""

    def __init__(
        self,
        shard: int,
        end: bool,
        dialogues: list[Dialogue],
        rejects: list[Reject],
        user_offsets: list[list[list[int]]],
    ) -> None:
        self.shard, self.end = shard, end
        self.dialogues, self.rejects, self.user_offsets = dialogues, rejects, user_offsets


@dataclass
class Shard:
    index: int
    dialogues: list[Dialogue] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)


def iter_shards(path: str, fmt: str, size: int) -> Iterator[Shard]:
    """The log cut into shards of `size` input records, read lazily (constant memory)."""
    shard, count = Shard(0), 0
    for item in read_log(path, fmt):
        if isinstance(item, Reject):
            shard.rejects.append(item)
        else:
            shard.dialogues.append(item)
        count += 1
        if count == size:
            yield shard
            shard, count = Shard(shard.index + 1), 0
    if count or shard.index == 0:
        yield shard


def _rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


_BATCH_MEMO: OrderedDict[tuple, list[tuple[int, list[dict[str, Any]]]]] = OrderedDict()
"""Whole inputs' collated batches, shard by shard, by `LabelingDataset.memo_key`; the most
recently used last."""


class LabelingDataset(IterableDataset):
    """Collated micro-batches of the shards this process owns and has not finished.

    Shard i belongs to process (i mod processes), counting every DataLoader worker of every
    rank, so no dialogue is labeled twice. Each micro-batch's `meta` carries its shard index and
    dialogues for decoding; the last one of a shard is marked `end` and carries its rejects.

    With a `memo_key` (what made the batches: the input as it is on disk, its featurization
    and batching) and `memo_inputs` > 0, a job in one process keeps every batch of its input,
    done shards' too, for the next job here with the same key (`LabelJob.batch_memo`): that one
    reads and featurizes nothing, and gets the very batches (copies) it would have made. A
    job stopped early keeps none.
    """

    def __init__(
        self,
        path: str,
        fmt: str,
        output: Path,
        featurizer: Featurizer,
        collator: Collator,
        shard_size: int = 512,
        batch_size: int = 32,
        reject_limit: RejectLimit | None = None,
        memo_key: tuple | None = None,
        memo_inputs: int = 0,
    ) -> None:
        self.path, self.fmt, self.output = path, fmt, output
        self.featurizer, self.collator = featurizer, collator
        self.shard_size, self.batch_size = shard_size, batch_size
        self.reject_limit = reject_limit
        self.memo_key, self.memo_inputs = memo_key, memo_inputs

    def __iter__(self) -> Iterator[dict[str, Any]]:
        rank, world = _rank_and_world()
        worker = get_worker_info()
        workers, worker_id = (worker.num_workers, worker.id) if worker else (1, 0)
        me, processes = rank * workers + worker_id, world * workers
        for index, batches in self._shards(memoize=processes == 1):
            if index % processes != me or is_done(self.output, index):
                continue
            for batch in batches:
                # Checked per batch, not per shard: the predict loop fetches one batch ahead,
                # so by the next fetch the shard that crossed the limit is committed and the
                # one already begun is dropped unwritten.
                if self.reject_limit is not None and self.reject_limit.exceeded():
                    return
                yield batch

    def _shards(self, memoize: bool) -> Iterator[tuple[int, Iterable[dict[str, Any]]]]:
        """Each shard's index and batches: read and featurized, or from the memo."""
        key = self.memo_key if memoize and self.memo_inputs > 0 else None
        if key is None:
            for shard in iter_shards(self.path, self.fmt, self.shard_size):
                yield shard.index, self._batches(shard)
            return
        kept = _BATCH_MEMO.get(key)
        if kept is None:
            kept = []
            for shard in iter_shards(self.path, self.fmt, self.shard_size):
                kept.append((shard.index, list(self._batches(shard))))
                yield shard.index, map(_copy, kept[-1][1])
            # reached only once every shard was read: a job stopped early keeps nothing
            _BATCH_MEMO[key] = kept
            while len(_BATCH_MEMO) > self.memo_inputs:
                _BATCH_MEMO.popitem(last=False)
            return
        _BATCH_MEMO.move_to_end(key)
        for index, batches in kept:
            yield index, map(_copy, batches)

    def _batches(self, shard: Shard) -> Iterator[dict[str, Any]]:
        dialogues = shard.dialogues
        if not dialogues:
            yield {"meta": BatchMeta(shard.index, True, [], shard.rejects, [])}
            return
        for start in range(0, len(dialogues), self.batch_size):
            chunk = dialogues[start : start + self.batch_size]
            records = [self.featurizer(d) for d in chunk]
            batch = self.collator(records)
            end = start + self.batch_size >= len(dialogues)
            offsets = [offs for r in records for offs in r["user_offsets"]]
            batch["meta"] = BatchMeta(
                shard.index, end, chunk, shard.rejects if end else [], offsets
            )
            yield batch


def _copy(batch: dict[str, Any]) -> dict[str, Any]:
    """A memo's batch as its own: nothing downstream can change the memo's tensors."""
    return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    with committed(path) as handle:
        handle.write(json.dumps(payload, sort_keys=True))


def remove_temporaries(output: Path, name: str = "") -> None:
    """Hidden `.NAME.tmp-PID` files a killed or failed writer left (of one part, or all).
    Only the lock holder calls this for all: no live writer of another job can own them."""
    pattern = f".{name}.*.tmp-*" if name else ".*.tmp-*"
    for folder in (output, output / REJECTS_DIR, output / DONE_DIR):
        for tmp in folder.glob(pattern):
            with suppress(OSError):
                tmp.unlink()
