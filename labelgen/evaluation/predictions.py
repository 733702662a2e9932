"""Reading `labelgen label` output: Parquet shards `part-*.parquet`, one row per turn.

Each task's prediction for an item is read through a small function that returns
(label, confidence), or None when the model made no prediction there (row or column absent, or
null). The label conventions are decided here, once:
- binary dissatisfaction: the labeler's `dissatisfied` decision (P(rating <= 2) above its
  cutoff) with `dissatisfied_confidence`; in files without it, P = p1 + p2 from
  `satisfaction_probs` above 0.5, confidence max(P, 1 - P), or else rating <= 2 with
  `satisfaction_confidence`;
- feedback flags: the probability of True above 0.5, confidence max(p, 1 - p);
- goal success: the outcome of the predicted goal on one turn; a turn in no predicted goal is
  the answer "no goal", wrong either way, with confidence 0 so that no threshold keeps it.
  Which turns of a reference goal are read, and in what order, is `items.goal_items`' rule.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from labelgen.data.schema import Dialogue
from labelgen.evaluation.items import Key

Prediction = tuple[Any, float | None]
Reader = Callable[["Predictions", Key], Prediction | None]


@dataclass
class Predictions:
    columns: dict[str, list[Any]]
    index: dict[Key, int]
    files: int
    rows: int
    duplicates: int = 0
    """Rows whose (dialogue_id, turn_index) an earlier row had; the first one is used."""
    turn_ids: dict[Key, str] = field(default_factory=dict)
    filled: set[str] = field(init=False)

    def __post_init__(self) -> None:
        # The labeler writes every column, null throughout where the model has no such head:
        # a column only counts as a prediction where it holds a value somewhere.
        self.filled = {
            n for n, values in self.columns.items() if any(v is not None for v in values)
        }

    def has(self, column: str) -> bool:
        return column in self.filled

    def get(self, key: Key, column: str) -> Any:
        i = self.index.get(key)
        values = self.columns.get(column)
        return None if i is None or values is None else values[i]


def read_predictions(path: str | Path) -> Predictions:
    """All `part-*.parquet` shards under `path` (other files, e.g. rejects and done markers,
    are ignored)."""
    path = Path(path)
    files = sorted(path.glob("part-*.parquet"))
    if not files:
        raise FileNotFoundError(f"{path} holds no part-*.parquet prediction shards")
    # Shards of one run share a schema; permissive promotion still joins a shard whose
    # all-null column was written as type null.
    table = pa.concat_tables([pq.read_table(f) for f in files], promote_options="permissive")
    for required in ("dialogue_id", "turn_index"):
        if required not in table.column_names:
            raise ValueError(f"predictions in {path} have no {required!r} column")
    columns = {name: table.column(name).to_pylist() for name in table.column_names}
    index: dict[Key, int] = {}
    duplicates = 0
    for i, key in enumerate(zip(columns["dialogue_id"], columns["turn_index"], strict=True)):
        if key in index:
            duplicates += 1
        else:
            index[key] = i
    turn_ids = (
        {key: columns["turn_id"][i] for key, i in index.items()} if "turn_id" in columns else {}
    )
    return Predictions(columns, index, len(files), table.num_rows, duplicates, turn_ids)


def _column(name: str) -> Reader:
    def read(preds: Predictions, key: Key) -> Prediction | None:
        value = preds.get(key, name)
        return None if value is None else (value, preds.get(key, f"{name}_confidence"))

    return read


def _slots(preds: Predictions, key: Key) -> Prediction | None:
    value = preds.get(key, "slots")
    if value is None:
        return None
    spans = [(s["slot"], s["start"], s["end"], s.get("value")) for s in value]
    return spans, preds.get(key, "slots_confidence")


def dissatisfaction_probability(preds: Predictions, key: Key) -> float | None:
    """P(rating <= 2) for one turn, None where the model gave no satisfaction probabilities."""
    probs = preds.get(key, "satisfaction_probs")
    return float(probs[0] + probs[1]) if probs else None


def _dissatisfaction(preds: Predictions, key: Key) -> Prediction | None:
    decided = preds.get(key, "dissatisfied")
    if decided is not None:
        return bool(decided), preds.get(key, "dissatisfied_confidence")
    p = dissatisfaction_probability(preds, key)
    if p is not None:
        return p > 0.5, max(p, 1.0 - p)
    rating = preds.get(key, "satisfaction")
    if rating is None:
        return None
    return rating <= 2, preds.get(key, "satisfaction_confidence")


def _goal_success(preds: Predictions, key: Key) -> Prediction | None:
    if key not in preds.index or not preds.has("goal_success"):
        return None
    success = preds.get(key, "goal_success")
    if preds.get(key, "goal_id") is None or success is None:
        return None, 0.0
    return bool(success), preds.get(key, "goal_success_confidence")


def _flag(name: str) -> Reader:
    def read(preds: Predictions, key: Key) -> Prediction | None:
        p = preds.get(key, name)
        return None if p is None else (p > 0.5, max(p, 1.0 - p))

    return read


READERS: dict[str, Reader] = {
    "intent": _column("intent"),
    "slots": _slots,
    "segment": _column("segment"),
    "goal_success": _goal_success,
    "satisfaction": _column("satisfaction"),
    "dissatisfaction": _dissatisfaction,
    **{name: _flag(name) for name in ("barge_in", "rephrase", "rejection", "explicit_feedback")},
}
"""Task -> how to read the model's label and confidence for one turn."""

MODEL_COLUMNS: dict[str, tuple[str, ...]] = {
    "intent": ("intent",),
    "slots": ("slots",),
    "segment": ("segment",),
    "goal_success": ("goal_success",),
    "satisfaction": ("satisfaction",),
    "dissatisfaction": ("satisfaction",),
    **{name: (name,) for name in ("barge_in", "rephrase", "rejection", "explicit_feedback")},
}
"""Task -> columns whose presence says the model has that head."""


SAMPLE_DIALOGUES = 8
SAMPLE_COLUMNS = (
    "intent",
    "intent_confidence",
    "segment",
    "goal_success",
    "slots",
    "satisfaction",
    "dissatisfied",
    "review",
)


def sample_rows(
    dialogues: Sequence[Dialogue], preds: Predictions, seed: int, n: int = SAMPLE_DIALOGUES
) -> list[dict[str, Any]]:
    """Every turn of a few labeled dialogues (chosen with the seed) with its texts, the model's
    labels and the reference's: what a person reads to see what the numbers mean."""
    labeled = [d for d in dialogues if preds.get((d.dialogue_id, 0), "dialogue_id") is not None]
    chosen = random.Random(seed).sample(labeled, min(n, len(labeled)))
    rows = []
    for d in sorted(chosen, key=lambda d: d.dialogue_id):
        for t, turn in enumerate(d.turns):
            key = (d.dialogue_id, t)
            row = {
                "dialogue_id": d.dialogue_id,
                "turn_index": t,
                "user_text": turn.user_text,
                "system_text": turn.system_text,
                "reference_intent": turn.intent,
            }
            for column in SAMPLE_COLUMNS:
                value = preds.get(key, column)
                if column == "slots" and value is not None:
                    value = ", ".join(f"{s['slot']}={s['value']!r}" for s in value)
                elif column == "review" and value is not None:
                    value = ", ".join(value)
                row[column] = value
            rows.append(row)
    return rows
