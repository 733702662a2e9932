"""Reader for the User Satisfaction Simulation (USS) tab-separated files (SGD.txt, CCPE.txt, ...).

Format: one utterance per line, `ROLE<TAB>text<TAB>act<TAB>ratings`, ratings (1-5, one per
annotator, comma-separated) on USER lines only; dialogues separated by blank lines; a final
`USER<TAB>OVERALL<TAB><TAB>ratings` line rates the whole dialogue. The published files differ
in two ways a reader must take: ReDial writes the roles in lower case (`user`, `system`; its
OVERALL line stays `USER`), and JDDC adds a fifth field to every line, empty except on the
OVERALL line, where it holds each annotator's explanation of the rating, `;`-separated.

One blank-line block is one record (a line holding only ASCII whitespace counts as blank): a
broken block is rejected alone and the next one read, so input blocks = accepted + rejected.
Nothing is capped.

Mapping onto the contract:
- `dialogue_id` = `<file stem>-<block number, from 0>`: USS has no ids, and numbering every
  block, rejected ones included, keeps the ids of the good ones stable.
- turn = a USER line and the SYSTEM line(s) after it (several SYSTEM lines in a row, as in
  CCPE, are joined with a newline); SYSTEM lines before the first USER line become
  `system_opening`. Consecutive USER lines (CCPE) are separate turns, the earlier without a
  system response.
- ratings: the rating on a USER line judges the system response before it, so the ratings of
  USER line k become per-annotator `satisfaction` labels on turn k-1, the turn holding that
  response. The first USER line's ratings judge no turn's response and are kept as the
  dialogue's `opening_satisfaction`; the last turn's response is judged by no later line
  (the OVERALL line judges the dialogue). Annotators are matched by position; USS does not
  name them, so `annotator` is None.
- the OVERALL line becomes per-annotator dialogue `rating`s (and `explanation`s, JDDC); acts
  become `user_acts` / `system_acts` where present.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import zip_longest
from pathlib import Path
from typing import Any

from labelgen.data.canonical import validate
from labelgen.data.rejects import LogReadError, Reject
from labelgen.data.schema import Dialogue


class UssFormatError(ValueError):
    pass


def read_uss(path: str | Path) -> Iterator[Dialogue | Reject]:
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.txt"))
        if not files:
            raise LogReadError(f"{path} holds no USS .txt files")
    else:
        files = [path]
    for file in files:
        yield from _read_file(file)


def _read_file(file: Path) -> Iterator[Dialogue | Reject]:
    block: list[tuple[int, bytes]] = []
    index = 0
    try:
        handle = file.open("rb")
    except OSError as err:
        yield Reject(str(file), f"file cannot be read: {err.strerror or err}", None)
        return
    with handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                block.append((number, line))
            elif block:
                yield _block(file, index, block)
                index += 1
                block = []
    if block:
        yield _block(file, index, block)


def _block(file: Path, index: int, lines: list[tuple[int, bytes]]) -> Dialogue | Reject:
    source = f"{file}:{lines[0][0]}-{lines[-1][0]}"
    try:
        text = [line.decode("utf-8").rstrip("\r\n") for _, line in lines]
    except UnicodeDecodeError as err:
        raw = [line.decode("utf-8", errors="backslashreplace") for _, line in lines]
        return Reject(source, f"block is not UTF-8 ({err.reason})", raw)
    try:
        converted = convert_block(f"{file.stem}-{index:05d}", text)
    except UssFormatError as err:
        return Reject(source, f"not a USS dialogue: {err}", text)
    return validate(converted, source)


def _ratings(field: str, where: str) -> list[int]:
    try:
        ratings = [int(r) for r in field.split(",")]
    except ValueError:
        raise UssFormatError(
            f"{where}: ratings {field!r} are not comma-separated integers"
        ) from None
    if not all(1 <= r <= 5 for r in ratings):
        raise UssFormatError(f"{where}: ratings {field!r} outside 1-5")
    return ratings


def convert_block(dialogue_id: str, lines: list[str]) -> dict[str, Any]:
    """One blank-line-separated USS block as a canonical dict (validated by the caller)."""
    opening: list[str] = []
    turns: list[dict[str, Any]] = []
    user_ratings: list[list[int]] = []
    overall: list[int] | None = None
    explanations: list[str] = []
    for offset, line in enumerate(lines):
        where = f"line {offset + 1} of the block"
        fields = line.split("\t")
        if len(fields) not in (4, 5):
            raise UssFormatError(
                f"{where} has {len(fields)} tab-separated fields, expected 4 (5 with JDDC's "
                "explanations)"
            )
        role, text, act, ratings = fields[:4]
        # Upper-cased so that ReDial's `user`/`system` read; anything else is still refused.
        role = role.upper() if role.lower() in ("user", "system") else role
        if overall is not None:
            raise UssFormatError(f"{where} follows the OVERALL line, which must be last")
        if role == "USER" and text == "OVERALL":
            overall = _ratings(ratings, where)
            explanations = fields[4].split(";") if len(fields) == 5 and fields[4] else []
            continue
        if len(fields) == 5 and fields[4]:
            raise UssFormatError(f"{where}: only the OVERALL line carries explanations")
        if role == "USER":
            user_ratings.append(_ratings(ratings, where))
            turns.append({"user_text": text, "user_acts": [act] if act else None})
        elif role == "SYSTEM":
            if ratings:
                raise UssFormatError(f"{where}: a SYSTEM line carries ratings")
            if not turns:
                opening.append(text)
                continue
            turn = turns[-1]
            turn["system_text"] = (
                text if "system_text" not in turn else (f"{turn['system_text']}\n{text}")
            )
            if act:
                turn["system_acts"] = [*turn.get("system_acts", []), act]
        else:
            raise UssFormatError(f"{where}: role {role!r} is neither USER nor SYSTEM")
    if not turns:
        raise UssFormatError("no USER utterance")
    for turn, ratings in zip(turns, user_ratings[1:], strict=False):
        turn["annotations"] = [{"satisfaction": r} for r in ratings]
    if len(explanations) > len(overall or []):
        raise UssFormatError(
            f"the OVERALL line has {len(explanations)} explanations for "
            f"{len(overall or [])} ratings"
        )
    dialogue_annotations = [
        {"rating": rating, "opening_satisfaction": opening_rating, "explanation": explanation}
        for rating, opening_rating, explanation in zip_longest(
            overall or [], user_ratings[0], [e.strip() or None for e in explanations]
        )
    ]
    return {
        "dialogue_id": dialogue_id,
        "turns": turns,
        "system_opening": "\n".join(opening) if opening else None,
        "annotations": dialogue_annotations,
    }
