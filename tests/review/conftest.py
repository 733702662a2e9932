"""A small log, `labelgen label` rows for it, and Label Studio as it imports tasks and exports
annotations (ids, timestamps, prediction copies and region origins as Label Studio writes them:
docs/source/guide/export.md and predictions.md in HumanSignal/label-studio)."""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from labelgen.labeling.writer import LABEL_SCHEMA
from tests.conftest import full_dialogue

EMOJI_TEXT = "🎵 play Blinding Lights by the Weeknd"
"""An astral character first: code point and UTF-16 offsets of every span after it differ."""


def dialogues() -> list[dict[str, Any]]:
    d1 = full_dialogue("d1")  # turn t0 holds annotations by a0 and a1 already
    d2 = {
        "dialogue_id": "d2",
        "turns": [
            {"turn_id": "u0", "user_text": EMOJI_TEXT, "system_text": "Playing Blinding Lights."},
            {"turn_id": "u1", "user_text": "louder", "system_text": "Volume up."},
        ],
    }
    d3 = {  # nothing to review
        "dialogue_id": "d3",
        "turns": [{"user_text": "what time is it", "system_text": "It is noon."}],
    }
    d4 = {  # only goal success is doubtful: not something review exports
        "dialogue_id": "d4",
        "turns": [{"user_text": "book a table", "system_text": "Done."}],
    }
    d5 = {  # one doubtful segment tag: the whole dialogue is exported
        "dialogue_id": "d5",
        "turns": [
            {"user_text": "set an alarm for 7 am", "system_text": "Alarm set."},
            {"user_text": "and what's the weather", "system_text": "Sunny."},
            {"user_text": "thanks", "system_text": "Bye."},
        ],
    }
    return [d1, d2, d3, d4, d5]


def label_row(
    dialogue_id: str, t: int, turn_id: str, review: Sequence[str] = (), **labels: Any
) -> dict[str, Any]:
    """One `labelgen label` row: confident defaults, overridden by `labels`."""
    row = {
        "dialogue_id": dialogue_id,
        "turn_index": t,
        "turn_id": turn_id,
        "intent": "PlaySong",
        "intent_confidence": 0.95,
        "segment": "B" if t == 0 else "I",
        "segment_confidence": 0.9,
        "slots": [],
        "slots_confidence": 0.97,
        "satisfaction": 4,
        "satisfaction_confidence": 0.8,
        "goal_success": True,
        "goal_success_confidence": 0.9,
        "review": list(review),
    }
    return row | labels


def span(slot: str, text: str, surface: str, confidence: float = 0.9) -> dict[str, Any]:
    start = text.index(surface)
    end = start + len(surface)
    return {"slot": slot, "start": start, "end": end, "value": surface, "confidence": confidence}


def label_rows() -> list[dict[str, Any]]:
    return [
        label_row(
            "d1",
            0,
            "t0",
            ["intent"],
            intent="PlayAlbum",
            intent_confidence=0.41,
            slots=[span("song", "play Purple Haze", "Purple Haze")],
            satisfaction=2,
        ),
        label_row("d1", 1, "t1"),
        label_row("d1", 2, "t2"),
        label_row(
            "d2",
            0,
            "u0",
            ["slots", "satisfaction"],
            slots=[
                span("song", EMOJI_TEXT, "Blinding Lights", 0.93),
                span("song", EMOJI_TEXT, "Weeknd", 0.35),  # should be the artist
            ],
            slots_confidence=0.35,
            satisfaction=3,
            satisfaction_confidence=0.44,
        ),
        label_row("d2", 1, "u1", intent="VolumeUp"),
        label_row("d3", 0, "d3:0", intent="GetTime"),
        label_row("d4", 0, "d4:0", ["goal_success"], intent="ReserveRestaurant"),
        label_row("d5", 0, "d5:0", intent="AddAlarm"),
        label_row("d5", 1, "d5:1", ["segment"], intent="GetWeather", segment_confidence=0.52),
        label_row("d5", 2, "d5:2", intent="GOODBYE", segment="O"),
    ]


def write_labels(out: Path, rows: list[dict[str, Any]]) -> Path:
    """`rows` as `labelgen label` output: two shards, split between dialogues."""
    out.mkdir(parents=True, exist_ok=True)
    first = [r for r in rows if r["dialogue_id"] in ("d1", "d2")]
    for n, part in enumerate((first, [r for r in rows if r not in first])):
        full = [{f.name: r.get(f.name) for f in LABEL_SCHEMA} for r in part]
        table = pa.Table.from_pylist(full, schema=LABEL_SCHEMA)
        pq.write_table(table, out / f"part-{n:06d}.parquet")
    (out / "_manifest.json").write_text(json.dumps({"model": "runs/model"}))
    return out


@pytest.fixture
def log(tmp_path) -> Path:
    path = tmp_path / "log.jsonl"
    path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in dialogues()))
    return path


@pytest.fixture
def labels(tmp_path) -> Path:
    return write_labels(tmp_path / "labels", label_rows())


# ---- Label Studio, simulated -------------------------------------------------------------------

KEEP = object()
"""Leave the pre-annotation as the model made it."""


class LabelStudio:
    """A project: imports tasks (assigning ids and storing predictions as Label Studio does),
    takes annotators' answers, exports the project in Label Studio's JSON format."""

    def __init__(self, tasks: list[dict[str, Any]], project: int = 3) -> None:
        self.project = project
        self.ids = itertools.count(101)
        self.tasks = []
        for i, task in enumerate(tasks):
            task_id = 40 + i
            predictions = [
                {
                    "id": next(self.ids),
                    "result": copy.deepcopy(p["result"]),
                    "model_version": p.get("model_version", ""),
                    "created_ago": "2 hours, 5 minutes",
                    "score": p.get("score"),
                    "cluster": None,
                    "neighbors": None,
                    "mislabeling": 0.0,
                    "created_at": "2025-03-04T09:12:31.870364Z",
                    "updated_at": "2025-03-04T09:12:31.870388Z",
                    "model": None,
                    "model_run": None,
                    "task": task_id,
                    "project": project,
                }
                for p in task.get("predictions", [])
            ]
            self.tasks.append(
                {
                    "id": task_id,
                    "annotations": [],
                    "file_upload": "2f1c9e0a-tasks.json",
                    "drafts": [],
                    "predictions": predictions,
                    "data": copy.deepcopy(task["data"]),
                    "meta": {},
                    "created_at": "2025-03-04T09:12:31.712345Z",
                    "updated_at": "2025-03-04T11:40:02.118823Z",
                    "inner_id": i + 1,
                    "total_annotations": 0,
                    "cancelled_annotations": 0,
                    "total_predictions": len(predictions),
                    "comment_count": 0,
                    "unresolved_comment_count": 0,
                    "last_comment_updated_at": None,
                    "project": project,
                    "updated_by": None,
                    "comment_authors": [],
                }
            )

    def task(self, dialogue_id: str, turn_id: str) -> dict[str, Any]:
        return next(
            t
            for t in self.tasks
            if (t["data"]["dialogue_id"], t["data"]["turn_id"]) == (dialogue_id, turn_id)
        )

    def annotate(
        self,
        dialogue_id: str,
        turn_id: str,
        user: int | dict[str, Any],
        *,
        intent: Any = KEEP,
        segment: Any = KEEP,
        satisfaction: Any = KEEP,
        drop_spans: Sequence[str] = (),
        add_spans: Sequence[tuple[str, str]] = (),
        cancel: bool = False,
    ) -> dict[str, Any]:
        """One submitted annotation, starting from the prediction as Label Studio pre-fills
        it: regions kept are `origin: prediction`, changed ones `prediction-changed`, drawn
        ones `manual` with a fresh id. `None` clears a choice; `drop_spans` removes spans by
        surface text; `add_spans` marks (slot, surface text)."""
        task = self.task(dialogue_id, turn_id)
        prediction = task["predictions"][0] if task["predictions"] else None
        result = []
        for region in copy.deepcopy(prediction["result"] if prediction else []):
            region["origin"] = "prediction"
            value = region["value"]
            value.pop("score", None)
            wanted = {"intent": intent, "segment": segment, "satisfaction": satisfaction}.get(
                region["from_name"], KEEP
            )
            if region["type"] == "labels" and value["text"] in drop_spans:
                continue
            if wanted is None:
                continue
            if wanted is not KEEP and [wanted] != value["choices"]:
                value["choices"] = [wanted]
                region["origin"] = "prediction-changed"
            result.append(region)
        present = {r["from_name"] for r in result}
        for name, wanted, to_name in (
            ("intent", intent, "user"),
            ("segment", segment, "user"),
            ("satisfaction", satisfaction, "system"),
        ):
            if wanted not in (KEEP, None) and name not in present:
                result.append(self._region(name, to_name, "choices", {"choices": [wanted]}))
        text = task["data"]["user"]
        for slot, surface in add_spans:
            start = text.index(surface)
            value = {"start": start, "end": start + len(surface), "text": surface, "labels": [slot]}
            result.append(self._region("slot", "user", "labels", value))
        if cancel:
            result = []
        annotation = {
            "id": next(self.ids),
            "completed_by": user,
            "result": result,
            "was_cancelled": cancel,
            "ground_truth": False,
            "created_at": "2025-03-04T11:40:02.091200Z",
            "updated_at": "2025-03-04T11:40:02.091224Z",
            "draft_created_at": "2025-03-04T11:39:41.512033Z",
            "lead_time": 21.874,
            "prediction": {},
            "result_count": 0,
            "unique_id": f"6a3d0c4e-{next(self.ids):04d}-4b1f-9a55-0c2e7d1f8b3a",
            "import_id": None,
            "last_action": None,
            "bulk_created": False,
            "task": task["id"],
            "project": self.project,
            "updated_by": user if isinstance(user, int) else user.get("id"),
            "parent_prediction": prediction["id"] if prediction else None,
            "parent_annotation": None,
            "last_created_by": None,
        }
        task["annotations"].append(annotation)
        task["total_annotations"] += not cancel
        task["cancelled_annotations"] += cancel
        return annotation

    def _region(self, name: str, to_name: str, kind: str, value: dict) -> dict[str, Any]:
        return {
            "value": value,
            "id": f"m{next(self.ids):09d}",
            "from_name": name,
            "to_name": to_name,
            "type": kind,
            "origin": "manual",
        }

    def export(self, path: Path, all_tasks: bool = False) -> Path:
        """The JSON export (by default, as Label Studio does, only tasks with annotations)."""
        tasks = [t for t in self.tasks if all_tasks or t.get("annotations")]
        path.write_text(json.dumps(tasks, ensure_ascii=False))
        return path
