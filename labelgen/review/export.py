"""`labelgen review export`: the turns sent to review, as Label Studio tasks pre-annotated with
the model's labels.

One task per turn whose `review` list names an exported task, with the whole dialogue shown
above it as context. Why a turn and not a dialogue:
- review is per turn: the labeler flags turns, and a dialogue of twenty turns with one doubtful
  intent should cost one judgement, not twenty;
- a per-turn task has one `Text` object holding exactly the user utterance, so Label Studio's
  span offsets are offsets into `user_text`, as the canonical form counts them, with no
  mapping back from a transcript;
- Label Studio has no supported way to repeat per-turn controls over a dialogue of any length
  (its `Repeater` tag is marked for deprecation and gone from the docs, which once excluded
  `Labels` from it), and per-region choices on `Paragraphs` would make annotators select a
  turn's text before they could label it;
- the leave-one-out baseline draws one human per turn, so a turn is what one annotator labels.
Goal segmentation is the exception that the evaluation sees whole: a dialogue's segmentation
only counts for an annotator who tagged every turn of it (`evaluation.items.segment_items`).
So when any turn of a dialogue needs its segment tag reviewed, every turn of that dialogue
becomes a task (tasks keep log order, so that with Label Studio's sequential sampling an
annotator meets a dialogue's turns one after another).

Each task shows every exported task's controls, pre-filled with the model's labels (`score` is
its confidence: the lowest among the labels under review on the task, per span on slot spans),
so the annotator confirms or corrects the whole turn, and its header names what the model was
unsure of. Slot spans are character (code point) offsets into the user text, as the canonical
form counts them and as Label Studio stores them since it stopped counting JavaScript UTF-16
units (HumanSignal/label-studio PR 1559; `ingest` still maps such offsets back).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from labelgen.data.atomic import AtomicFile
from labelgen.data.readers import read_log
from labelgen.data.rejects import Reject
from labelgen.data.schema import Dialogue
from labelgen.review.config import (
    CONTROL,
    REVIEW_TASKS,
    SYSTEM,
    USER,
    Vocabulary,
    labeling_config,
)

COLUMNS = (
    "dialogue_id",
    "turn_index",
    "turn_id",
    "intent",
    "intent_confidence",
    "segment",
    "segment_confidence",
    "slots",
    "slots_confidence",
    "satisfaction",
    "satisfaction_confidence",
    "review",
)
"""The columns of `labelgen label` output that review reads."""
THIS_TURN = " (this turn)"


class ExportError(ValueError):
    """Label output that cannot be exported (missing, or not `labelgen label` output)."""


@dataclass
class _Labels:
    """The label rows of the dialogues that have a turn to review, and what was counted."""

    rows: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)
    intents: set[str] = field(default_factory=set)
    slots: set[str] = field(default_factory=set)
    flagged: Counter[str] = field(default_factory=Counter)
    """Turns whose review list names each task (exported or not)."""
    not_exported: int = 0
    """Turns flagged only for tasks this export leaves out."""
    model_version: str = "labelgen"


def export_tasks(
    labels: str | Path,
    log: str | Path,
    out: str | Path,
    config_out: str | Path | None = None,
    tasks: Sequence[str] = REVIEW_TASKS,
    fmt: str = "auto",
    model: str | Path | None = None,
) -> dict[str, Any]:
    """Writes the Label Studio tasks (`out`, a JSON list) and their labeling config.

    Args:
        labels: `labelgen label` output (part-*.parquet).
        log: the log that was labeled; it supplies the texts the labels omit.
        config_out: the labeling config XML; default `<out>.config.xml`.
        tasks: which of `REVIEW_TASKS` to review.
        model: an exported model directory whose full intent and slot vocabularies the config
            offers; without it, the labels and the log's own labels make the vocabulary.

    Raises:
        ExportError: `labels` holds no label shards, or `tasks` names an unknown task.
    """
    unknown = [t for t in tasks if t not in REVIEW_TASKS]
    if unknown or not tasks:
        what = ", ".join(unknown) or "nothing"
        raise ExportError(f"cannot review {what}; choose from {', '.join(REVIEW_TASKS)}")
    out = Path(out)
    config_out = Path(config_out) if config_out is not None else Path(f"{out}.config.xml")
    found = _read_labels(Path(labels), tasks)
    intents, slots = set(found.intents), set(found.slots)
    if model is not None:
        intents, slots = _model_vocabulary(Path(model), intents, slots)
    counts: Counter[str] = Counter()
    # Written as the log streams by; the file appears only once complete.
    written = AtomicFile(out, "w")
    try:
        written.handle.write("[")
        for n, task in enumerate(_tasks(log, fmt, found, tasks, counts, intents, slots)):
            written.handle.write(("\n" if n == 0 else ",\n") + json.dumps(task, ensure_ascii=False))
        written.handle.write("\n]\n")
    except BaseException:
        written.close(commit=False)
        raise
    written.close()
    config = AtomicFile(config_out, "w")
    config.handle.write(labeling_config(tasks, Vocabulary.of(intents, slots)))
    config.close()
    return {
        "tasks": counts["tasks"],
        "dialogues": counts["dialogues"],
        "review_turns": {t: found.flagged[t] for t in sorted(found.flagged)},
        "context_turns": counts["context"],
        "not_exported_turns": found.not_exported,
        "dialogues_missing_from_log": len(found.rows) - counts["seen"],
        "dialogues_mismatched": counts["mismatched"],
        "log_rejected": counts["log_rejected"],
        "out": str(out),
        "config": str(config_out),
    }


def _read_labels(path: Path, tasks: Sequence[str]) -> _Labels:
    files = sorted(path.glob("part-*.parquet")) if path.is_dir() else []
    if not files:
        raise ExportError(f"{path} holds no part-*.parquet label shards (`labelgen label` output)")
    found = _Labels()
    manifest = path / "_manifest.json"
    if manifest.is_file():
        found.model_version = str(json.loads(manifest.read_text()).get("model", "labelgen"))
    wanted = set(tasks)
    for file in files:
        # One shard at a time (a dialogue never spans shards): memory holds one shard and the
        # rows of the dialogues to review.
        names = pq.read_schema(file).names
        for required in ("dialogue_id", "turn_index", "review"):
            if required not in names:
                raise ExportError(f"{file} has no {required!r} column: not `labelgen label` output")
        table = pq.read_table(file, columns=[c for c in COLUMNS if c in names])
        _vocabulary(table, found)
        selected = set()
        for dialogue_id, review in zip(
            table.column("dialogue_id").to_pylist(), table.column("review").to_pylist(), strict=True
        ):
            review = set(review or ())
            found.flagged.update(review)
            if review & wanted:
                selected.add(dialogue_id)
            elif review:
                found.not_exported += 1
        if selected:
            keep = table.filter(pc.is_in(table.column("dialogue_id"), pa.array(sorted(selected))))
            for row in keep.to_pylist():
                found.rows.setdefault(row["dialogue_id"], {})[row["turn_index"]] = row
    return found


def _vocabulary(table: pa.Table, found: _Labels) -> None:
    if "intent" in table.column_names:
        found.intents.update(v for v in pc.unique(table.column("intent")).to_pylist() if v)
    if "slots" in table.column_names and pa.types.is_list(table.schema.field("slots").type):
        spans = pc.list_flatten(table.column("slots"))
        if len(spans):
            names = pc.unique(pc.struct_field(spans, "slot")).to_pylist()
            found.slots.update(v for v in names if v)


def _model_vocabulary(model: Path, intents: set[str], slots: set[str]) -> tuple[set, set]:
    space = model / "feature_space.json"
    if not space.is_file():
        raise ExportError(f"{model} has no feature_space.json: not an exported model directory")
    saved = json.loads(space.read_text())
    return intents | set(saved.get("intents", ())), slots | set(saved.get("slots", ()))


def _tasks(
    log: str | Path,
    fmt: str,
    found: _Labels,
    tasks: Sequence[str],
    counts: Counter[str],
    intents: set[str],
    slots: set[str],
) -> Iterator[dict[str, Any]]:
    for item in read_log(log, fmt):
        if isinstance(item, Reject):
            counts["log_rejected"] += 1
            continue
        # The log's own labels join the vocabulary: an annotator may need any of them.
        for turn in item.turns:
            for source in (turn, *(turn.annotations or [])):
                if source.intent:
                    intents.add(source.intent)
                slots.update(s.slot for s in source.slots or [])
        rows = found.rows.get(item.dialogue_id)
        if rows is None:
            continue
        counts["seen"] += 1
        if any(
            t >= len(item.turns) or row.get("turn_id") not in (None, item.turns[t].turn_id)
            for t, row in rows.items()
        ):
            counts["mismatched"] += 1  # labels of another version of this log
            continue
        counts["dialogues"] += 1
        yield from _dialogue_tasks(item, rows, tasks, counts, found.model_version)


def _dialogue_tasks(
    dialogue: Dialogue,
    rows: dict[int, dict[str, Any]],
    tasks: Sequence[str],
    counts: Counter[str],
    model_version: str,
) -> Iterator[dict[str, Any]]:
    review = {t: [x for x in rows[t]["review"] or () if x in tasks] for t in rows}
    whole = "segment" in tasks and any("segment" in r for r in review.values())
    for t, turn in enumerate(dialogue.turns):
        reasons = review.get(t, [])
        if not reasons and not whole:
            continue
        row = rows.get(t, {})
        counts["tasks"] += 1
        counts["context"] += not reasons
        unsure = ", ".join(_reason(x, row.get(f"{x}_confidence")) for x in reasons)
        heading = f"Dialogue {dialogue.dialogue_id}, turn {t + 1} of {len(dialogue.turns)}. " + (
            f"The model is unsure of: {unsure}."
            if reasons
            else "Shown so that the whole dialogue gets segment tags."
        )
        task: dict[str, Any] = {
            "data": {
                "dialogue_id": dialogue.dialogue_id,
                "turn_id": turn.turn_id,
                "turn_index": t,
                "user": turn.user_text,
                "system": turn.system_text or "",
                "dialogue": _paragraphs(dialogue, t),
                "heading": heading,
                "review": reasons,
                "tasks": list(tasks),
            }
        }
        result = _prediction(row, tasks, turn.user_text, counts["tasks"])
        if result:
            confidences = [row.get(f"{x}_confidence") for x in reasons or tasks]
            confidences = [c for c in confidences if c is not None]
            prediction: dict[str, Any] = {"model_version": model_version, "result": result}
            if confidences:
                prediction["score"] = min(confidences)
            task["predictions"] = [prediction]
        yield task


def _reason(task: str, confidence: float | None) -> str:
    return task if confidence is None else f"{task} ({confidence:.2f})"


def _paragraphs(dialogue: Dialogue, current: int) -> list[dict[str, str]]:
    out = []
    if dialogue.system_opening:
        out.append({"author": SYSTEM, "text": dialogue.system_opening})
    for t, turn in enumerate(dialogue.turns):
        mark = THIS_TURN if t == current else ""
        out.append({"author": USER + mark, "text": turn.user_text})
        if turn.system_text is not None:
            out.append({"author": SYSTEM + mark, "text": turn.system_text})
    return out


def _prediction(
    row: dict[str, Any], tasks: Sequence[str], text: str, number: int
) -> list[dict[str, Any]]:
    """The model's labels for one turn as Label Studio result regions."""
    result = []
    for task in ("intent", "segment"):
        if task in tasks and row.get(task) is not None:
            result.append(_choice(f"{number}-{task}", task, USER, str(row[task])))
    if "satisfaction" in tasks and row.get("satisfaction") is not None:
        result.append(
            _choice(f"{number}-satisfaction", "satisfaction", SYSTEM, str(row["satisfaction"]))
        )
    if "slots" in tasks:
        for j, span in enumerate(row.get("slots") or ()):
            value: dict[str, Any] = {
                "start": span["start"],
                "end": span["end"],
                "text": text[span["start"] : span["end"]],
                "labels": [span["slot"]],
            }
            if span.get("confidence") is not None:
                value["score"] = span["confidence"]
            result.append(
                {
                    "id": f"{number}-slot-{j}",
                    "from_name": CONTROL["slots"],
                    "to_name": USER,
                    "type": "labels",
                    "value": value,
                }
            )
    return result


def _choice(region: str, task: str, to_name: str, choice: str) -> dict[str, Any]:
    return {
        "id": region,
        "from_name": CONTROL[task],
        "to_name": to_name,
        "type": "choices",
        "value": {"choices": [choice]},
    }
