"""Fabricated `labelgen label` output for evaluation tests: Parquet shards built from reference
dialogues, so that the accuracy the evaluation must find is known in advance."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from labelgen.data.schema import Dialogue
from labelgen.data.synth import SynthConfig, generate
from labelgen.evaluation.gold import Gold, gold_labels, task_items
from labelgen.evaluation.items import reference_tags
from labelgen.labeling.writer import LABEL_SCHEMA

# The labeler's own schema: evaluation must read exactly what `labelgen label` writes.
SCHEMA = LABEL_SCHEMA

Rows = dict[tuple[str, int], dict[str, Any]]
N_SYNTH = 120


def write_predictions(out: Path, rows: Rows, shards: int = 2, drop: Sequence[str] = ()) -> Path:
    """`rows` as `part-*.parquet` shards (plus a stray file the reader must ignore)."""
    out.mkdir(parents=True, exist_ok=True)
    schema = pa.schema([f for f in SCHEMA if f.name not in drop])
    ordered = [rows[k] for k in sorted(rows)]
    for s in range(shards):
        part = [
            {f.name: r.get(f.name) for f in schema} | {"review": []} for r in ordered[s::shards]
        ]
        if "review" not in schema.names:
            part = [{k: v for k, v in r.items() if k != "review"} for r in part]
        pq.write_table(pa.Table.from_pylist(part, schema=schema), out / f"part-{s:05d}.parquet")
    (out / "part-00000.done.json").write_text(json.dumps({"turns": len(rows)}))
    return out


def _probs(rating: int, dissatisfied: bool) -> list[float]:
    # P(dissatisfied) = p1 + p2 decides the binary label whatever the argmax rating is.
    return [0.35, 0.35, 0.1, 0.1, 0.1] if dissatisfied else [0.05, 0.05, 0.3, 0.3, 0.3]


def base_rows(dialogues: Sequence[Dialogue]) -> Rows:
    return {
        (d.dialogue_id, t): {"dialogue_id": d.dialogue_id, "turn_index": t, "turn_id": turn.turn_id}
        for d in dialogues
        for t, turn in enumerate(d.turns)
    }


def reference_rows(dialogues: Sequence[Dialogue], conf: float = 0.9) -> Rows:
    """Predictions equal to the log's reference labels."""
    rows = base_rows(dialogues)
    for d in dialogues:
        tags = reference_tags(d)
        outcome = {g.goal_id: g.success for g in d.goals or []}
        for t, turn in enumerate(d.turns):
            row = rows[(d.dialogue_id, t)]
            row.update(
                intent=turn.intent,
                intent_confidence=conf,
                segment=tags[t] if tags else None,
                segment_confidence=conf,
                slots=[s.model_dump() | {"confidence": conf} for s in turn.slots or []],
                slots_confidence=conf,
            )
            if turn.goal_id is not None:
                row.update(
                    goal_id=f"p-{turn.goal_id}",
                    goal_success=outcome[turn.goal_id],
                    goal_success_confidence=conf,
                )
            if turn.satisfaction is not None:
                row.update(
                    satisfaction=turn.satisfaction,
                    satisfaction_probs=_probs(turn.satisfaction, turn.satisfaction <= 2),
                    satisfaction_confidence=conf,
                )
            for name in ("barge_in", "rephrase", "rejection", "explicit_feedback"):
                flag = getattr(turn, name)
                row[name] = None if flag is None else (conf if flag else 1 - conf)
    return rows


def gold_rows(dialogues: Sequence[Dialogue], seed: int = 0, conf: float = 0.9) -> Rows:
    """Predictions equal to the leave-one-out gold the evaluation computes with `seed`."""
    rows = reference_rows(dialogues, conf)
    gold = {task: gold_labels(task_items(dialogues, task), task, seed) for task in TASKS}
    empty = Gold([], [], [], None, "none")
    gold = {task: empty if g is None else g for task, g in gold.items()}
    for key, label in zip(gold["intent"].keys, gold["intent"].gold, strict=True):
        rows[key]["intent"] = label
    for key, spans in zip(gold["slots"].keys, gold["slots"].gold, strict=True):
        text = _texts(dialogues)[key]
        rows[key]["slots"] = [
            {"slot": s, "start": a, "end": b, "value": text[a:b], "confidence": conf}
            for s, a, b in sorted(spans)
        ]
    for (dialogue_id, _), tags in zip(gold["segment"].keys, gold["segment"].gold, strict=True):
        for t, tag in enumerate(tags):
            rows[(dialogue_id, t)]["segment"] = tag
    for key, success in zip(gold["goal_success"].keys, gold["goal_success"].gold, strict=True):
        rows[key].update(goal_id=rows[key].get("goal_id") or "p-x", goal_success=success)
    satisfaction = gold["satisfaction"]
    dissatisfied = dict(
        zip(gold["dissatisfaction"].keys, gold["dissatisfaction"].gold, strict=True)
    )
    for key, rating in zip(satisfaction.keys, satisfaction.gold, strict=True):
        rows[key].update(satisfaction=rating, satisfaction_probs=_probs(rating, dissatisfied[key]))
    return rows


TASKS = ("intent", "slots", "segment", "goal_success", "satisfaction", "dissatisfaction")


def _texts(dialogues: Sequence[Dialogue]) -> dict[tuple[str, int], str]:
    return {(d.dialogue_id, t): turn.user_text for d in dialogues for t, turn in enumerate(d.turns)}


def corrupt(
    rows: Rows, share: float, column: str, wrong: Callable[[Any], Any], low_conf: float = 0.3
) -> set[tuple[str, int]]:
    """Replaces `column` by `wrong(value)` on every k-th row with a value (k = 1/share), with a
    low confidence; returns the corrupted keys."""
    keys = [k for k in sorted(rows) if rows[k].get(column) is not None]
    step = round(1 / share)
    hit = set(keys[::step])
    for k in hit:
        rows[k][column] = wrong(rows[k][column])
        rows[k][f"{column}_confidence"] = low_conf
    return hit


@pytest.fixture(scope="session")
def synth_dialogues() -> list[Dialogue]:
    return list(generate(N_SYNTH, seed=3, config=SynthConfig(annotator_noise=0.2)))


@pytest.fixture(scope="session")
def synth_log(tmp_path_factory, synth_dialogues) -> Path:
    path = tmp_path_factory.mktemp("reference") / "synth.jsonl"
    lines = [json.dumps(d.to_json_dict()) for d in synth_dialogues]
    path.write_text("\n".join([*lines, '{"dialogue_id": "broken"}']) + "\n")
    return path
