"""Logs that every model labels, cut into pieces that a labeling process's memo holds.

Every SGD model labels the same logs, each log's calls in one process so that the log is
encoded once: the first model's batches fill the process's memo (`runs.LABEL_MEMO_MB`, shared
out among the processes) and the next models read them back. The memo drops its least recently
used batches, so a log whose states outgrow it is encoded again by every model, from its first
batch on: each model's reads evict the batches the next model reads first. SGD dev's unseen
services (1,395 dialogues, about 1.4 GB of states) fit the 1.5 GB each of two processes keeps;
SGD's test split (4,201 dialogues, most of them on unseen services) would not.

So a log longer than a piece (`piece_size`) is labeled in pieces, every model's call on one
piece after another in one process, and each call's pieces gathered into one folder for
scoring. A piece is a whole number of labeling shards (`runs.LABEL_SHARD`), so its
batches are the whole log's and its labels those of the log labeled whole, bit for bit. Pieces
also spread the labeling more evenly over the processes than whole logs of unequal size.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import TypeVar

from labelgen.data.schema import Dialogue
from quality import runs
from quality.pool import map_side_by_side
from quality.runs import Model, gather, label, write_log

K = TypeVar("K")

STATES_MB = 1.0
"""MB of MiniLM states per SGD dialogue in the labeling memo (session 16: 300 dev dialogues,
301 MB; the 1,395 of dev's unseen services about 1.4 GB)."""


def piece_size(jobs: int) -> int:
    """Dialogues per piece with `jobs` labeling processes: the most whole shards whose states
    take at most 70% of a process's share of the memo (the rest: longer dialogues than
    SGD's mean, and the previous piece's batches still there). 1,024 with 2 processes."""
    share = runs.LABEL_MEMO_MB / max(1, jobs)
    shards = int(0.7 * share / STATES_MB) // runs.LABEL_SHARD
    return max(1, shards) * runs.LABEL_SHARD


def write_pieces(dialogues: list[Dialogue], log: Path, size: int) -> list[Path]:
    """The log at `log` (`dialogues`, in its order) as pieces of `size` dialogues beside it, or
    the log alone when it is no longer than that."""
    if size < 1 or size % runs.LABEL_SHARD:
        raise ValueError(f"a piece is whole labeling shards of {runs.LABEL_SHARD}, got {size}")
    if len(dialogues) <= size:
        return [log]
    return [
        write_log(dialogues[k : k + size], log.with_name(f"{log.stem}.piece{k // size}.parquet"))
        for k in range(0, len(dialogues), size)
    ]


def label_in_pieces(
    calls: dict[K, tuple[Model, list[Path], Path]], args: argparse.Namespace
) -> dict[K, Path]:
    """Each call's model labels each of its pieces (`write_pieces`), the labels gathered into
    the call's folder, which it returns by key. Side by side (`map_side_by_side`) each piece's
    calls run in one process; one after another, every call on a piece before the next piece."""
    by_piece: dict[Path, dict[tuple[K, int], tuple[Model, Path, Path]]] = {}
    for key, (model, pieces, out) in calls.items():
        for k, piece in enumerate(pieces):
            where = out if len(pieces) == 1 else out.with_name(f"{out.name}.piece{k}")
            by_piece.setdefault(piece, {})[key, k] = (model, piece, where)
    parts = {part: call for calls_on in by_piece.values() for part, call in calls_on.items()}
    labeled = map_side_by_side(label, parts, args)
    for key, (_, pieces, out) in calls.items():
        if len(pieces) > 1:
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            for k in range(len(pieces)):
                gather(labeled[key, k], out, f"p{k}")
                shutil.rmtree(labeled[key, k])
    return {key: out for key, (_, _, out) in calls.items()}
