"""The single-annotator baseline: leave one annotator out.

For every item with at least `min_annotators` labels, one annotator, drawn with
`random.Random(f"{seed}:{item_id}")`, plays the single-pass human, and the gold label is the
consensus of the others. The model is scored against the same gold, so model and human are
compared on identical items and labels. The draw depends only on (seed, item id, number of
labels): the same seed always picks the same annotator, and a turn's tasks (intent, slots,
satisfaction) share an item id, so one human labels the whole turn.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from labelgen.evaluation.consensus import dawid_skene

L = TypeVar("L", bound=Hashable)
G = TypeVar("G")

MIN_ANNOTATORS = 3
"""With fewer, the "consensus" of the rest would be one annotator: no consensus at all."""


@dataclass(frozen=True)
class LeaveOneOut(Generic[L, G]):
    """Aligned lists over the items that had enough annotators."""

    item_ids: list[str]
    human: list[L]
    """The held-out annotator's label."""
    gold: list[G]
    """Consensus of the other annotators."""
    held_out: list[str]
    """Id of the annotator who played the human."""


def pick(item_id: str, n: int, seed: int) -> int:
    """Position of the annotator who plays the human for this item."""
    return random.Random(f"{seed}:{item_id}").randrange(n)


def leave_one_out(
    items: Sequence[tuple[str, Sequence[tuple[str, L]]]],
    consensus: Callable[[list[L]], G],
    seed: int = 0,
    min_annotators: int = MIN_ANNOTATORS,
) -> LeaveOneOut[L, G]:
    """Single-annotator labels and leave-one-out gold for each item.

    Args:
        items: (item id, [(annotator id, label), ...]) per item; labels that are missing must
            already be left out (an annotator who did not label the item is not a voter).
        consensus: labels of the remaining annotators -> gold label.
        seed: one seed, one choice of human per item.
        min_annotators: items with fewer labels are skipped.
    """
    if min_annotators < 2:
        raise ValueError("leave-one-out needs at least 2 annotators: one human, one for gold")
    result: LeaveOneOut[L, G] = LeaveOneOut([], [], [], [])
    for item_id, votes in items:
        if len(votes) < min_annotators:
            continue
        j = pick(item_id, len(votes), seed)
        annotator, label = votes[j]
        rest = [other for k, (_, other) in enumerate(votes) if k != j]
        result.item_ids.append(item_id)
        result.human.append(label)
        result.gold.append(consensus(rest))
        result.held_out.append(annotator)
    return result


def leave_one_out_dawid_skene(
    items: Sequence[tuple[str, Sequence[tuple[str, L]]]],
    seed: int = 0,
    min_annotators: int = MIN_ANNOTATORS,
) -> LeaveOneOut[L, L]:
    """`leave_one_out` with Dawid-Skene as the consensus: the same human per item (same seed),
    and one EM over every item's remaining labels, so that the annotators' confusion matrices
    are learned from all items while no item's gold ever sees its own human's label."""
    chosen: list[tuple[str, str, L]] = []
    triples: list[tuple[str, str, L]] = []
    for item_id, votes in items:
        if len(votes) < min_annotators:
            continue
        j = pick(item_id, len(votes), seed)
        chosen.append((item_id, *votes[j]))
        triples += [(item_id, a, label) for k, (a, label) in enumerate(votes) if k != j]
    gold = dawid_skene(triples)
    return LeaveOneOut(
        [item_id for item_id, _, _ in chosen],
        [label for _, _, label in chosen],
        [gold[item_id] for item_id, _, _ in chosen],
        [annotator for _, annotator, _ in chosen],
    )
