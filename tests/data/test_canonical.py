from __future__ import annotations

import gzip
import json

import pyarrow.parquet as pq
import pytest

from labelgen.data.canonical import PARQUET_BATCH, CanonicalWriter, read_canonical
from labelgen.data.rejects import LogReadError, Reject
from labelgen.data.schema import Dialogue
from tests.conftest import full_dialogue


def _dialogues(n: int) -> list[Dialogue]:
    out = []
    for i in range(n):
        raw = full_dialogue(f"d{i}")
        raw["turns"] = raw["turns"][: 1 + i % 3]  # ragged, with absent fields in every row
        if i % 2:
            raw["turns"][0]["asr_confidence"] = 1 / (i + 3)  # floats that print long
        out.append(Dialogue.model_validate(raw))
    return out


def _write(path, dialogues):
    with CanonicalWriter(path) as writer:
        writer.write_all(dialogues)
    return path


def test_jsonl_parquet_jsonl_is_byte_identical(tmp_path):
    dialogues = _dialogues(PARQUET_BATCH + 7)  # more than one Parquet row group
    first = _write(tmp_path / "a.jsonl", dialogues)
    back = [d for d in read_canonical(first)]
    parquet = _write(tmp_path / "b.parquet", back)
    assert pq.ParquetFile(parquet).num_row_groups == 2
    again = _write(tmp_path / "c.jsonl", read_canonical(parquet))
    assert first.read_bytes() == again.read_bytes()
    assert [d.to_json_dict() for d in read_canonical(again)] == [
        d.to_json_dict() for d in dialogues
    ]


def test_gzip_jsonl_round_trip(tmp_path):
    dialogues = _dialogues(5)
    path = _write(tmp_path / "a.jsonl.gz", dialogues)
    assert gzip.decompress(path.read_bytes()).count(b"\n") == 5
    assert [d.dialogue_id for d in read_canonical(path)] == [f"d{i}" for i in range(5)]


def test_broken_lines_are_rejected_and_the_rest_read(tmp_path):
    good = json.dumps(full_dialogue("ok1"))
    lines = [
        good.encode(),
        b'{"dialogue_id": "cut", "turns": [',
        b"[1, 2]",
        b'{"dialogue_id": "bad\xff", "turns": []}',
        b"",
        json.dumps({"dialogue_id": "nt", "turns": [{"user_text": ""}]}).encode(),
        json.dumps(full_dialogue("ok2")).encode(),
    ]
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    items = list(read_canonical(path))
    assert [d.dialogue_id for d in items if isinstance(d, Dialogue)] == ["ok1", "ok2"]
    rejects = [r for r in items if isinstance(r, Reject)]
    assert [r.source for r in rejects] == [f"{path}:{n}" for n in (2, 3, 4, 6)]
    reasons = [r.reason for r in rejects]
    assert reasons[0].startswith("invalid JSON")
    assert "must be a JSON object, got list" in reasons[1]
    assert reasons[2].startswith("line is not UTF-8")
    assert "user_text is empty" in reasons[3]
    assert rejects[0].record == '{"dialogue_id": "cut", "turns": ['


def test_parquet_rows_are_validated(tmp_path):
    path = _write(tmp_path / "a.parquet", _dialogues(3))
    table = pq.read_table(path).to_pylist()
    table[1]["turns"][0]["user_text"] = " "
    import pyarrow as pa

    from labelgen.data.arrow import DIALOGUE_SCHEMA

    pq.write_table(pa.Table.from_pylist(table, schema=DIALOGUE_SCHEMA), path)
    items = list(read_canonical(path))
    assert isinstance(items[1], Reject) and items[1].source == f"{path}#1"
    assert [isinstance(i, Dialogue) for i in items] == [True, False, True]


def test_not_a_parquet_file_is_a_read_error(tmp_path):
    path = tmp_path / "x.parquet"
    path.write_text("not parquet")
    with pytest.raises(LogReadError, match="not a readable Parquet file"):
        list(read_canonical(path))


def test_writer_leaves_nothing_visible_when_interrupted(tmp_path):
    for name in ("a.jsonl", "a.parquet"):
        path = tmp_path / name
        with pytest.raises(RuntimeError), CanonicalWriter(path) as writer:
            writer.write_all(_dialogues(PARQUET_BATCH + 1))
            raise RuntimeError("killed")
        assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_writer_refuses_unknown_suffix(tmp_path):
    with pytest.raises(LogReadError, match="must end in"):
        CanonicalWriter(tmp_path / "a.csv")
