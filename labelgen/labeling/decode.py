"""From per-turn and per-token probabilities back to labels: goals, slot spans, confidences."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

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


@lru_cache(maxsize=8)
def _inside_links(tag_names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the I-x tags and of the B-x tag each may follow (besides itself)."""
    index = {name: i for i, name in enumerate(tag_names)}
    inside = [i for i, n in enumerate(tag_names) if n.startswith("I-") and "B-" + n[2:] in index]
    begin = [index["B-" + tag_names[i][2:]] for i in inside]
    return np.array(inside, dtype=np.int64), np.array(begin, dtype=np.int64)


def viterbi_bio(probs: np.ndarray, tag_names: list[str]) -> tuple[list[int], list[float]]:
    """The most probable tag sequence in which every I-x follows a B-x or an I-x.

    probs [L, T]: per-token tag probabilities. Token-wise argmax breaks values apart ("the" as
    B-date, "12th" as B-other) where the model hesitates inside a span; the constraint makes
    the tags one reading of the utterance. O(L * T): an I-x has two possible predecessors,
    every other tag may follow anything. Returns the tags and each token's probability of its
    tag.
    """
    length = len(probs)
    if length == 0:
        return [], []
    inside, begin = _inside_links(tuple(tag_names))
    logp = np.log(np.clip(probs, 1e-12, None))
    score = logp[0].copy()
    score[inside] = -np.inf  # an utterance cannot open inside a value
    back = np.zeros((length, probs.shape[1]), dtype=np.int64)
    for t in range(1, length):
        prev = int(score.argmax())
        new = score[prev] + logp[t]
        back[t] = prev
        from_begin = score[begin] >= score[inside]
        best = np.where(from_begin, score[begin], score[inside])
        new[inside] = best + logp[t, inside]
        back[t, inside] = np.where(from_begin, begin, inside)
        score = new
    tags = [int(score.argmax())]
    for t in range(length - 1, 0, -1):
        tags.append(int(back[t, tags[-1]]))
    tags.reverse()
    return tags, [float(probs[t, tag]) for t, tag in enumerate(tags)]


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
