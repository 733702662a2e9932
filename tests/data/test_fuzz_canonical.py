"""Fuzz tests of the canonical reader (JSONL, JSONL.gz, Parquet): valid dialogues are generated,
some records are broken on purpose and some files damaged byte by byte; every input record must
come out accepted or rejected with a reason, and untouched records come back as written."""

from __future__ import annotations

import gzip
import json
import math
import re
import zlib
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelgen.data.arrow import DIALOGUE_SCHEMA
from labelgen.data.canonical import CanonicalWriter
from labelgen.data.readers import read_log
from labelgen.data.rejects import LogReadError, Reject, RejectWriter
from labelgen.data.schema import Dialogue
from tests.conftest import full_dialogue
from tests.data.fuzzing import FUZZ, check_items, damage, labels, lines_of, read_in_tmp, texts

OPTIONAL_TURN_FIELDS: dict[str, st.SearchStrategy] = {
    "system_text": st.text(st.characters(exclude_categories=("Cs",)), max_size=20),
    "domain": labels,
    "logged_intent": labels,
    "dialogue_status": labels,
    "user_tokens": st.integers(0, 2**63 - 1),
    "system_tokens": st.integers(0, 1000),
    "asr_confidence": st.floats(0.0, 1.0),
    "nlu_confidence": st.floats(0.0, 1.0),
    "audio_path": texts,
    "barge_in": st.booleans(),
    "rephrase": st.booleans(),
    "intent": labels,
    "user_acts": st.lists(labels, max_size=3),
    "satisfaction": st.integers(1, 5),
}


@st.composite
def dialogues(draw: st.DrawFn, dialogue_id: str) -> dict[str, Any]:
    """A raw canonical dialogue that the contract accepts."""
    turns = []
    for _ in range(draw(st.integers(1, 3))):
        text = draw(texts)
        turn: dict[str, Any] = {"user_text": text}
        for name in draw(st.sets(st.sampled_from(sorted(OPTIONAL_TURN_FIELDS)), max_size=5)):
            turn[name] = draw(OPTIONAL_TURN_FIELDS[name])
        if draw(st.booleans()):
            start = draw(st.integers(0, len(text) - 1))
            end = draw(st.integers(start + 1, len(text)))
            turn["slots"] = [{"slot": draw(texts), "start": start, "end": end}]
        if draw(st.booleans()):
            turn["annotations"] = [
                {"annotator": "a0", "satisfaction": draw(st.integers(1, 5)), "segment": "B"}
            ]
        turns.append(turn)
    raw: dict[str, Any] = {"dialogue_id": dialogue_id, "turns": turns}
    if draw(st.booleans()):
        raw["goals"] = [{"goal_id": "g0", "success": draw(st.none() | st.booleans())}]
        turns[0]["goal_id"] = "g0"
    if draw(st.booleans()):
        raw["rating"] = draw(st.integers(1, 5))
    return raw


def _turn(draw: st.DrawFn, raw: dict) -> dict:
    return draw(st.sampled_from(raw["turns"]))


def _set(field: str, values: list) -> Any:
    def mutate(draw: st.DrawFn, raw: dict) -> None:
        _turn(draw, raw)[field] = draw(st.sampled_from(values))

    return mutate


def _span(draw: st.DrawFn, raw: dict) -> None:
    turn = _turn(draw, raw)
    n = len(turn["user_text"])
    start, end = draw(
        st.sampled_from([(0, n + 1), (n, n + 5), (3, 1), (1, 1), (-1, 1), (0, 2**40)])
    )
    turn["slots"] = [{"slot": "s", "start": start, "end": end}]


def _extra(draw: st.DrawFn, raw: dict) -> None:
    _turn(draw, raw)["colour"] = "red"


def _confidence(draw: st.DrawFn, raw: dict) -> None:
    name = draw(st.sampled_from(["asr_confidence", "nlu_confidence"]))
    inf = float("inf")
    _turn(draw, raw)[name] = draw(st.sampled_from([float("nan"), inf, -inf, -0.5, 1.0000001]))


# name -> (mutation, pattern the reject's reason must match or None if the record stays valid,
# whether a Parquet file with the canonical schema can hold the mutated record)
MUTATIONS: dict[str, tuple[Any, str | None, bool]] = {
    "no_id": (lambda draw, raw: raw.pop("dialogue_id"), "dialogue_id", True),
    "id_type": (
        lambda draw, raw: raw.update(dialogue_id=draw(st.sampled_from([5, None, [], True]))),
        "dialogue_id",
        False,
    ),
    "empty_id": (lambda draw, raw: raw.update(dialogue_id=""), "dialogue_id", True),
    "no_turns": (lambda draw, raw: raw.update(turns=[]), "turns", True),
    "turns_type": (
        lambda draw, raw: raw.update(turns=draw(st.sampled_from([None, "x", {}, 3]))),
        "turns",
        False,
    ),
    "empty_text": (_set("user_text", ["", " ", "\t\n", "\u3000\u2028"]), "user_text", True),
    "null_text": (_set("user_text", [None]), "user_text", True),
    "bad_confidence": (_confidence, "confidence", True),
    "text_type": (_set("user_text", [3, ["hi"], {"t": "hi"}, True]), "user_text", False),
    "rating_type": (_set("satisfaction", ["3", 3.0, True]), "satisfaction", False),
    "flag_type": (_set("barge_in", [1, "true", 0.0]), "barge_in", False),
    "count_type": (_set("user_tokens", [1.5, "2", -1, 2**63]), "user_tokens", False),
    "negative_count": (_set("user_tokens", [-1]), "user_tokens", True),
    "acts_type": (_set("user_acts", ["INFORM", [1], {}]), "user_acts", False),
    "span": (_span, r"slot|start|end", True),
    "extra_field": (_extra, "colour", False),
    "rating": (
        lambda draw, raw: raw.update(rating=draw(st.sampled_from([0, 6, -1]))),
        "rating",
        True,
    ),
    "unknown_goal": (_set("goal_id", ["nope"]), "goal_id", True),
    "not_object": (None, "JSON object", False),
    "unknown_categorical": (_set("domain", ["never seen", "", "\u00e9"]), None, True),
}


@st.composite
def logs(draw: st.DrawFn, parquet: bool = False) -> list[tuple[Any, str | None, str | None]]:
    """Records (raw, mutation name, reason pattern) with unique ids, some broken; some records
    take an earlier record's id instead."""
    names = sorted(n for n, (_, _, in_parquet) in MUTATIONS.items() if in_parquet or not parquet)
    records = []
    for i in range(draw(st.integers(1, 6))):
        raw = draw(dialogues(f"d{i}"))
        name = draw(st.none() | st.sampled_from([*names, "duplicate_id"]))
        pattern = None
        if name == "duplicate_id" and i > 0:
            raw["dialogue_id"] = f"d{draw(st.integers(0, i - 1))}"
        elif name == "not_object":
            raw, pattern = draw(st.sampled_from([[], "x", 1, None, [raw]])), "JSON object"
        elif name is not None and name != "duplicate_id":
            mutate, pattern, _ = MUTATIONS[name]
            mutate(draw, raw)
        records.append((raw, name, pattern))
    return records


def _expect(records: list, items: list) -> None:
    """Each record is accepted as written, rejected for its mutation, or rejected as a repeat
    of an id accepted before it."""
    accepted: set[str] = set()
    for (raw, name, pattern), item in zip(records, items, strict=True):
        if pattern is not None:
            assert isinstance(item, Reject), (name, raw)
            assert re.search(pattern, item.reason), (name, item.reason)
        elif raw["dialogue_id"] in accepted:
            assert isinstance(item, Reject) and "duplicate dialogue_id" in item.reason
        else:
            assert isinstance(item, Dialogue), (name, item)
            assert item.to_json_dict() == Dialogue.model_validate(raw).to_json_dict()
            accepted.add(item.dialogue_id)


def _jsonl(records: list) -> bytes:
    return b"".join(json.dumps(raw, ensure_ascii=False).encode() + b"\n" for raw, _, _ in records)


@FUZZ
@given(records=logs(), gz=st.booleans())
def test_jsonl_mutated_records(records, gz):
    data = _jsonl(records)
    name = "log.jsonl.gz" if gz else "log.jsonl"

    def write(tmp: Path) -> Path:
        (tmp / name).write_bytes(gzip.compress(data) if gz else data)
        return tmp / name

    items = read_in_tmp(write, lambda p: [*read_log(p)])
    check_items(items, len(records))
    _expect(records, items)


@FUZZ
@given(st.data())
def test_jsonl_damaged_bytes(data):
    records = data.draw(logs())
    original = _jsonl(records)
    damaged = data.draw(damage(original)).apply(original)
    items = read_in_tmp(lambda tmp: _put(tmp / "log.jsonl", damaged), lambda p: [*read_log(p)])
    lines = lines_of(damaged)
    # A record is a line with more than JSON whitespace; the damage may split or join lines.
    numbered = [(n, line) for n, line in enumerate(lines, start=1) if line.strip(b" \t\r")]
    check_items(items, len(numbered))
    assert [i.source.rsplit(":", 1)[1] for i in items] == [str(n) for n, _ in numbered]
    intact = {line: k for k, line in enumerate(lines_of(original))}
    accepted: set[str] = set()
    for item, (_, line) in zip(items, numbered, strict=True):
        if line in intact and records[intact[line]][2] is None:
            raw = records[intact[line]][0]
            if raw["dialogue_id"] not in accepted:
                assert isinstance(item, Dialogue), item
                assert item.to_json_dict() == Dialogue.model_validate(raw).to_json_dict()
            else:
                assert isinstance(item, Reject) and "duplicate" in item.reason
        elif line in intact:
            assert isinstance(item, Reject)
        if isinstance(item, Dialogue):
            accepted.add(item.dialogue_id)


def _put(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@FUZZ
@given(st.data())
def test_gzip_cut_at_any_offset(data):
    records = data.draw(logs())
    compressed = gzip.compress(_jsonl(records), mtime=0)
    cut = data.draw(st.integers(0, len(compressed)))
    items = read_in_tmp(
        lambda t: _put(t / "a.jsonl.gz", compressed[:cut]), lambda p: [*read_log(p)]
    )
    # Whatever zlib can decompress from the cut stream holds the complete lines read; the
    # rest of the file is one reject.
    readable = zlib.decompressobj(wbits=31).decompress(compressed[:cut])
    complete = lines_of(readable[: readable.rfind(b"\n") + 1])
    damaged = 0 < cut < len(compressed)
    check_items(items, len(complete) + damaged)
    if damaged:
        assert isinstance(items[-1], Reject) and "gzip" in items[-1].reason
        assert items[-1].source.endswith(f":{len(complete) + 1}")


@FUZZ
@given(st.data())
def test_gzip_corrupt_bytes(data):
    records = data.draw(logs())
    compressed = gzip.compress(_jsonl(records), mtime=0)
    damaged = data.draw(damage(compressed, ("insert", "overwrite"))).apply(compressed)
    items = read_in_tmp(lambda t: _put(t / "a.jsonl.gz", damaged), lambda p: [*read_log(p)])
    try:
        lines = lines_of(_gunzip_strict(damaged))
    except (OSError, EOFError, zlib.error):
        # The stream is damaged: the lines before the damage come out in order, one record
        # each, and a last reject stands for the rest.
        check_items(items, len(items))
        assert isinstance(items[-1], Reject) and "gzip" in items[-1].reason
        numbers = [int(i.source.rsplit(":", 1)[1]) for i in items]
        assert numbers == sorted(numbers)
    else:
        check_items(items, sum(bool(line.strip(b" \t\r")) for line in lines))


def _gunzip_strict(data: bytes) -> bytes:
    """`gzip.decompress`, except that a header with a reserved flag bit set is damage: RFC 1952
    (2.3.1.2) says a decompressor must refuse it, and zlib, which the reader uses, does; Python's
    gzip module reads on. The logs here are one member, so only the first header is checked."""
    if len(data) > 3 and data[:2] == b"\x1f\x8b" and data[3] & 0xE0:
        raise zlib.error("reserved gzip header flag bits set")
    return gzip.decompress(data)


def test_gzip_header_with_a_reserved_flag_set_is_one_reject(tmp_path):
    data = bytearray(gzip.compress(_jsonl([(full_dialogue("a"), None, None)]), mtime=0))
    data[3] |= 0x20  # a reserved FLG bit (hypothesis found it: Python's gzip reads on)
    [item] = read_log(_put(tmp_path / "a.jsonl.gz", bytes(data)))
    assert isinstance(item, Reject) and "header flags" in item.reason
    assert item.source.endswith("a.jsonl.gz:1")


def test_gzip_members_and_padding_read_as_one_stream(tmp_path):
    one, two = (_jsonl([(full_dialogue(i), None, None)]) for i in ("a", "b"))
    path = _put(tmp_path / "a.jsonl.gz", gzip.compress(one) + gzip.compress(two) + b"\0" * 70_000)
    assert [d.dialogue_id for d in read_log(path)] == ["a", "b"]


@FUZZ
@given(records=logs(parquet=True))
def test_parquet_mutated_rows(records):
    # Only the mutations a Parquet file with the canonical schema can hold (no wrong types:
    # those are `test_parquet_columns_of_the_wrong_type`).
    def write(tmp: Path) -> Path:
        rows = [raw for raw, _, _ in records]
        table = pa.Table.from_pylist(rows, schema=DIALOGUE_SCHEMA)
        pq.write_table(table, tmp / "a.parquet", row_group_size=2)
        return tmp / "a.parquet"

    items = read_in_tmp(write, lambda p: [*read_log(p)])
    check_items(items, len(records))
    _expect(records, items)


@pytest.fixture(scope="module")
def parquet_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("pq") / "a.parquet"
    rows = [
        Dialogue.model_validate(full_dialogue(f"d{i}")).model_dump(mode="json") for i in range(60)
    ]
    pq.write_table(pa.Table.from_pylist(rows, schema=DIALOGUE_SCHEMA), path, row_group_size=20)
    return path.read_bytes()


@settings(FUZZ, max_examples=150)
@given(st.data())
def test_parquet_damaged_bytes(parquet_bytes, data):
    damaged = data.draw(damage(parquet_bytes, ("truncate", "insert", "overwrite"))).apply(
        parquet_bytes
    )

    def read(path: Path) -> tuple[int, list] | None:
        try:
            rows = pq.ParquetFile(path).metadata.num_rows
        except (pa.ArrowException, OSError, ValueError):
            rows = None
        try:
            return rows, [*read_log(path)]
        except LogReadError as err:
            assert "not a readable Parquet file" in str(err)
            return None

    result = read_in_tmp(lambda t: _put(t / "a.parquet", damaged), read)
    if result is not None:
        # Readable metadata: every row it counts comes out, decodable or not.
        rows, items = result
        check_items(items, rows, write_back=False)
        assert [i.source.rsplit("#", 1)[1] for i in items] == [str(r) for r in range(rows)]


def test_parquet_footer_with_a_column_name_that_is_not_utf8(tmp_path, parquet_bytes):
    # The footer (its length sits just before the closing magic) names the columns first.
    footer = len(parquet_bytes) - 8 - int.from_bytes(parquet_bytes[-8:-4], "little")
    name = parquet_bytes.index(b"dialogue_id", footer)
    damaged = parquet_bytes[:name] + b"\xfd" + parquet_bytes[name + 1 :]
    with pytest.raises(LogReadError, match="not a readable Parquet file"):
        list(read_log(_put(tmp_path / "a.parquet", damaged)))


@pytest.mark.parametrize(
    ("column", "values", "reason"),
    [
        ("dialogue_id", pa.array([7], pa.int64()), "dialogue_id"),
        ("rating", pa.array(["4"], pa.string()), "rating"),
        ("rating", pa.array([4.0], pa.float64()), "rating"),
        ("colour", pa.array(["red"], pa.string()), "colour"),
        ("turns", pa.array([[{"user_text": 5}]]), "user_text"),
        ("turns", pa.array([[{"user_text": b"hi"}]]), "user_text"),
        ("turns", pa.array([["hi"]]), "turns.0"),
    ],
)
def test_parquet_columns_of_the_wrong_type(tmp_path, column, values, reason):
    row = Dialogue.model_validate(full_dialogue()).model_dump(mode="json")
    table = pa.Table.from_pylist([row], schema=DIALOGUE_SCHEMA)
    if column in table.column_names:
        table = table.set_column(table.column_names.index(column), column, values)
    else:
        table = table.append_column(column, values)
    pq.write_table(table, tmp_path / "a.parquet")
    [item] = read_log(tmp_path / "a.parquet")
    assert isinstance(item, Reject) and reason in item.reason


def test_parquet_string_that_is_not_utf8_rejects_only_its_row(tmp_path):
    rows = [Dialogue.model_validate(full_dialogue(f"d{i}")).model_dump(mode="json") for i in (0, 1)]
    table = pa.Table.from_pylist(rows, schema=DIALOGUE_SCHEMA)
    ids = pa.array([b"d0", b"d\xff"], pa.binary()).view(pa.string())  # bypasses UTF-8 checks
    table = table.set_column(0, "dialogue_id", ids)
    pq.write_table(table, tmp_path / "a.parquet")
    items = list(read_log(tmp_path / "a.parquet"))
    assert isinstance(items[0], Dialogue) and isinstance(items[1], Reject)
    assert "cannot be decoded" in items[1].reason


@FUZZ
@given(value=st.floats(allow_nan=True, allow_infinity=True) | st.integers(-5, 5))
def test_confidences_outside_the_unit_interval_are_rejected(value):
    raw = {"dialogue_id": "d", "turns": [{"user_text": "hi", "asr_confidence": value}]}
    [item] = read_in_tmp(
        lambda t: _put(t / "a.jsonl", _jsonl([(raw, None, None)])), lambda p: [*read_log(p)]
    )
    if isinstance(value, float) and math.isfinite(value) and 0.0 <= value <= 1.0:
        assert isinstance(item, Dialogue) and item.turns[0].asr_confidence == value
    elif value in (0, 1) and not isinstance(value, float):
        assert isinstance(item, Dialogue)  # an integer 0 or 1 is a valid confidence
    else:
        assert isinstance(item, Reject) and "asr_confidence" in item.reason


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"dialogue_id": "d", "turns": [{"user_text": "a\\ud800"}]}', "lone surrogate"),
        (b'{"dialogue_id": "d", "turns": [{"user_text": "a\\udfff\\ud800"}]}', "lone surrogate"),
        (b'{"\\udc80": 1}', "lone surrogate"),
        (b"1" * 5000, "invalid JSON: Exceeds the limit"),
        (b"[" * 100_000, "invalid JSON: maximum recursion depth"),
        (b'{"dialogue_id": "d", "turns": [{"user_text": "hi", "user_tokens": 1e400}]}', "tokens"),
        (b"\x0c", "invalid JSON"),
        (b"\xef\xbb\xbf{}", "BOM"),
    ],
)
def test_lines_that_crashed_or_slipped_through(tmp_path, line, reason):
    path = _put(tmp_path / "a.jsonl", line + b"\n\n \t\r\n")
    [item] = read_log(path)
    assert isinstance(item, Reject) and reason in item.reason, item.reason
    check_items([item], 1)


def test_surrogate_pairs_are_text(tmp_path):
    path = _put(
        tmp_path / "a.jsonl", b'{"dialogue_id": "d", "turns": [{"user_text": "\\ud83d\\ude00"}]}'
    )
    [item] = read_log(path)
    assert isinstance(item, Dialogue) and item.turns[0].user_text == "\U0001f600"


def test_unreadable_files_in_a_directory_are_rejects(tmp_path):
    _put(tmp_path / "a.jsonl", _jsonl([(full_dialogue("a"), None, None)]))
    (tmp_path / "b.jsonl").mkdir()
    (tmp_path / "c.jsonl.gz").symlink_to(tmp_path / "nowhere")
    items = list(read_log(tmp_path, "canonical"))
    assert isinstance(items[0], Dialogue)
    assert [(Path(i.source).name, "cannot be read" in i.reason) for i in items[1:]] == [
        ("b.jsonl", True),
        ("c.jsonl.gz", True),
    ]


def test_canonical_writer_takes_the_largest_count():
    raw = {"dialogue_id": "d", "turns": [{"user_text": "hi", "user_tokens": 2**63 - 1}]}
    assert Dialogue.model_validate(raw).turns[0].user_tokens == 2**63 - 1
    read_in_tmp(
        lambda t: _write(t / "a.parquet", [Dialogue.model_validate(raw)]),
        lambda p: check_items(list(read_log(p)), 1),
    )


def _write(path: Path, dialogues: list[Dialogue]) -> Path:
    with CanonicalWriter(path) as writer:
        writer.write_all(dialogues)
    return path


def test_reject_writer_escapes_what_utf8_cannot_hold(tmp_path):
    with RejectWriter(tmp_path / "r.jsonl") as writer:
        writer.write(Reject("x:1", "bad", {"user_text": "a\ud800", "ok": "\u00e9"}))
    [line] = (tmp_path / "r.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(line)["record"] == {"user_text": "a\ud800", "ok": "\u00e9"}
