"""The canonical log: JSONL (one dialogue per line, optionally gzip) or Parquet (one per row).

Every input record comes out as a `Dialogue` or a `Reject`, in order, so input = accepted +
rejected. A record is a line that holds more than JSON whitespace (blank lines are skipped), or
a Parquet row. Damage that hides records is itself one reject: a gzip stream that is cut off or
corrupt yields every line before the damage, then a reject for "this line and everything after
it". A Parquet file whose footer cannot be read raises `LogReadError`; corrupt pages reject
their rows one by one. The reader caps nothing: memory is bounded by one record (by one batch
of rows in Parquet).
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from labelgen.data.arrow import DIALOGUE_SCHEMA
from labelgen.data.atomic import AtomicFile
from labelgen.data.compressed import DamagedGzip, gunzip, split_lines
from labelgen.data.rejects import LogReadError, Reject
from labelgen.data.schema import Dialogue, explain

PARQUET_BATCH = 256
"""Dialogues per Parquet row group: small enough to stream, large enough to compress well."""
RAW_LIMIT = 10_000
"""Characters of an unreadable stretch kept in its reject (the input itself stays put)."""


def validate(raw: Any, source: str) -> Dialogue | Reject:
    """A raw record as a `Dialogue`, or a `Reject` saying what breaks the contract."""
    if not isinstance(raw, dict):
        return Reject(source, f"a dialogue must be a JSON object, got {type(raw).__name__}", raw)
    try:
        dialogue = Dialogue.model_validate(raw)
    except ValidationError as err:
        return Reject(source, explain(err), raw)
    dialogue._source = source
    return dialogue


def read_jsonl(path: Path) -> Iterator[Dialogue | Reject]:
    try:
        handle = path.open("rb")
    except OSError as err:
        yield Reject(str(path), f"file cannot be read: {err.strerror or err}", None)
        return
    number = 0
    with handle:
        lines = split_lines(gunzip(handle)) if path.suffix == ".gz" else handle
        try:
            for number, line in enumerate(lines, start=1):
                item = _line(line, f"{path}:{number}")
                if item is not None:
                    yield item
        except DamagedGzip as err:
            cut = err.partial.decode("utf-8", errors="backslashreplace")
            yield Reject(
                f"{path}:{number + 1}",
                f"{err}: line {number + 1} and everything after it are lost",
                cut[:RAW_LIMIT],
            )


def _line(line: bytes, source: str) -> Dialogue | Reject | None:
    line = line.rstrip(b"\r\n")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as err:
        text = line.decode("utf-8", errors="backslashreplace")
        return Reject(source, f"line is not UTF-8 ({err.reason} at byte {err.start})", text)
    # Only JSON whitespace makes a line blank; a line of other invisible characters is a record.
    if not text.strip(" \t\r"):
        return None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        return Reject(source, f"invalid JSON: {err.msg} at column {err.colno}", text)
    except (ValueError, RecursionError) as err:
        # An integer past Python's digit limit, or arrays nested past the recursion limit.
        return Reject(source, f"invalid JSON: {err}", text)
    # Valid UTF-8 holds no surrogates: only an escape can put one in, so most lines skip the walk.
    if _SURROGATE_ESCAPE.search(text) and (reason := lone_surrogate(raw)):
        return Reject(source, reason, text)
    return validate(raw, source)


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def lone_surrogate(raw: Any) -> str | None:
    """Why `raw` is not Unicode text, if a string in it holds a lone surrogate: a `\\ud800`
    escape, or a non-UTF-8 byte decoded with `surrogateescape`. No writer can encode such a
    string, so it must not pass as a dialogue (nor be kept raw in a reject)."""
    try:
        json.dumps(raw, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as err:
        near = err.object[max(0, err.start - 20) : err.end + 20]
        shown = near.encode("utf-8", "backslashreplace").decode("utf-8")
        return f"text is not valid Unicode (a lone surrogate or a non-UTF-8 byte) near {shown!r}"
    return None


def read_parquet(path: Path) -> Iterator[Dialogue | Reject]:
    """One record per row. A row group that cannot be decoded (corrupt pages) rejects its rows
    from the damage on, one reject per row, and the next row group is read."""
    try:
        parquet = pq.ParquetFile(path)
        sizes = [parquet.metadata.row_group(g).num_rows for g in range(parquet.num_row_groups)]
    except (pa.ArrowException, OSError, ValueError) as err:
        # ValueError: column names in a corrupt footer that are not UTF-8.
        raise LogReadError(f"{path} is not a readable Parquet file: {err}") from err
    row = 0
    for group, size in enumerate(sizes):
        end = row + size
        batches = parquet.iter_batches(batch_size=PARQUET_BATCH, row_groups=[group])
        while True:
            try:
                batch = next(batches, None)
            except (pa.ArrowException, OSError) as err:
                for lost in range(row, end):
                    yield Reject(
                        f"{path}#{lost}",
                        f"row group {group} cannot be decoded from row {row} on: {err}",
                        None,
                    )
                row = end
                break
            if batch is None:
                break
            for raw in _rows(batch):
                if isinstance(raw, str):
                    yield Reject(f"{path}#{row}", raw, None)
                else:
                    # Parquet stores absent fields as nulls; dropping them makes a row read
                    # exactly like the JSONL line it was written from.
                    yield validate(_drop_nulls(raw), f"{path}#{row}")
                row += 1


def _rows(batch: pa.RecordBatch) -> list[dict[str, Any] | str]:
    """The batch's rows as dicts, or for a row that cannot be converted, the reason."""
    try:
        return batch.to_pylist()
    except (pa.ArrowException, ValueError) as err:
        # A string column holding bytes that are not UTF-8 fails the whole batch; row by row
        # only the rows that hold them are lost.
        if batch.num_rows == 1:
            return [f"row cannot be decoded: {err}"]
        return [row for i in range(batch.num_rows) for row in _rows(batch.slice(i, 1))]


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def read_canonical(path: str | Path) -> Iterator[Dialogue | Reject]:
    path = Path(path)
    if path.is_dir():
        files = sorted(
            p for p in path.iterdir() if p.name.endswith((".jsonl", ".jsonl.gz", ".parquet"))
        )
        if not files:
            raise LogReadError(f"{path} holds no .jsonl, .jsonl.gz or .parquet files")
    else:
        files = [path]
    for file in files:
        if file.suffix == ".parquet":
            yield from read_parquet(file)
        else:
            yield from read_jsonl(file)


class CanonicalWriter:
    """Streams dialogues to `.jsonl`, `.jsonl.gz` or `.parquet`; the file appears only when
    the writer closes without an error, so a crash never leaves a half-written log."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        name = self.path.name
        if not name.endswith((".jsonl", ".jsonl.gz", ".parquet")):
            raise LogReadError(f"{path}: output must end in .jsonl, .jsonl.gz or .parquet")
        self.parquet = name.endswith(".parquet")
        self._file = AtomicFile(self.path, "wb")
        self._gzip = (
            gzip.GzipFile(fileobj=self._file.handle, mode="wb", mtime=0)
            if (name.endswith(".gz"))
            else None
        )
        self._parquet: pq.ParquetWriter | None = None
        self._rows: list[dict[str, Any]] = []
        self.count = 0

    def write(self, dialogue: Dialogue) -> None:
        self.count += 1
        if self.parquet:
            self._rows.append(dialogue.model_dump(mode="json"))
            if len(self._rows) >= PARQUET_BATCH:
                self._flush_rows()
            return
        line = json.dumps(dialogue.to_json_dict(), ensure_ascii=False) + "\n"
        (self._gzip or self._file.handle).write(line.encode("utf-8"))

    def write_all(self, dialogues: Iterable[Dialogue]) -> None:
        for dialogue in dialogues:
            self.write(dialogue)

    def _flush_rows(self) -> None:
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self._file.handle, DIALOGUE_SCHEMA)
        self._parquet.write_table(pa.Table.from_pylist(self._rows, schema=DIALOGUE_SCHEMA))
        self._rows = []

    def close(self, commit: bool = True) -> None:
        # The layered writers are closed either way so that none writes to a discarded file
        # later (ParquetWriter does so when garbage-collected).
        if commit and self.parquet and (self._rows or self._parquet is None):
            self._flush_rows()
        if self._parquet is not None:
            self._parquet.close()
        if self._gzip is not None:
            self._gzip.close()
        self._file.close(commit=commit)

    def __enter__(self) -> CanonicalWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.close(commit=exc_type is None)
