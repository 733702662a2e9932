"""Shared pieces of the reader fuzz tests (`test_fuzz_*.py`): valid records, byte-level damage,
and the check every read must pass: each input record comes out once, accepted or rejected with
a reason, and whatever is accepted can be written again."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from labelgen.data.canonical import CanonicalWriter, read_canonical
from labelgen.data.rejects import Reject, RejectWriter
from labelgen.data.schema import Dialogue

# derandomize: CI runs the same examples every time; a failure found here is reproducible.
FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Any character but surrogates (which UTF-8 cannot hold); control characters included.
_char = st.characters(exclude_categories=("Cs",))
texts = st.text(_char, min_size=1, max_size=24).filter(str.strip)
"""A user text the contract takes: not blank."""
labels = st.text(st.characters(exclude_categories=("Cs",), max_codepoint=0x2FF), max_size=12)
"""Categorical values and acts: any string, empty included."""

NOT_UTF8 = [b"\xff", b"\xfe", b"\xc3", b"\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"]
"""Bytes no UTF-8 decoder takes: invalid lead bytes, a lone continuation byte, a cut sequence,
an encoded surrogate, a code point past U+10FFFF."""


@dataclass(frozen=True)
class Damage:
    """One byte-level change; its repr, unlike the damaged file's, is short enough to read."""

    kind: str
    offset: int
    piece: bytes = b""

    def apply(self, data: bytes) -> bytes:
        at = self.offset
        if self.kind == "truncate":
            return data[:at]
        if self.kind == "overwrite":
            return data[:at] + self.piece + data[at + len(self.piece) :]
        return data[:at] + self.piece + data[at:]


@st.composite
def damage(draw: st.DrawFn, data: bytes, kinds: tuple[str, ...] = ()) -> Damage:
    """`data` cut at a random offset, or random bytes, non-UTF-8 bytes or a lone surrogate
    escape put in at one."""
    kind = draw(
        st.sampled_from(kinds or ("truncate", "insert", "overwrite", "not_utf8", "surrogate"))
    )
    offset = draw(st.integers(0, max(0, len(data) - 1)))
    if kind in ("insert", "overwrite"):
        return Damage(
            kind, offset, draw(st.binary(min_size=1, max_size=8 if kind == "insert" else 4))
        )
    if kind in ("not_utf8", "surrogate"):
        piece = draw(st.sampled_from(NOT_UTF8)) if kind == "not_utf8" else b"\\ud800"
        return Damage("insert", offset, piece)
    return Damage(kind, offset)


def check_items(
    items: list[Dialogue | Reject], expected_records: int, write_back: bool = True
) -> None:
    """The invariants of every read: one item per input record; every reject says where and
    why; every reject and (unless not `write_back`) every dialogue can be written again (a lone
    surrogate, say, cannot be)."""
    assert len(items) == expected_records, [_brief(i) for i in items]
    sources = [i.source for i in items]
    assert all(isinstance(s, str) and s for s in sources)
    assert len(set(sources)) == len(sources), sources
    for item in items:
        if isinstance(item, Reject):
            assert isinstance(item.reason, str) and item.reason.strip()
    with tempfile.TemporaryDirectory() as tmp:
        rejects = [i for i in items if isinstance(i, Reject)]
        with RejectWriter(Path(tmp) / "rejects.jsonl") as writer:
            for reject in rejects:
                writer.write(reject)
        lines = (Path(tmp) / "rejects.jsonl").read_bytes().split(b"\n")[:-1]
        assert [json.loads(line)["reason"] for line in lines] == [r.reason for r in rejects]
        dialogues = [i for i in items if isinstance(i, Dialogue)]
        for name in ("out.jsonl", "out.parquet") if write_back else ():
            with CanonicalWriter(Path(tmp) / name) as out:
                out.write_all(dialogues)
            back = list(read_canonical(Path(tmp) / name))
            assert [d.to_json_dict() for d in back] == [d.to_json_dict() for d in dialogues]


def _brief(item: Dialogue | Reject) -> str:
    if isinstance(item, Reject):
        return f"reject {item.source}: {item.reason[:80]}"
    return f"dialogue {item.source}"


def read_in_tmp(write: Callable[[Path], Path], read: Callable[[Path], Any]) -> Any:
    """`read(write(tmp_dir))` in a fresh directory (hypothesis examples cannot share tmp_path)."""
    with tempfile.TemporaryDirectory() as tmp:
        return read(write(Path(tmp)))


def lines_of(data: bytes) -> list[bytes]:
    """The lines of `data` as a JSONL reader sees them, without their `\\n`."""
    lines = data.split(b"\n")
    return lines[:-1] if lines and lines[-1] == b"" else lines
