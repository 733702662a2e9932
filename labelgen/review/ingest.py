"""`labelgen review import`: a Label Studio JSON export of review tasks, back into the log as
per-annotator `TurnAnnotation`s.

A record is one annotation: one annotator's submitted answer to one task. It becomes one
`TurnAnnotation` on the task's turn, appended after the annotations the log already holds, or
a reject with its reason; cancelled (skipped) annotations are counted and left out. Mapping:
- annotator: the Label Studio user, as `completed_by` gives it. Current versions give the user
  id, which becomes `label-studio:<id>`; versions that give the user object name the user by
  email (or by id where it has none).
- intent, segment tag, satisfaction: the one choice of the `intent`, `segment` and
  `satisfaction` controls; absent where the annotator chose none.
- slots: one span per `slot` region. When the task showed slot labeling, a submission without
  spans says "no slots" (`[]`), as the contract means it. Offsets are code points into the
  user text; a region whose `text` does not read there is tried as UTF-16 offsets (what older
  Label Studio versions counted, which differ after an emoji), then rejected.
Rejected: a task that `labelgen review export` did not write; a dialogue or turn id the log
lacks, or a turn whose user text changed since the export; a span outside the text; a label
that is not one of the config's (segment and rating always, intents and slot names with
`--config`); a control the config does not have; an annotator who already labeled that turn
(importing an export again into its own output adds nothing twice); an annotation holding no labels.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from labelgen.data.canonical import CanonicalWriter
from labelgen.data.readers import read_log
from labelgen.data.rejects import Reject, RejectWriter
from labelgen.data.schema import Dialogue, Turn, explain
from labelgen.review.config import CONTROL, SATISFACTION_CHOICES, SEGMENT_CHOICES, read_config

CHOICE_TASKS = ("intent", "segment", "satisfaction")
_ALIASES = {
    "segment": {**{k: k for k in SEGMENT_CHOICES}, **{v: k for k, v in SEGMENT_CHOICES.items()}},
    "satisfaction": {
        **{k: k for k in SATISFACTION_CHOICES},
        **{v: k for k, v in SATISFACTION_CHOICES.items()},
    },
}
"""Choice as a result may hold it (alias, or shown value where a config lost its aliases) ->
label."""


class ImportFormatError(ValueError):
    """A file that is not a Label Studio JSON export at all."""


class _Unmappable(Exception):
    """Why one annotation cannot become a `TurnAnnotation`."""


@dataclass
class _Answer:
    """One annotation, parsed; text-dependent checks wait until its turn is read."""

    source: str
    record: dict[str, Any]
    dialogue_id: str
    turn_id: str
    seen_text: str
    annotator: str
    labels: dict[str, Any]
    spans: list[tuple[str, int, int, str | None]] | None


def import_annotations(
    export: str | Path,
    log: str | Path,
    out: str | Path,
    rejects: str | Path | None = None,
    config: str | Path | None = None,
    fmt: str = "auto",
) -> dict[str, Any]:
    """Writes `log` with the export's annotations added to `out`, rejects to `rejects`
    (default `<out>.rejects.jsonl`, which also keeps the log's own rejected records).

    Args:
        config: the labeling config the project used: intents and slot names outside it are
            rejected. Without it any intent and slot name is taken.

    Raises:
        ImportFormatError: `export` is not JSON, or not a list of tasks; `config` is not XML.
    """
    rejects = Path(rejects) if rejects is not None else Path(f"{out}.rejects.jsonl")
    try:
        allowed = read_config(config) if config is not None else None
    except (ValueError, OSError) as err:
        raise ImportFormatError(f"labeling config {config}: {err}") from err
    counts: Counter[str] = Counter()
    annotators: set[str] = set()
    with CanonicalWriter(out) as writer, RejectWriter(rejects) as reject_writer:
        pending = _read_export(Path(export), allowed, reject_writer, counts)
        for item in read_log(log, fmt):
            if isinstance(item, Reject):
                reject_writer.write(item)
                counts["log_rejected"] += 1
                continue
            answers = pending.pop(item.dialogue_id, [])
            if answers:
                _attach(item, answers, reject_writer, counts, annotators)
            writer.write(item)
        for answers in pending.values():
            for a in answers:
                reason = f"dialogue_id {a.dialogue_id!r} is not in the log"
                _reject(reject_writer, a, reason, counts)
    return {
        "annotations": counts["imported"],
        "annotators": sorted(annotators),
        "turns": counts["turns"],
        "dialogues": counts["dialogues"],
        "cancelled": counts["cancelled"],
        "unannotated_tasks": counts["unannotated"],
        "rejected": counts["rejected"],
        "log_rejected": counts["log_rejected"],
        "dialogues_written": writer.count,
        "out": str(out),
        "rejects_file": str(rejects),
    }


def _read_export(
    path: Path,
    allowed: dict[str, frozenset[str]] | None,
    rejects: RejectWriter,
    counts: Counter[str],
) -> dict[str, list[_Answer]]:
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ImportFormatError(f"{path} cannot be read: {err.strerror or err}") from err
    try:
        tasks = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise ImportFormatError(f"{path} is not JSON: {err}") from err
    if not isinstance(tasks, list):
        raise ImportFormatError(
            f"{path} is not a Label Studio JSON export (a list of tasks), got a "
            f"{type(tasks).__name__}"
        )
    pending: dict[str, list[_Answer]] = defaultdict(list)
    for i, task in enumerate(tasks):
        task_id = task.get("id", i) if isinstance(task, dict) else i
        where = f"{path}#task={task_id}"
        try:
            data = _task_data(task)
        except _Unmappable as err:
            rejects.write(Reject(where, str(err), task))
            counts["rejected"] += 1
            continue
        if not task["annotations"]:
            counts["unannotated"] += 1
        for j, annotation in enumerate(task["annotations"]):
            ann_id = annotation.get("id", j) if isinstance(annotation, dict) else j
            source = f"{where}/annotation={ann_id}"
            record = {"task": task_id, "data": _ids(data), "annotation": annotation}
            if isinstance(annotation, dict) and annotation.get("was_cancelled") is True:
                counts["cancelled"] += 1
                continue
            try:
                answer = _answer(annotation, data, allowed, source, record)
            except _Unmappable as err:
                rejects.write(Reject(source, str(err), record))
                counts["rejected"] += 1
                continue
            pending[answer.dialogue_id].append(answer)
    return pending


def _task_data(task: Any) -> dict[str, Any]:
    if not isinstance(task, dict):
        raise _Unmappable(f"a task must be a JSON object, got {type(task).__name__}")
    if not isinstance(task.get("annotations"), list):
        raise _Unmappable(
            "task has no annotations list: export the project in Label Studio's JSON format "
            "(JSON_MIN and CSV leave out who annotated)"
        )
    data = task.get("data")
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), str) for k in ("dialogue_id", "turn_id", "user")
    ):
        raise _Unmappable(
            "task data has no dialogue_id, turn_id and user text: not a task written by "
            "`labelgen review export`"
        )
    return data


def _ids(data: dict[str, Any]) -> dict[str, Any]:
    return {k: data.get(k) for k in ("dialogue_id", "turn_id", "turn_index")}


def _answer(
    annotation: Any,
    data: dict[str, Any],
    allowed: dict[str, frozenset[str]] | None,
    source: str,
    record: dict[str, Any],
) -> _Answer:
    if not isinstance(annotation, dict):
        raise _Unmappable(f"an annotation must be a JSON object, got {type(annotation).__name__}")
    annotator = annotator_name(annotation.get("completed_by"))
    if annotator is None:
        raise _Unmappable(f"completed_by {annotation.get('completed_by')!r} names no user")
    result = annotation.get("result")
    if not isinstance(result, list):
        raise _Unmappable("annotation has no result list")
    labels: dict[str, Any] = {}
    spans: list[tuple[str, int, int, str | None]] = []
    for region in result:
        if not isinstance(region, dict):
            raise _Unmappable(f"a result region must be a JSON object, got {region!r}")
        name = region.get("from_name")
        task = next((t for t, control in CONTROL.items() if control == name), None)
        if task is None:
            raise _Unmappable(f"control {name!r} is not one of the review config's")
        value = region.get("value")
        if not isinstance(value, dict):
            raise _Unmappable(f"{name} region has no value object")
        if task == "slots":
            spans.append(_span(value, allowed))
            continue
        if task in labels:
            raise _Unmappable(f"two {name} results in one annotation")
        labels[task] = _choice(task, value, allowed)
    shown = data.get("tasks")
    slots_shown = isinstance(shown, list) and "slots" in shown
    return _Answer(
        source,
        record,
        data["dialogue_id"],
        data["turn_id"],
        data["user"],
        annotator,
        labels,
        spans if spans or slots_shown else None,
    )


def annotator_name(completed_by: Any) -> str | None:
    """The annotator id for a Label Studio `completed_by` (a user id, or a user object)."""
    if isinstance(completed_by, dict):
        email = completed_by.get("email")
        if isinstance(email, str) and email.strip():
            return email.strip()
        completed_by = completed_by.get("id")
    if isinstance(completed_by, int) and not isinstance(completed_by, bool):
        return f"label-studio:{completed_by}"
    return None


def _choice(task: str, value: dict[str, Any], allowed: dict[str, frozenset[str]] | None) -> Any:
    choices = value.get("choices")
    if not (isinstance(choices, list) and len(choices) == 1 and isinstance(choices[0], str)):
        raise _Unmappable(f"{CONTROL[task]}: expected one choice, got {choices!r}")
    choice = choices[0]
    if task in _ALIASES:
        if choice not in _ALIASES[task]:
            raise _Unmappable(f"{CONTROL[task]}: unknown label {choice!r}")
        label = _ALIASES[task][choice]
        return int(label) if task == "satisfaction" else label
    if not choice.strip() or (allowed is not None and choice not in allowed.get(task, ())):
        raise _Unmappable(f"intent: unknown label {choice!r} (not in the labeling config)")
    return choice


def _span(
    value: dict[str, Any], allowed: dict[str, frozenset[str]] | None
) -> tuple[str, int, int, str | None]:
    labels, start, end, text = (value.get(k) for k in ("labels", "start", "end", "text"))
    if not (isinstance(labels, list) and len(labels) == 1 and isinstance(labels[0], str)):
        raise _Unmappable(f"slot: expected one label per span, got {labels!r}")
    slot = labels[0]
    if not slot.strip() or (allowed is not None and slot not in allowed.get(CONTROL["slots"], ())):
        raise _Unmappable(f"slot: unknown label {slot!r} (not in the labeling config)")
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in (start, end)):
        raise _Unmappable(f"slot {slot!r}: start and end must be integers, got {start!r}, {end!r}")
    if text is not None and not isinstance(text, str):
        raise _Unmappable(f"slot {slot!r}: text must be a string, got {text!r}")
    return slot, start, end, text


def _attach(
    dialogue: Dialogue,
    answers: list[_Answer],
    rejects: RejectWriter,
    counts: Counter[str],
    annotators: set[str],
) -> None:
    """Appends each answer to its turn in `dialogue`, or rejects it."""
    index = {turn.turn_id: i for i, turn in enumerate(dialogue.turns)}
    changed: set[int] = set()
    for a in answers:
        i = index.get(a.turn_id)
        if i is None:
            reason = f"turn_id {a.turn_id!r} is not in dialogue {a.dialogue_id!r}"
            _reject(rejects, a, reason, counts)
            continue
        try:
            dialogue.turns[i] = _annotated(dialogue.turns[i], a)
        except _Unmappable as err:
            _reject(rejects, a, str(err), counts)
            continue
        changed.add(i)
        annotators.add(a.annotator)
        counts["imported"] += 1
    counts["turns"] += len(changed)
    counts["dialogues"] += bool(changed)


def _annotated(turn: Turn, a: _Answer) -> Turn:
    """`turn` with the answer appended to its annotations."""
    if turn.user_text != a.seen_text:
        raise _Unmappable(
            f"the log's user text {turn.user_text!r} is not the {a.seen_text!r} the annotator "
            "labeled: the log changed since the export"
        )
    if any(x.annotator == a.annotator for x in turn.annotations or []):
        raise _Unmappable(f"the turn already holds an annotation by {a.annotator!r}")
    annotation: dict[str, Any] = {"annotator": a.annotator, **a.labels}
    if a.spans is not None:
        annotation["slots"] = [_locate(turn.user_text, *span) for span in a.spans]
    if len(annotation) == 1:
        raise _Unmappable("the annotation holds no labels")
    raw = turn.model_dump(mode="json", exclude_none=True)
    raw["annotations"] = [*raw.get("annotations", []), annotation]
    try:
        return Turn.model_validate(raw)
    except ValidationError as err:
        raise _Unmappable(explain(err)) from err


def _locate(text: str, slot: str, start: int, end: int, seen: str | None) -> dict[str, Any]:
    """A span as canonical code point offsets into `text`."""
    found = [(start, end)] if seen is None or text[start:end] == seen else []
    if not found and seen is not None:
        utf16 = _from_utf16(text, start, end)
        if utf16 is not None and text[utf16[0] : utf16[1]] == seen:
            found = [utf16]
    if not found:
        reads = f", which reads {text[start:end]!r}, not {seen!r}" if start < len(text) else ""
        raise _Unmappable(
            f"slot {slot!r} span [{start}, {end}) does not fit the user text of length "
            f"{len(text)}{reads}"
        )
    s, e = found[0]
    if not 0 <= s < e <= len(text):
        raise _Unmappable(
            f"slot {slot!r} span [{s}, {e}) is outside the user text of length {len(text)} or empty"
        )
    return {"slot": slot, "start": s, "end": e, "value": text[s:e]}


def _from_utf16(text: str, start: int, end: int) -> tuple[int, int] | None:
    """UTF-16 code unit offsets (JavaScript string indices) as code point offsets."""
    units, positions = 0, {0: 0}
    for i, char in enumerate(text, start=1):
        units += 2 if ord(char) > 0xFFFF else 1
        positions[units] = i
    if start not in positions or end not in positions:
        return None
    return positions[start], positions[end]


def _reject(rejects: RejectWriter, a: _Answer, reason: str, counts: Counter[str]) -> None:
    rejects.write(Reject(a.source, reason, a.record))
    counts["rejected"] += 1
