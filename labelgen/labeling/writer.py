"""Predictions -> one Parquet row per turn, written shard by shard from each process."""

from __future__ import annotations

import json
from collections import Counter
from contextlib import suppress
from pathlib import Path
from typing import Any

import lightning as L
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from labelgen.data.atomic import committed
from labelgen.data.features import FEEDBACK, SEGMENT_TAGS, FeatureSpace
from labelgen.data.rejects import RejectWriter
from labelgen.evaluation.rating_decision import decide_rating
from labelgen.labeling.decode import decode_slots, viterbi_bio_batch
from labelgen.labeling.shards import (
    DONE_DIR,
    REJECTS_DIR,
    done_path,
    part_name,
    remove_temporaries,
    write_json_atomic,
)

SLOT = pa.struct(
    [
        ("slot", pa.string()),
        ("start", pa.int32()),
        ("end", pa.int32()),
        ("value", pa.string()),
        ("confidence", pa.float64()),
    ]
)
LABEL_SCHEMA = pa.schema(
    [
        ("dialogue_id", pa.string()),
        ("turn_index", pa.int32()),
        ("turn_id", pa.string()),
        ("intent", pa.string()),
        ("intent_confidence", pa.float64()),
        ("segment", pa.string()),
        ("segment_confidence", pa.float64()),
        ("goal_id", pa.string()),
        ("goal_success", pa.bool_()),
        ("goal_success_confidence", pa.float64()),
        ("slots", pa.list_(SLOT)),
        ("slots_confidence", pa.float64()),
        ("satisfaction", pa.int32()),
        ("satisfaction_probs", pa.list_(pa.float64())),
        ("satisfaction_confidence", pa.float64()),
        ("dissatisfied", pa.bool_()),
        ("dissatisfied_confidence", pa.float64()),
        ("defect", pa.float64()),
        *[(name, pa.float64()) for name in FEEDBACK],
        ("review", pa.list_(pa.string())),
    ]
)
"""One row per turn: every label with its confidence, null where the model has no such head."""

GATED_TASKS = ("intent", "segment", "goal_success", "slots", "satisfaction")
"""Tasks whose labels a threshold can send to human review."""


def decide_satisfaction(
    p: list[float], cutoff: float, rating_weights: list[float] | None
) -> dict[str, Any]:
    """A turn's satisfaction labels from its five rating probabilities `p`: dissatisfied
    when P(rating <= 2) is above the cutoff; the rating is the likeliest one on the side of
    that decision (after the calibrated rating weights, see `rating_decision`), so the
    5-point and the binary label agree. Confidence in the decision runs from 0.5 at the
    cutoff to 1 at P = 0 or 1."""
    low = p[0] + p[1]
    dissatisfied = low > cutoff
    rating = decide_rating(p, dissatisfied, rating_weights)
    margin = (low - cutoff) / (1 - cutoff) if dissatisfied else (cutoff - low) / cutoff
    return {
        "satisfaction": rating,
        "satisfaction_probs": p,
        "satisfaction_confidence": p[rating - 1],
        "dissatisfied": dissatisfied,
        "dissatisfied_confidence": 0.5 + 0.5 * margin,
    }


def review_tasks(row: dict[str, Any], thresholds: dict[str, float]) -> list[str]:
    """The row's labels less confident than their task's threshold: for human review."""
    return [
        task
        for task in GATED_TASKS
        if row.get(f"{task}_confidence") is not None
        and row[f"{task}_confidence"] < thresholds.get(task, 0.0)
    ]


def shard_counts(shard: int, rows: list[dict[str, Any]], rejected: int) -> dict[str, Any]:
    """A shard's `_done` marker: what it holds, and how many of its labels go to review."""
    return {
        "shard": shard,
        "dialogues": len({r["dialogue_id"] for r in rows}),
        "turns": len(rows),
        "rejected": rejected,
        "reviewed": {t: sum(t in r["review"] for r in rows) for t in GATED_TASKS},
    }


class ShardWriter(BasePredictionWriter):
    def __init__(
        self,
        output: Path,
        space: FeatureSpace,
        thresholds: dict[str, float],
        dissatisfaction_cutoff: float = 0.5,
        rating_weights: list[float] | None = None,
    ) -> None:
        super().__init__(write_interval="batch")
        self.output = output
        self.space = space
        self.thresholds = thresholds
        self.cutoff = dissatisfaction_cutoff
        self.rating_weights = rating_weights
        self._rows: dict[int, list[dict[str, Any]]] = {}
        self.totals: Counter[str] = Counter()

    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        prediction: Any,
        batch_indices: Any,
        batch: dict[str, Any],
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        meta = batch["meta"]
        rows = self._rows.setdefault(meta.shard, [])
        if prediction is not None:
            rows += self.rows(batch, prediction)
        if meta.end:
            self._write_shard(meta.shard, self._rows.pop(meta.shard), meta.rejects)

    def rows(self, batch: dict[str, Any], probs: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
        probs = {k: v.detach().cpu() for k, v in probs.items()}
        best = {k: v.max(-1) for k, v in probs.items() if v.dim() >= 2}
        slots = (
            viterbi_bio_batch(
                probs["slots"].double().numpy(), batch["user_len"].numpy(), self.space.slot_tags
            )
            if "slots" in probs
            else None
        )
        out, flat = [], 0
        for dialogue in batch["meta"].dialogues:
            goal_names: dict[int, str] = {}
            for t, turn in enumerate(dialogue.turns):
                row: dict[str, Any] = {
                    "dialogue_id": dialogue.dialogue_id,
                    "turn_index": t,
                    "turn_id": turn.turn_id,
                }
                self._turn_labels(row, probs, best, flat)
                if slots is not None:
                    self._slots(row, *slots[flat], batch["meta"].user_offsets[flat], turn.user_text)
                if "goal_success" in probs:
                    g = int(probs["goal"][flat])
                    if g >= 0:
                        name = goal_names.setdefault(g, f"p{len(goal_names)}")
                        conf, success = (
                            best["goal_success"].values[g],
                            best["goal_success"].indices[g],
                        )
                        row.update(
                            goal_id=name,
                            goal_success=bool(success),
                            goal_success_confidence=float(conf),
                        )
                row["review"] = review_tasks(row, self.thresholds)
                out.append(row)
                flat += 1
        return out

    def _turn_labels(self, row, probs, best, flat) -> None:
        if "intent" in probs and self.space.intents:
            row["intent"] = self.space.intents[int(best["intent"].indices[flat])]
            row["intent_confidence"] = float(best["intent"].values[flat])
        if "segment" in probs:
            row["segment"] = SEGMENT_TAGS[int(best["segment"].indices[flat])]
            row["segment_confidence"] = float(best["segment"].values[flat])
        if "satisfaction" in probs:
            p = probs["satisfaction"][flat].double().tolist()
            row.update(decide_satisfaction(p, self.cutoff, self.rating_weights))
        for name in ("defect", *FEEDBACK):
            if name in probs:
                row[name] = float(probs[name][flat, 1])

    def _slots(self, row, tags, conf, offsets, text) -> None:
        row["slots"] = decode_slots(tags, conf, offsets, self.space.slot_tags, text)
        row["slots_confidence"] = min(conf) if conf else 1.0

    def _write_shard(self, shard: int, rows: list[dict[str, Any]], rejects: list) -> None:
        name = part_name(shard)
        part = self.output / f"{name}.parquet"
        try:
            with committed(part, "wb") as handle:
                pq.write_table(pa.Table.from_pylist(rows, schema=LABEL_SCHEMA), handle)
            with RejectWriter(self.output / REJECTS_DIR / f"{name}.jsonl") as writer:
                for reject in rejects:
                    writer.write(reject)
            counts = shard_counts(shard, rows, len(rejects))
            # Written last: its presence is what marks the shard done.
            write_json_atomic(done_path(self.output, shard), counts)
        except BaseException as err:
            self._discard(name)
            if isinstance(err, OSError):
                # A full disk's write error names no file; say which shard and what is kept.
                raise OSError(
                    err.errno,
                    f"{err.strerror or err}: shard {shard} not written; the shards done are "
                    "kept, rerun to label the rest",
                    err.filename or str(part),
                ) from err
            raise
        self.totals.update(dialogues=counts["dialogues"], turns=len(rows), rejected=len(rejects))

    def _discard(self, name: str) -> None:
        """Removes what a shard that failed before its marker had published already, so a
        part is only ever visible with its marker, and the temporaries it leaves."""
        for path in (self.output / f"{name}.parquet", self.output / REJECTS_DIR / f"{name}.jsonl"):
            with suppress(OSError):
                path.unlink(missing_ok=True)
        remove_temporaries(self.output, name)


def read_done(output: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((output / DONE_DIR).glob("part-*.json"))]


def done_totals(done: list[dict[str, Any]]) -> dict[str, Any]:
    """The manifest's counts over the shards' `_done` markers."""
    totals = {k: sum(d[k] for d in done) for k in ("dialogues", "turns", "rejected")}
    reviewed = {t: sum(d["reviewed"][t] for d in done) for t in GATED_TASKS}
    return {
        **totals,
        "input_records": totals["dialogues"] + totals["rejected"],
        "shards": len(done),
        "auto_labeled_share": {
            t: 1 - reviewed[t] / totals["turns"] if totals["turns"] else 0.0 for t in GATED_TASKS
        },
    }
