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


def _as_slice(indices: np.ndarray) -> slice | np.ndarray:
    """A view's slice for evenly spaced indices (`FeatureSpace.slot_tags` puts each I-x right
    after its B-x: O, B-a, I-a, B-b, I-b, ...), which numpy reads far faster than a list."""
    if len(indices) > 1:
        step = int(indices[1] - indices[0])
        if step > 0 and (np.diff(indices) == step).all():
            return slice(int(indices[0]), int(indices[-1]) + 1, step)
    return indices


def viterbi_bio_batch(
    probs: np.ndarray, lengths: np.ndarray, tag_names: list[str]
) -> list[tuple[list[int], list[float]]]:
    """The most probable tag sequence of each utterance, in which every I-x follows a B-x or
    an I-x.

    probs [N, L, T]: per-token tag probabilities of N utterances, the first `lengths[i]`
    tokens of row i real (the rest ignored). Token-wise argmax breaks values apart ("the" as
    B-date, "12th" as B-other) where the model hesitates inside a span; the constraint makes
    the tags one reading of the utterance. O(L * T) per utterance: an I-x has two possible
    predecessors, every other tag may follow anything. The whole batch steps through its
    tokens together, as one utterance at a time did token by token: one Python loop per batch
    rather than per utterance, the same arithmetic on each row, so the same tags. Returns each
    utterance's tags and each token's probability of its tag.
    """
    n, width = len(probs), int(lengths.max(initial=0))
    if width == 0:
        return [([], []) for _ in range(n)]
    inside, begin = _inside_links(tuple(tag_names))
    at_inside, at_begin = _as_slice(inside), _as_slice(begin)
    # longest first: the utterances still running at token t are then the first `running[t]`
    order = np.argsort(-lengths, kind="stable")
    probs, lengths = probs[order, :width], lengths[order]
    running = (lengths[None, :] > np.arange(width)[:, None]).sum(1)
    logp = np.log(np.clip(probs, 1e-12, None))
    score = logp[:, 0].copy()
    score[:, at_inside] = -np.inf  # an utterance cannot open inside a value
    back = np.zeros(probs.shape, dtype=np.int32)
    for t in range(1, width):
        k = running[t]  # an utterance that has ended keeps its last token's scores
        now = score[:k]
        back[:k, t] = now.argmax(1)[:, None]
        new = now.max(1)[:, None] + logp[:k, t]
        from_begin, to_inside = now[:, at_begin], now[:, at_inside]
        keep = from_begin >= to_inside
        new[:, at_inside] = np.maximum(from_begin, to_inside) + logp[:k, t, at_inside]
        back[:k, t, at_inside] = np.where(keep, begin, inside)
        score[:k] = new
    tags = np.zeros((n, width), dtype=np.int64)
    current = score.argmax(1)
    for t in range(width - 1, -1, -1):
        k = running[t]
        tags[:k, t] = current[:k]
        if t:
            current[:k] = back[np.arange(k), t, current[:k]]
    confidences = np.take_along_axis(probs, tags[:, :, None], 2)[:, :, 0]
    decoded: list[tuple[list[int], list[float]]] = [([], [])] * n
    for row, i in enumerate(order.tolist()):
        k = int(lengths[row])
        decoded[i] = (tags[row, :k].tolist(), confidences[row, :k].tolist())
    return decoded


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
