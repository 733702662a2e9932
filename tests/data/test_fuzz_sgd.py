"""Fuzz tests of the SGD reader: an input record is an element of a file's JSON array, and the
unparseable rest of a damaged file is one more. Valid SGD dialogues are generated, some broken
on purpose, files cut or damaged byte by byte; every record must come out accepted or rejected
with a reason, and untouched dialogues must read as written."""

from __future__ import annotations

import gzip
import json
import re
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labelgen.data.readers import read_log
from labelgen.data.rejects import Reject
from labelgen.data.schema import Dialogue
from tests.data.fuzzing import FUZZ, check_items, damage, read_in_tmp, texts
from tests.data.test_sgd import SCHEMA

ACTS = ["INFORM", "REQUEST", "OFFER", "CONFIRM", "NEGATE", "REQUEST_ALTS", "NOTIFY_SUCCESS"]


@st.composite
def utterances(draw: st.DrawFn, speaker: str) -> dict[str, Any]:
    text = draw(texts)
    frame: dict[str, Any] = {
        "service": draw(st.sampled_from(["Music_1", "Weather_1", "Unknown_1"])),
        "actions": [
            {"act": a, "slot": "", "values": []} for a in draw(st.lists(st.sampled_from(ACTS)))
        ],
        "slots": [],
    }
    if speaker == "USER":
        intent = st.sampled_from(["NONE", "PlaySong", "LookupSong", "GetWeather"])
        frame["state"] = {"active_intent": draw(intent), "requested_slots": []}
        if draw(st.booleans()):
            start = draw(st.integers(0, len(text) - 1))
            end = draw(st.integers(start + 1, len(text)))
            frame["slots"] = [{"slot": "s", "start": start, "exclusive_end": end}]
    return {"speaker": speaker, "utterance": text, "frames": [frame]}


@st.composite
def sgd_dialogues(draw: st.DrawFn, dialogue_id: str) -> dict[str, Any]:
    turns = [draw(utterances("SYSTEM"))] if draw(st.booleans()) else []
    pairs = draw(st.integers(1, 3))
    for k in range(pairs):
        turns.append(draw(utterances("USER")))
        if k < pairs - 1 or draw(st.booleans()):
            turns.append(draw(utterances("SYSTEM")))
    return {"dialogue_id": dialogue_id, "services": ["Music_1"], "turns": turns}


def _pick(draw: st.DrawFn, raw: dict, speaker: str | None = None) -> dict:
    return draw(st.sampled_from([u for u in raw["turns"] if speaker in (None, u["speaker"])]))


def _flip(draw: st.DrawFn, raw: dict) -> None:
    # Any one speaker changed breaks the USER/SYSTEM alternation (or leaves no USER turn).
    utt = _pick(draw, raw)
    utt["speaker"] = "USER" if utt["speaker"] == "SYSTEM" else "SYSTEM"


def _frame_field(key: str, values: list, speaker: str | None = None) -> Any:
    def mutate(draw: st.DrawFn, raw: dict) -> None:
        frame = _pick(draw, raw, speaker)["frames"][0]
        if key == "active_intent":
            frame = frame["state"]
        frame[key] = draw(st.sampled_from(values))

    return mutate


def _act(draw: st.DrawFn, raw: dict) -> None:
    frame = _pick(draw, raw)["frames"][0]
    frame["actions"] = [{"act": draw(st.sampled_from([[], {}, 5, None]))}]


def _span(draw: st.DrawFn, raw: dict) -> None:
    utt = _pick(draw, raw, "USER")
    n = len(utt["utterance"])
    start, end = draw(st.sampled_from([(0, n + 1), (2, 1), (0, 0), (-1, 1), ("0", 1)]))
    utt["frames"][0]["slots"] = [{"slot": "s", "start": start, "exclusive_end": end}]


def _utt(key: str, values: list, speaker: str | None) -> Any:
    def mutate(draw: st.DrawFn, raw: dict) -> None:
        _pick(draw, raw, speaker)[key] = draw(st.sampled_from(values))

    return mutate


MUTATIONS: dict[str, tuple[Any, str]] = {
    "speaker_order": (_flip, "both USER|both SYSTEM|turns"),
    "speaker_type": (_utt("speaker", ["BOT", None, "user", ["USER"]], None), "speaker"),
    "no_id": (lambda draw, raw: raw.pop("dialogue_id"), "dialogue_id"),
    "id_type": (lambda draw, raw: raw.update(dialogue_id=draw(st.sampled_from([5, []]))), "id"),
    "no_turns": (lambda draw, raw: raw.update(turns=[]), "turns"),
    "turns_type": (lambda draw, raw: raw.update(turns=draw(st.sampled_from([None, {}]))), "turns"),
    "empty_text": (_utt("utterance", ["", " \n", None], "USER"), "user_text"),
    "text_type": (_utt("utterance", [5, ["hi"]], None), "system_text|user_text|opening"),
    "span": (_span, "slot|start|end"),
    "frames_type": (_utt("frames", ["x", None, [1]], None), "frames"),
    "service_type": (_frame_field("service", [{}, [], 5]), "service"),
    "intent_type": (_frame_field("active_intent", [[], {}, 5], "USER"), "active_intent"),
    "actions_type": (_frame_field("actions", [None, 5, "x"]), "actions"),
    "act_type": (_act, "act"),
}
# Only values whose every prefix is invalid JSON, so that a cut never makes a shorter record.
NOT_OBJECTS = ["x", None, [], True, [1]]


@st.composite
def sgd_logs(draw: st.DrawFn) -> list[tuple[Any, str | None, str | None]]:
    records = []
    for i in range(draw(st.integers(1, 5))):
        raw = draw(sgd_dialogues(f"1_{i:05d}"))
        name = draw(st.none() | st.sampled_from([*MUTATIONS, "not_object", "duplicate_id"]))
        pattern = None
        if name == "not_object":
            raw, pattern = draw(st.sampled_from(NOT_OBJECTS)), "expected an object"
        elif name == "duplicate_id":
            raw["dialogue_id"] = f"1_{draw(st.integers(0, i)):05d}"
        elif name is not None:
            mutate, pattern = MUTATIONS[name]
            mutate(draw, raw)
        records.append((raw, name, pattern))
    return records


def _file(records: list) -> tuple[bytes, list[int]]:
    """The file, as SGD publishes it (an indented JSON array), and each element's end offset."""
    data, ends = b"[\n", []
    for k, (raw, _, _) in enumerate(records):
        data += (", " if k else "").encode() + json.dumps(raw, ensure_ascii=False).encode()
        ends.append(len(data))
    return data + b"\n]\n", ends


def _read(name: str, data: bytes) -> list:
    def write(tmp: Path) -> Path:
        (tmp / "schema.json").write_text(json.dumps(SCHEMA))
        (tmp / name).write_bytes(data)
        return tmp

    return read_in_tmp(write, lambda p: [*read_log(p, "sgd")])


def _check_record(raw: Any, name: str | None, pattern: str | None, item: Any, seen: set) -> None:
    """A record is rejected for its mutation, as a repeat of an id accepted before, or read as
    written: the same texts in the same order, the same slot spans."""
    if pattern is not None:
        assert isinstance(item, Reject), (name, item)
        assert re.search(pattern, item.reason), (name, item.reason)
        return
    if raw["dialogue_id"] in seen:
        assert isinstance(item, Reject) and "duplicate dialogue_id" in item.reason
        return
    assert isinstance(item, Dialogue), (name, item)
    seen.add(item.dialogue_id)
    utts = raw["turns"]
    opening = utts[0]["utterance"] if utts[0]["speaker"] == "SYSTEM" else None
    users = [k for k, u in enumerate(utts) if u["speaker"] == "USER"]
    assert item.system_opening == opening
    assert [t.user_text for t in item.turns] == [utts[k]["utterance"] for k in users]
    assert [t.system_text for t in item.turns] == [
        utts[k + 1]["utterance"] if k + 1 < len(utts) else None for k in users
    ]
    spans = [[(s.start, s.end) for s in t.slots] for t in item.turns]
    frames = [utts[k]["frames"][0]["slots"] for k in users]
    assert spans == [[(s["start"], s["exclusive_end"]) for s in f] for f in frames]


@FUZZ
@given(records=sgd_logs(), gz=st.booleans())
def test_sgd_mutated_dialogues(records, gz):
    data, _ = _file(records)
    items = _read(
        "dialogues_001.json.gz" if gz else "dialogues_001.json", gzip.compress(data) if gz else data
    )
    check_items(items, len(records))
    seen: set[str] = set()
    for record, item in zip(records, items, strict=True):
        _check_record(*record, item, seen)


@FUZZ
@given(st.data())
def test_sgd_file_cut_at_any_offset(data):
    records = data.draw(sgd_logs())
    plain, ends = _file(records)
    gz = data.draw(st.booleans())
    blob = gzip.compress(plain, mtime=0) if gz else plain
    cut = data.draw(st.integers(0, len(blob)))
    items = _read("dialogues_001.json.gz" if gz else "dialogues_001.json", blob[:cut])
    readable = zlib.decompressobj(wbits=31).decompress(blob[:cut]) if gz else blob[:cut]
    # Every element complete before the cut is a record; a cut file adds one for its rest (a
    # cut gzip stream is reported even after the closing bracket, a cut in plain whitespace
    # after it loses nothing).
    complete = sum(end <= len(readable) for end in ends)
    cut_off = cut < len(blob) if gz else cut <= plain.rindex(b"]")
    check_items(items, complete + cut_off)
    seen: set[str] = set()
    for record, item in zip(records[:complete], items, strict=False):
        _check_record(*record, item, seen)
    if cut_off:
        assert isinstance(items[-1], Reject)
        assert re.search("rest of the file|after the complete array", items[-1].reason)


@FUZZ
@given(st.data())
def test_sgd_damaged_bytes(data):
    records = data.draw(sgd_logs())
    plain, ends = _file(records)
    damaged = data.draw(damage(plain, ("insert", "overwrite", "not_utf8", "surrogate"))).apply(
        plain
    )
    items = _read("dialogues_001.json", damaged)
    first = next(
        (i for i, (a, b) in enumerate(zip(plain, damaged, strict=False)) if a != b), len(plain)
    )
    # The reader, unlike json.loads, takes a trailing comma: it loses nothing.
    text = re.sub(r",(\s*\]\s*)$", r"\1", damaged.decode("utf-8", "surrogateescape"))
    try:
        whole = json.loads(text)
    except (ValueError, RecursionError):
        whole = None
    if isinstance(whole, list):
        check_items(items, len(whole))  # still one array: one record per element
    elif whole is not None:
        check_items(items, 1)  # JSON, but not an array: the file is one reject
    else:
        check_items(items, len(items))
        assert isinstance(items[-1], Reject) and "rest of the file" in items[-1].reason
    # The elements that end before the damage are read as if nothing happened.
    seen: set[str] = set()
    for record, item, end in zip(records, items, ends, strict=False):
        if end >= first:
            break
        _check_record(*record, item, seen)


@pytest.mark.parametrize(
    ("data", "reasons"),
    [
        (b"[]", []),
        (b" [ ] \n", []),
        (b"[] []", ["data after the closing ']'"]),
        (b'[{"dialogue_id": "a"}] x', ["'turns' is missing", "data after the closing ']'"]),
        (b'[{"dialogue_id": "a"} {"b": 1}]', ["'turns' is missing", "expected ',' or ']'"]),
        (b"", ["not a JSON array"]),
        (b'{"dialogue_id": "a"}', ["not a JSON array"]),
        (b"[" + b"[" * 100_000, ["invalid JSON from dialogue 0 on (maximum recursion"]),
        (b"[" + b"1" * 5000 + b"]", ["invalid JSON from dialogue 0 on (Exceeds the limit"]),
        (b'["\xff"]', ["not valid Unicode"]),
        (b'["\\udc80", "ok"]', ["not valid Unicode", "expected an object"]),
        (b"[1, \xff 2]", ["expected an object", "invalid JSON from dialogue 1 on"]),
    ],
)
def test_files_that_slipped_through_or_crashed(data, reasons):
    items = _read("dialogues_001.json", data)
    check_items(items, len(reasons))
    for item, needle in zip(items, reasons, strict=True):
        assert isinstance(item, Reject) and needle in item.reason, item


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (
            {"service": {}, "actions": [{"act": "INFORM"}], "state": {"active_intent": "X"}},
            "service",
        ),
        (
            {"service": "S", "actions": [{"act": "INFORM"}], "state": {"active_intent": []}},
            "intent",
        ),
        ({"service": "S", "actions": [{"act": ["INFORM"]}]}, "act"),
    ],
)
def test_unhashable_values_are_rejected_not_crashes(frame, reason):
    # These crashed with TypeError: unhashable type, in goal and feedback bookkeeping.
    turns = [
        {"speaker": "USER", "utterance": "hi", "frames": [frame]},
        {"speaker": "SYSTEM", "utterance": "ok", "frames": [frame]},
        {"speaker": "USER", "utterance": "no", "frames": [frame]},
    ]
    data = json.dumps([{"dialogue_id": "1_00000", "turns": turns}]).encode()
    [item] = _read("dialogues_001.json", data)
    assert isinstance(item, Reject) and reason in item.reason


def test_unreadable_file_in_a_directory_is_a_reject(tmp_path):
    (tmp_path / "dialogues_001.json").write_text("[]")
    (tmp_path / "dialogues_002.json").mkdir()
    (tmp_path / "dialogues_003.json.gz").symlink_to(tmp_path / "nowhere")
    items = list(read_log(tmp_path, "sgd"))
    assert [Path(i.source).name for i in items] == ["dialogues_002.json", "dialogues_003.json.gz"]
    assert all("cannot be read" in i.reason for i in items)
