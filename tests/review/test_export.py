from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from labelgen.review.config import read_config
from labelgen.review.export import ExportError, export_tasks
from tests.review.conftest import EMOJI_TEXT, label_row, write_labels


def _export(labels, log, tmp_path, **kwargs):
    out = tmp_path / "tasks.json"
    summary = export_tasks(labels, log, out, **kwargs)
    return summary, json.loads(out.read_text())


def test_turns_under_threshold_become_pre_annotated_tasks(labels, log, tmp_path):
    summary, tasks = _export(labels, log, tmp_path)
    keys = [(t["data"]["dialogue_id"], t["data"]["turn_id"]) for t in tasks]
    # d1/t0 (intent) and d2/u0 (slots, satisfaction); d5 whole, for its one segment doubt;
    # d3 (nothing doubtful) and d4 (goal success only) are not exported. Log order.
    assert keys == [("d1", "t0"), ("d2", "u0"), ("d5", "d5:0"), ("d5", "d5:1"), ("d5", "d5:2")]
    assert summary["tasks"] == 5 and summary["dialogues"] == 3
    assert summary["context_turns"] == 2 and summary["not_exported_turns"] == 1
    assert summary["review_turns"] == {
        "goal_success": 1,
        "intent": 1,
        "satisfaction": 1,
        "segment": 1,
        "slots": 1,
    }
    data = tasks[1]["data"]
    assert data["user"] == EMOJI_TEXT and data["system"] == "Playing Blinding Lights."
    assert data["review"] == ["slots", "satisfaction"]
    assert data["dialogue"][:2] == [
        {"author": "user (this turn)", "text": EMOJI_TEXT},
        {"author": "system (this turn)", "text": "Playing Blinding Lights."},
    ]
    assert "slots (0.35), satisfaction (0.44)" in data["heading"]
    d1 = tasks[0]["data"]["dialogue"]
    assert d1[0] == {"author": "system", "text": "Hi, what can I do for you?"}  # the opening
    assert tasks[2]["data"]["review"] == [] and tasks[3]["data"]["review"] == ["segment"]


def test_predictions_carry_the_models_labels_and_confidences(labels, log, tmp_path):
    _, tasks = _export(labels, log, tmp_path)
    prediction = tasks[1]["predictions"][0]
    assert prediction["model_version"] == "runs/model"
    assert prediction["score"] == 0.35  # the least sure of the labels under review
    regions = {(r["from_name"], r["value"].get("text")): r for r in prediction["result"]}
    assert {name for name, _ in regions} == {"intent", "segment", "satisfaction", "slot"}
    assert regions["satisfaction", None]["value"] == {"choices": ["3"]}
    assert regions["satisfaction", None]["to_name"] == "system"
    assert regions["segment", None]["value"] == {"choices": ["B"]}
    for surface, score in (("Blinding Lights", 0.93), ("Weeknd", 0.35)):
        region = regions["slot", surface]
        assert region["type"] == "labels" and region["to_name"] == "user"
        value = region["value"]
        # code point offsets into the user text, exactly as the canonical form has them
        assert EMOJI_TEXT[value["start"] : value["end"]] == surface
        assert value["labels"] == ["song"] and value["score"] == score
    ids = [r["id"] for t in tasks for r in t["predictions"][0]["result"]]
    assert len(ids) == len(set(ids))


def test_config_offers_every_label_the_predictions_use(labels, log, tmp_path):
    _export(labels, log, tmp_path)
    config = tmp_path / "tasks.json.config.xml"
    root = ET.parse(config).getroot()
    assert root.tag == "View"
    tags = {e.attrib["name"]: e.tag for e in root.iter() if "name" in e.attrib}
    assert tags == {
        "dialogue": "Paragraphs",
        "user": "Text",
        "system": "Text",
        "slot": "Labels",
        "intent": "Choices",
        "segment": "Choices",
        "satisfaction": "Choices",
    }
    allowed = read_config(config)
    assert allowed["segment"] == {"B", "I", "O"}
    assert allowed["satisfaction"] == {"1", "2", "3", "4", "5"}
    # the labels' intents and the log's own (reference and annotators') join the vocabulary
    assert {"PlaySong", "PlayAlbum", "GetTime", "GOODBYE"} <= allowed["intent"]
    assert allowed["slot"] == {"song"}
    for task in json.loads((tmp_path / "tasks.json").read_text()):
        for region in task["predictions"][0]["result"]:
            value = region["value"]
            for label in value.get("choices", []) + value.get("labels", []):
                assert label in allowed[region["from_name"]]


def test_a_subset_of_tasks_exports_only_those(labels, log, tmp_path):
    summary, tasks = _export(labels, log, tmp_path, tasks=["intent"])
    assert [t["data"]["turn_id"] for t in tasks] == ["t0"]
    assert {r["from_name"] for r in tasks[0]["predictions"][0]["result"]} == {"intent"}
    assert tasks[0]["data"]["tasks"] == ["intent"]
    assert summary["not_exported_turns"] == 3  # d2/u0, d4, d5:1
    config = read_config(tmp_path / "tasks.json.config.xml")
    assert set(config) == {"intent"}


def test_model_vocabulary_and_config_path(labels, log, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "feature_space.json").write_text(
        json.dumps({"intents": ["Teleport"], "slots": ["planet"]})
    )
    _export(labels, log, tmp_path, model=model, config_out=tmp_path / "c.xml")
    allowed = read_config(tmp_path / "c.xml")
    assert "Teleport" in allowed["intent"] and allowed["slot"] == {"song", "planet"}


def test_labels_of_another_log_are_counted_not_exported(log, tmp_path):
    rows = [label_row("d1", 0, "other-id", ["intent"]), label_row("zz", 0, "zz:0", ["intent"])]
    summary, tasks = _export(write_labels(tmp_path / "labels", rows), log, tmp_path)
    assert tasks == []
    assert summary["dialogues_mismatched"] == 1 and summary["dialogues_missing_from_log"] == 1


def test_refusals(log, tmp_path):
    with pytest.raises(ExportError, match="no part-"):
        export_tasks(tmp_path, log, tmp_path / "t.json")
    labels = write_labels(tmp_path / "labels", [label_row("d1", 0, "t0")])
    with pytest.raises(ExportError, match="cannot review goal_success"):
        export_tasks(labels, log, tmp_path / "t.json", tasks=["goal_success"])
    assert not (tmp_path / "t.json").exists()
