"""Fuzz tests of the USS reader: an input record is a block of non-blank lines (a blank line
holds only ASCII whitespace). Valid blocks are generated, some broken on purpose, files damaged
byte by byte; every block must come out accepted or rejected with a reason, and untouched blocks
must read as written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from labelgen.data.readers import read_log
from labelgen.data.rejects import Reject
from labelgen.data.schema import Dialogue
from tests.data.fuzzing import FUZZ, check_items, damage, read_in_tmp

_field = st.characters(exclude_categories=("Cs",), exclude_characters="\t\n\r")
uss_texts = st.text(_field, min_size=1, max_size=16).filter(lambda t: t.strip() and t != "OVERALL")
acts = st.sampled_from(["", "INFORM", "REQUEST", "OFFER", "NEGATE", "REQ_MORE"])


@st.composite
def blocks(draw: st.DrawFn) -> list[str]:
    """One valid USS dialogue, as its lines."""
    annotators = draw(st.integers(3, 5))

    def ratings() -> str:
        return ",".join(str(draw(st.integers(1, 5))) for _ in range(annotators))

    lines = [f"SYSTEM\t{draw(uss_texts)}\t{draw(acts)}\t"] if draw(st.booleans()) else []
    for _ in range(draw(st.integers(1, 3))):
        lines.append(f"USER\t{draw(uss_texts)}\t{draw(acts)}\t{ratings()}")
        for _ in range(draw(st.integers(0, 2))):
            lines.append(f"SYSTEM\t{draw(uss_texts)}\t{draw(acts)}\t")
    lines.append(f"USER\tOVERALL\t\t{ratings()}")
    # The published files' layouts: ReDial's lower-case roles, JDDC's fifth field.
    layout = draw(st.sampled_from(["sgd", "redial", "jddc"]))
    if layout == "redial":
        lines[:-1] = [
            line.replace("USER", "user", 1).replace("SYSTEM", "system", 1) for line in lines[:-1]
        ]
    if layout == "jddc":
        lines = [f"{line}\t" for line in lines]
        lines[-1] += draw(st.sampled_from(["", "too slow", "too slow;fine"]))
    return lines


def _line_of(draw: st.DrawFn, lines: list[str], role: str | None = None) -> int:
    options = [
        k for k, line in enumerate(lines[:-1]) if role in (None, line.split("\t")[0].upper())
    ]
    return draw(st.sampled_from(options or [len(lines) - 1]))


def _replace_field(index: int, values: list, role: str | None = None) -> Any:
    def mutate(draw: st.DrawFn, lines: list[str]) -> None:
        k = _line_of(draw, lines, role)
        fields = lines[k].split("\t")
        fields[index] = draw(st.sampled_from(values))
        lines[k] = "\t".join(fields)

    return mutate


def _system_ratings(draw: st.DrawFn, lines: list[str]) -> None:
    lines.insert(len(lines) - 1, f"SYSTEM\tok\t\t{draw(st.sampled_from(['3', '1,2']))}")


def _fields(draw: st.DrawFn, lines: list[str]) -> None:
    k = _line_of(draw, lines)
    fields = lines[k].split("\t")
    lines[k] = "\t".join(draw(st.sampled_from([fields[:3], fields[:2], [*fields, "x", "y"]])))


def _stray_explanation(draw: st.DrawFn, lines: list[str]) -> None:
    k = _line_of(draw, lines)
    lines[k] = "\t".join([*lines[k].split("\t")[:4], "why"])


MUTATIONS: dict[str, tuple[Any, str]] = {
    "role": (_replace_field(0, ["BOT", "usr", "", " USER", "user "]), "role"),
    "empty_text": (_replace_field(1, ["", " ", "\u3000"], "USER"), "user_text"),
    "ratings": (
        _replace_field(3, ["x", "", "0", "6", "nan", "3,,4", "1e3", "-1", "3;4"], "USER"),
        "ratings",
    ),
    "system_ratings": (_system_ratings, "SYSTEM line carries ratings"),
    "field_count": (_fields, "tab-separated fields"),
    "stray_explanation": (_stray_explanation, "only the OVERALL line carries explanations"),
    "after_overall": (lambda draw, lines: lines.append("USER\tlate\t\t3,3,3"), "must be last"),
    "overall_first": (lambda draw, lines: lines.insert(0, lines[-1]), "must be last"),
    "no_user": (
        lambda draw, lines: lines.__setitem__(slice(None), ["SYSTEM\thi\t\t", lines[-1]]),
        "no USER utterance",
    ),
}


@st.composite
def uss_logs(draw: st.DrawFn) -> list[tuple[list[str], str | None, str | None]]:
    records = []
    for _ in range(draw(st.integers(1, 5))):
        lines = draw(blocks())
        name = draw(st.none() | st.sampled_from(sorted(MUTATIONS)))
        pattern = None
        if name is not None:
            mutate, pattern = MUTATIONS[name]
            mutate(draw, lines)
        records.append((lines, name, pattern))
    return records


def _file(records: list, separator: bytes) -> tuple[bytes, list[int]]:
    """The file and each block's end offset; blocks are separated by `separator`, a line that
    holds only whitespace."""
    data, ends = b"", []
    for k, (lines, _, _) in enumerate(records):
        data += (separator if k else b"") + "".join(f"{x}\n" for x in lines).encode()
        ends.append(len(data))
    return data, ends


def _blocks(data: bytes) -> int:
    """Blocks as the format defines them: runs of lines holding more than ASCII whitespace."""
    count, inside = 0, False
    for line in data.split(b"\n"):
        if line.strip() and not inside:
            count += 1
        inside = bool(line.strip())
    return count


def _check_block(lines: list[str], name: str | None, pattern: str | None, item: Any) -> None:
    """Rejected for its mutation, or read as written: the same texts and ratings."""
    if pattern is not None:
        assert isinstance(item, Reject), (name, item)
        assert re.search(pattern, item.reason), (name, item.reason)
        return
    assert isinstance(item, Dialogue), (name, item)
    rows = [line.split("\t") for line in lines]
    users = [r for r in rows if r[0].upper() == "USER" and r[1] != "OVERALL"]
    assert [t.user_text for t in item.turns] == [r[1] for r in users]
    votes = [[a.satisfaction for a in t.annotations or []] for t in item.turns]
    assert votes == [[int(x) for x in r[3].split(",")] for r in users[1:]] + [[]]
    overall = [int(x) for x in rows[-1][3].split(",")]
    assert [a.rating for a in item.annotations] == overall + [None] * (
        len(item.annotations) - len(overall)
    )


def _read(data: bytes) -> list:
    return read_in_tmp(lambda t: _put(t / "Fuzz.txt", data), lambda p: [*read_log(p, "uss")])


def _put(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@FUZZ
@given(records=uss_logs(), separator=st.sampled_from([b"\n", b"\n\n\n", b" \t\r\n", b"\x0c\n"]))
def test_uss_mutated_blocks(records, separator):
    data, _ = _file(records, separator)
    items = _read(data)
    check_items(items, len(records))
    for k, (record, item) in enumerate(zip(records, items, strict=True)):
        _check_block(*record, item)
        if isinstance(item, Dialogue):
            assert item.dialogue_id == f"Fuzz-{k:05d}"


@FUZZ
@given(st.data())
def test_uss_damaged_bytes(data):
    records = data.draw(uss_logs())
    plain, ends = _file(records, b"\n")
    damaged = data.draw(damage(plain)).apply(plain)
    items = _read(damaged)
    check_items(items, _blocks(damaged))
    same = (i for i, (a, b) in enumerate(zip(plain, damaged, strict=False)) if a != b)
    first = next(same, min(len(plain), len(damaged)))
    # Blocks that end (with the line break after them) before the damage read as if nothing
    # happened.
    for record, item, end in zip(records, items, ends, strict=False):
        if end >= first:
            break
        _check_block(*record, item)


def test_non_utf8_block_is_rejected_alone():
    good = b"USER\thi\t\t3,3,3\nUSER\tOVERALL\t\t3,3,3\n"
    items = _read(good + b"\n" + good.replace(b"hi", b"h\xff") + b"\n" + good)
    assert [type(i).__name__ for i in items] == ["Dialogue", "Reject", "Dialogue"]
    assert "not UTF-8" in items[1].reason
    check_items(items, 3)


def test_unreadable_file_in_a_directory_is_a_reject(tmp_path):
    (tmp_path / "a.txt").write_text("USER\thi\t\t3,3,3\nUSER\tOVERALL\t\t3,3,3\n")
    (tmp_path / "b.txt").mkdir()
    items = list(read_log(tmp_path, "uss"))
    assert isinstance(items[0], Dialogue)
    assert isinstance(items[1], Reject) and "cannot be read" in items[1].reason
