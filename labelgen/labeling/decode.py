"""From per-turn and per-token probabilities back to labels: goals, slot spans, confidences."""

from __future__ import annotations

from typing import Any

from labelgen.data.features import SEGMENT_TAGS

BEGIN, INSIDE, OUTSIDE = (SEGMENT_TAGS.index(t) for t in ("B", "I", "O"))


def decode_goals(tags: list[int]) -> list[int]:
    """Goal index per turn (-1: no goal) from one dialogue's B/I/O tags.

    An I with no goal open (after O, or first) opens one: the model saw a goal's turn, and
    dropping it would lose the turn's goal entirely.
    """
    goals, current, count = [], -1, 0
    for tag in tags:
        if tag == OUTSIDE:
            current = -1
        elif tag == BEGIN or current < 0:
            current, count = count, count + 1
        goals.append(current)
    return goals


def decode_slots(
    tags: list[int],
    confidences: list[float],
    offsets: list[list[int]],
    tag_names: list[str],
    text: str,
) -> list[dict[str, Any]]:
    """BIO tags over a user utterance's tokens -> character spans with names and values.

    A span runs from a B-x over following I-x tokens; an I-x that does not continue an x span
    starts one (lenient, as for goals). Its confidence is its least confident token.
    """
    spans: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for tag, conf, (start, end) in zip(tags, confidences, offsets, strict=False):
        name = tag_names[tag]
        if name == "O":
            current = None
            continue
        prefix, slot = name.split("-", 1)
        if prefix == "I" and current is not None and current["slot"] == slot:
            current["end"] = end
            current["confidence"] = min(current["confidence"], conf)
            continue
        current = {"slot": slot, "start": start, "end": end, "confidence": conf}
        spans.append(current)
    for span in spans:
        span["value"] = text[span["start"] : span["end"]]
    return spans
