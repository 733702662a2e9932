"""The canonical log: JSONL (one dialogue per line, optionally gzip) or Parquet (one per row)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from labelgen.data.arrow import DIALOGUE_SCHEMA
from labelgen.data.atomic import AtomicFile
from labelgen.data.rejects import LogReadError, Reject
from labelgen.data.schema import Dialogue, explain

PARQUET_BATCH = 256
"""Dialogues per Parquet row group: small enough to stream, large enough to compress well."""


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
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as lines:
        for number, line in enumerate(lines, start=1):
            source = f"{path}:{number}"
            line = line.rstrip(b"\r\n")
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as err:
                text = line.decode("utf-8", errors="backslashreplace")
                yield Reject(source, f"line is not UTF-8 ({err.reason} at byte {err.start})", text)
                continue
            if not text.strip():
                continue
            try:
                raw = json.loads(text)
            except json.JSONDecodeError as err:
                yield Reject(source, f"invalid JSON: {err.msg} at column {err.colno}", text)
                continue
            yield validate(raw, source)


def read_parquet(path: Path) -> Iterator[Dialogue | Reject]:
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise LogReadError(f"{path} is not a readable Parquet file: {err}") from err
    row = 0
    for batch in parquet.iter_batches(batch_size=PARQUET_BATCH):
        for raw in batch.to_pylist():
            # Parquet stores absent fields as nulls; dropping them makes a row read exactly
            # like the JSONL line it was written from.
            yield validate(_drop_nulls(raw), f"{path}#{row}")
            row += 1


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
