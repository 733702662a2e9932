"""Input shards: the unit of work, of output and of resumption.

Shard i is input records [i*S, (i+1)*S) in input order, rejects included, so the same log
always cuts into the same shards whatever the number of processes. Its labels go to
`part-NNNNNN.parquet` and its rejects to `_rejects/part-NNNNNN.jsonl`, each renamed into place
whole; then `_done/part-NNNNNN.json`, written last, marks it done. A rerun skips done shards
and redoes the rest: nothing is lost or written twice, and a killed run never leaves a
half-written file visible."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import IterableDataset, get_worker_info

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


class LabelingDataset(IterableDataset):
    """Collated micro-batches of the shards this process owns and has not finished.

    Shard i belongs to process (i mod processes), counting every DataLoader worker of every
    rank, so no dialogue is labeled twice. Each micro-batch's `meta` carries its shard index and
    dialogues for decoding; the last one of a shard is marked `end` and carries its rejects.
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
    ) -> None:
        self.path, self.fmt, self.output = path, fmt, output
        self.featurizer, self.collator = featurizer, collator
        self.shard_size, self.batch_size = shard_size, batch_size

    def __iter__(self) -> Iterator[dict[str, Any]]:
        rank, world = _rank_and_world()
        worker = get_worker_info()
        workers, worker_id = (worker.num_workers, worker.id) if worker else (1, 0)
        me, processes = rank * workers + worker_id, world * workers
        for shard in iter_shards(self.path, self.fmt, self.shard_size):
            if shard.index % processes != me or is_done(self.output, shard.index):
                continue
            yield from self._batches(shard)

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


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(payload, sort_keys=True))
    os.replace(tmp, path)
