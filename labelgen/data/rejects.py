"""Records that break the contract: each one is kept with its origin and the reason."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labelgen.data.atomic import AtomicFile


class LogReadError(Exception):
    """A log that cannot be read at all (missing path, unknown format): the job cannot start."""


@dataclass(frozen=True)
class Reject:
    source: str
    """Where the record came from, e.g. `dev/dialogues_001.json#12` or `log.jsonl:7`."""
    reason: str
    record: Any
    """The raw record as read: parsed JSON where it parsed, else the text."""

    def to_json_dict(self) -> dict[str, Any]:
        return {"source": self.source, "reason": self.reason, "record": self.record}


class RejectWriter:
    """Writes rejects as JSONL; the file only appears, complete, when the writer closes cleanly."""

    def __init__(self, path: str | Path) -> None:
        self._file = AtomicFile(path, "w")
        self.count = 0

    def write(self, reject: Reject) -> None:
        line = json.dumps(reject.to_json_dict(), ensure_ascii=False, default=repr)
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate cannot be written as UTF-8; as a \u escape it can.
            line = json.dumps(reject.to_json_dict(), default=repr)
        self._file.handle.write(line + "\n")
        self.count += 1

    def __enter__(self) -> RejectWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._file.close(commit=exc_type is None)
