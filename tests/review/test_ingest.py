from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from labelgen.data.readers import read_log
from labelgen.data.schema import Dialogue, TurnAnnotation
from labelgen.evaluation.consensus import majority_vote
from labelgen.evaluation.evaluate import evaluate
from labelgen.evaluation.gold import gold_labels, task_items
from labelgen.evaluation.items import segment_items, turn_items
from labelgen.review.export import export_tasks
from labelgen.review.ingest import ImportFormatError, annotator_name, import_annotations
from tests.review.conftest import EMOJI_TEXT, LabelStudio, dialogues

FIXTURE = Path(__file__).with_name("label_studio_export.json")
EMAIL_USER = {"id": 2, "first_name": "Ana", "last_name": "Ruiz", "email": "ana@example.org"}


def _project(labels: Path, log: Path, tmp_path: Path) -> LabelStudio:
    export_tasks(labels, log, tmp_path / "tasks.json")
    return LabelStudio(json.loads((tmp_path / "tasks.json").read_text()))


def _read(path: Path) -> dict[str, Dialogue]:
    items = list(read_log(path))
    assert all(isinstance(d, Dialogue) for d in items)
    return {d.dialogue_id: d for d in items}


def _turn(dialogues: dict[str, Dialogue], dialogue_id: str, turn_id: str):
    return next(t for t in dialogues[dialogue_id].turns if t.turn_id == turn_id)


def _slot(slot: str, text: str, surface: str) -> dict:
    start = text.index(surface)
    return {"slot": slot, "start": start, "end": start + len(surface), "value": surface}


def _annotation(annotator: str, **labels) -> TurnAnnotation:
    return TurnAnnotation.model_validate({"annotator": annotator, **labels})


def test_round_trip_gives_the_annotators_labels(labels, log, tmp_path):
    ls = _project(labels, log, tmp_path)
    # Annotator 7 fixes the intent and keeps the rest of d1/t0; on d2/u0 replaces the
    # model's wrong "song" span by an artist span and changes the rating; segments all of d5.
    ls.annotate("d1", "t0", 7, intent="PlaySong")
    ls.annotate(
        "d2",
        "u0",
        7,
        drop_spans=["Weeknd"],
        add_spans=[("artist", "the Weeknd")],
        satisfaction="4",
    )
    for turn_id, tag in (("d5:0", "B"), ("d5:1", "B"), ("d5:2", "O")):
        ls.annotate("d5", turn_id, 7, segment=tag, intent=None)
    # Annotator 2 (an export that names users by object) accepts d2/u0 as predicted, changes
    # d1/t0 and skips d5:1.
    ls.annotate("d1", "t0", EMAIL_USER, intent="PlaySong", satisfaction="1")
    ls.annotate("d2", "u0", EMAIL_USER)
    ls.annotate("d5", "d5:1", EMAIL_USER, cancel=True)
    out = tmp_path / "annotated.jsonl"
    summary = import_annotations(ls.export(tmp_path / "export.json"), log, out)

    assert summary["annotations"] == 7 and summary["cancelled"] == 1
    assert summary["rejected"] == 0 and summary["log_rejected"] == 0
    assert (summary["turns"], summary["dialogues"], summary["dialogues_written"]) == (5, 3, 5)
    assert summary["annotators"] == ["ana@example.org", "label-studio:7"]
    assert Path(summary["rejects_file"]).read_text() == ""

    got = _read(out)
    original = {d["dialogue_id"]: Dialogue.model_validate(d) for d in dialogues()}
    t0 = _turn(got, "d1", "t0")
    assert t0.annotations[:2] == original["d1"].turns[0].annotations  # kept, in place
    purple = _slot("song", "play Purple Haze", "Purple Haze")
    assert t0.annotations[2:] == [
        _annotation(
            "label-studio:7", intent="PlaySong", slots=[purple], satisfaction=2, segment="B"
        ),
        _annotation(
            "ana@example.org", intent="PlaySong", slots=[purple], satisfaction=1, segment="B"
        ),
    ]
    lights = _slot("song", EMOJI_TEXT, "Blinding Lights")
    assert _turn(got, "d2", "u0").annotations == [
        _annotation(
            "label-studio:7",
            intent="PlaySong",
            slots=[lights, _slot("artist", EMOJI_TEXT, "the Weeknd")],
            satisfaction=4,
            segment="B",
        ),
        _annotation(
            "ana@example.org",
            intent="PlaySong",
            slots=[lights, _slot("song", EMOJI_TEXT, "Weeknd")],
            satisfaction=3,
            segment="B",
        ),
    ]
    assert [_turn(got, "d5", f"d5:{t}").annotations for t in range(3)] == [
        [_annotation("label-studio:7", slots=[], satisfaction=4, segment=tag)]
        for tag in ("B", "B", "O")
    ]
    # everything else is the log as it was
    for dialogue_id, dialogue in original.items():
        stripped = got[dialogue_id].model_copy(deep=True)
        for turn, before in zip(stripped.turns, dialogue.turns, strict=True):
            turn.annotations = before.annotations
        assert stripped.to_json_dict() == dialogue.to_json_dict()


def test_imported_labels_enter_consensus_and_evaluation(labels, log, tmp_path):
    ls = _project(labels, log, tmp_path)
    ls.annotate("d1", "t0", 7, intent="PlaySong")
    ls.annotate("d1", "t0", EMAIL_USER, intent="PlaySong")
    for turn_id, tag in (("d5:0", "B"), ("d5:1", "B"), ("d5:2", "O")):
        ls.annotate("d5", turn_id, 7, segment=tag)
    out = tmp_path / "annotated.parquet"
    import_annotations(ls.export(tmp_path / "export.json"), log, out)
    before, after = list(_read(log).values()), list(_read(out).values())

    # d1/t0: a0 PlaySong, a1 PlayAlbum is a tie (to PlayAlbum); two more PlaySong votes win
    votes = dict(zip(*(lambda i: (i.ids, i.votes))(turn_items(after, "intent")), strict=True))
    assert votes["d1#0"] == [
        ("a0", "PlaySong"),
        ("a1", "PlayAlbum"),
        ("label-studio:7", "PlaySong"),
        ("ana@example.org", "PlaySong"),
    ]
    old = dict(zip(*(lambda i: (i.ids, i.votes))(turn_items(before, "intent")), strict=True))
    assert majority_vote([v for _, v in old["d1#0"]]) == "PlayAlbum"
    assert majority_vote([v for _, v in votes["d1#0"]]) == "PlaySong"
    # one annotator segmented every turn of d5: a vote on its whole segmentation
    segments = segment_items(after)
    assert ("label-studio:7", ("B", "B", "O")) in segments.votes[segments.ids.index("d5")]

    # leave-one-out gold exists for d1/t0's intent only now that it has 3 annotators or more
    assert gold_labels(task_items(before, "intent"), "intent").ids == []
    gold = gold_labels(task_items(after, "intent"), "intent")
    assert gold.ids == ["d1#0"] and gold.gold == ["PlaySong"]
    report = evaluate(labels, out, out_dir=tmp_path / "eval", n_resamples=10, make_plots=False)
    intent = report["tasks"]["intent"]
    assert intent["gold"] == "leave_one_out_consensus" and intent["items"] == 1
    assert intent["model"]["accuracy"]["value"] == 0.0  # the model said PlayAlbum


def test_real_label_studio_export(log, tmp_path):
    """A JSON export as Label Studio writes it: a user id and a user object as completed_by, a
    region kept from the prediction, one changed, one drawn, a skipped annotation, and a task
    nobody annotated (an export with all tasks)."""
    out = tmp_path / "annotated.jsonl"
    summary = import_annotations(FIXTURE, log, out)
    assert (summary["annotations"], summary["cancelled"], summary["unannotated_tasks"]) == (2, 1, 1)
    assert summary["rejected"] == 0
    got = _read(out)
    assert _turn(got, "d2", "u0").annotations == [
        _annotation(
            "label-studio:1",
            intent="PlaySong",
            slots=[
                _slot("song", EMOJI_TEXT, "Blinding Lights"),
                _slot("artist", EMOJI_TEXT, "the Weeknd"),
            ],
            satisfaction=4,
            segment="B",
        )
    ]
    assert _turn(got, "d1", "t0").annotations[2:] == [
        _annotation(
            "ana@example.org",
            intent="PlaySong",
            slots=[_slot("song", "play Purple Haze", "Purple Haze")],
            satisfaction=2,
            segment="B",
        )
    ]


def _regions(annotation: dict, name: str) -> list[dict]:
    return [r for r in annotation["result"] if r["from_name"] == name]


def test_records_that_cannot_be_mapped_are_rejected_with_their_reason(labels, log, tmp_path):
    ls = _project(labels, log, tmp_path)
    ls.annotate("d1", "t0", 7, intent="PlaySong")  # the one good record
    ls.annotate("d1", "t0", 7, intent="PlayAlbum")  # same annotator, same turn
    outside = ls.annotate("d2", "u0", 8, add_spans=[("artist", "the Weeknd")])
    _regions(outside, "slot")[-1]["value"] |= {"end": 99, "text": None}
    del _regions(outside, "slot")[-1]["value"]["text"]
    misread = ls.annotate("d2", "u0", 9)
    _regions(misread, "slot")[0]["value"]["text"] = "Blinding Light"
    ls.annotate("d5", "d5:0", 7, segment="X")
    stray = ls.annotate("d5", "d5:1", 7)
    stray["result"].append(copy.deepcopy(stray["result"][0]) | {"from_name": "sentiment"})
    ls.annotate("d5", "d5:2", {"first_name": "", "last_name": ""})
    template = ls.task("d1", "t0")
    for n, change in enumerate(
        [
            {"dialogue_id": "gone"},
            {"turn_id": "t9"},
            {"user": "play Purple Rain"},
            {"tasks": ["intent"]},
        ]
    ):
        task = copy.deepcopy(template)
        task["id"] = 90 + n
        task["data"] |= change
        for a in task["annotations"]:
            a["completed_by"] = 20 + n
        task["annotations"] = task["annotations"][:1]
        if "tasks" in change:
            task["annotations"][0]["result"] = []
        ls.tasks.append(task)
    ls.tasks.append({"id": 98, "data": {"text": "hi"}, "annotations": []})
    ls.tasks.append({"id": 99, "text": "hi", "sentiment": "Positive"})  # JSON_MIN
    export = ls.export(tmp_path / "export.json", all_tasks=True)

    out = tmp_path / "annotated.jsonl"
    summary = import_annotations(export, log, out)
    rejects = [json.loads(x) for x in Path(summary["rejects_file"]).read_text().splitlines()]
    expected = [
        ("task=40/", "already holds an annotation by 'label-studio:7'"),
        ("task=41/", "is outside the user text of length 36"),
        ("task=41/", "which reads 'Blinding Lights', not 'Blinding Light'"),
        ("task=42/", "segment: unknown label 'X'"),
        ("task=43/", "control 'sentiment' is not one of the review config's"),
        ("task=44/", "names no user"),
        ("task=90/", "dialogue_id 'gone' is not in the log"),
        ("task=91/", "turn_id 't9' is not in dialogue 'd1'"),
        ("task=92/", "the log changed since the export"),
        ("task=93/", "the annotation holds no labels"),
        ("task=98", "not a task written by `labelgen review export`"),
        ("task=99", "export the project in Label Studio's JSON format"),
    ]
    assert summary["rejected"] == len(rejects) == len(expected)
    got = sorted((r["source"].removeprefix(f"{export}#"), r["reason"]) for r in rejects)
    for (source, reason), (prefix, wanted) in zip(got, sorted(expected), strict=True):
        assert source.startswith(prefix) and wanted in reason, (source, reason)
    assert all(r["record"] for r in rejects)  # the raw record travels with its reason
    assert summary["annotations"] == 1 and summary["turns"] == 1
    assert _turn(_read(out), "d1", "t0").annotations[2].intent == "PlaySong"


def test_config_limits_intents_and_slot_names(labels, log, tmp_path):
    ls = _project(labels, log, tmp_path)
    ls.annotate("d1", "t0", 7, intent="Teleport", add_spans=[("planet", "Haze")])
    export = ls.export(tmp_path / "export.json")
    config = tmp_path / "tasks.json.config.xml"
    checked = import_annotations(export, log, tmp_path / "a.jsonl", config=config)
    assert checked["rejected"] == 1
    reason = json.loads(Path(checked["rejects_file"]).read_text())["reason"]
    assert reason == "intent: unknown label 'Teleport' (not in the labeling config)"
    unchecked = import_annotations(export, log, tmp_path / "b.jsonl")
    assert unchecked["annotations"] == 1


def test_utf16_offsets_of_old_label_studio_versions_are_mapped(labels, log, tmp_path):
    ls = _project(labels, log, tmp_path)
    annotation = ls.annotate("d2", "u0", 7)
    for region in _regions(annotation, "slot"):
        region["value"]["start"] += 1  # JavaScript counts the emoji as two units
        region["value"]["end"] += 1
    out = tmp_path / "annotated.jsonl"
    assert import_annotations(ls.export(tmp_path / "e.json"), log, out)["rejected"] == 0
    (annotation,) = _turn(_read(out), "d2", "u0").annotations
    assert [s.value for s in annotation.slots] == ["Blinding Lights", "Weeknd"]


def test_annotator_names():
    assert annotator_name(12) == "label-studio:12"
    assert annotator_name({"id": 12, "email": "x@y.org"}) == "x@y.org"
    assert annotator_name({"id": 12, "email": ""}) == "label-studio:12"
    assert annotator_name(None) is None and annotator_name(True) is None


def test_not_an_export(log, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ImportFormatError, match="is not JSON"):
        import_annotations(bad, log, tmp_path / "out.jsonl")
    bad.write_text(json.dumps({"data": {}}))
    with pytest.raises(ImportFormatError, match="a list of tasks"):
        import_annotations(bad, log, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()
    assert not (tmp_path / "out.jsonl.rejects.jsonl").exists()
