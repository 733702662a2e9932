"""One entry point over every log format: `read_log(path, fmt)` streams dialogues and rejects."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from labelgen.data.rejects import LogReadError, Reject
from labelgen.data.schema import Dialogue

FORMATS = ("canonical", "sgd", "uss")


def _reader(fmt: str) -> Callable[[Path], Iterator[Dialogue | Reject]]:
    if fmt == "canonical":
        from labelgen.data.canonical import read_canonical

        return read_canonical
    if fmt == "sgd":
        from labelgen.data.sgd import read_sgd

        return read_sgd
    if fmt == "uss":
        from labelgen.data.uss import read_uss

        return read_uss
    raise LogReadError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def detect_format(path: Path) -> str:
    name = path.name
    if name.endswith((".jsonl", ".jsonl.gz", ".parquet")):
        return "canonical"
    if name.endswith(".txt"):
        return "uss"
    if path.is_dir():
        if any(path.glob("dialogues_*.json")) or any(path.glob("dialogues_*.json.gz")):
            return "sgd"
        if any(path.glob("*.txt")):
            return "uss"
        return "canonical"
    if name.startswith("dialogues_"):
        return "sgd"
    raise LogReadError(f"cannot tell the format of {path}; pass --format")


def read_log(path: str | Path, fmt: str = "auto") -> Iterator[Dialogue | Reject]:
    """Dialogues and rejects from a log, in input order: every input record comes out as one
    or the other (each format's module says what a record is), never neither.

    A second dialogue with an id seen before is rejected: ids key labels, resumption and
    evaluation downstream, so a duplicate would silently overwrite or double-count.

    Raises:
        LogReadError: the path is missing or unreadable, or its format unknown. Raised on the
            first `next()`, before any record is yielded.
    """
    path = Path(path)
    if not path.exists():
        raise LogReadError(f"{path} does not exist")
    try:
        if path.is_dir():
            next(path.iterdir(), None)
        else:
            path.open("rb").close()
    except OSError as err:
        raise LogReadError(f"{path} cannot be read: {err.strerror}") from err
    reader = _reader(detect_format(path) if fmt == "auto" else fmt)
    seen: set[str] = set()
    for item in reader(path):
        if isinstance(item, Dialogue):
            if item.dialogue_id in seen:
                yield Reject(
                    item.source or str(path),
                    f"duplicate dialogue_id {item.dialogue_id!r}: an earlier record has it",
                    item.to_json_dict(),
                )
                continue
            seen.add(item.dialogue_id)
        yield item


def files_state(path: str | Path) -> list[tuple[str, int, int]]:
    """What the files at `path` are now: (name under `path`, size, modification time in ns)
    of the file, or of every file under the directory. A cache or a resumed job compares it
    to tell a log (or model) rewritten in place from the one it saw, without reading it."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    state = []
    for file in files:
        try:
            stat = file.stat()
        except OSError:
            continue  # unreadable or gone: whoever reads it reports that
        name = "" if file == path else file.relative_to(path).as_posix()
        state.append((name, stat.st_size, stat.st_mtime_ns))
    return state
