"""Gold labels for scoring: the reference log's items per task, and their gold.

Where the log has annotator votes, the gold is the leave-one-out consensus (`annotators`) and
the held-out annotator plays the single-pass human; where it has reference labels only (SGD),
the gold is the reference and there is no human.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from labelgen.data.schema import Dialogue
from labelgen.evaluation.annotators import leave_one_out, leave_one_out_dawid_skene
from labelgen.evaluation.consensus import binary_vote, majority_vote, rating_mode, span_vote
from labelgen.evaluation.items import (
    Items,
    Key,
    goal_items,
    opening_items,
    segment_items,
    turn_items,
)


def _dissatisfied(rating: int) -> bool:
    return rating <= 2


def _segment_consensus(tag_sequences: list[tuple[str, ...]]) -> tuple[str, ...]:
    return tuple(majority_vote(list(column)) for column in zip(*tag_sequences, strict=True))


CONSENSUS: dict[str, Callable[[list[Any]], Any]] = {
    "intent": majority_vote,
    "slots": span_vote,
    "segment": _segment_consensus,
    "goal_success": lambda votes: binary_vote(votes, tie=True),
    "satisfaction": rating_mode,
    "dissatisfaction": lambda votes: binary_vote(votes, tie=False),
}
"""Task -> consensus of annotator labels (tie rules in `consensus`)."""


def task_items(dialogues: Sequence[Dialogue], task: str, include_opening: bool = False) -> Items:
    """The task's items in a reference log."""
    if task == "segment":
        return segment_items(dialogues)
    if task == "goal_success":
        return goal_items(dialogues)
    if task in ("satisfaction", "dissatisfaction"):
        items = turn_items(dialogues, "satisfaction")
        if include_opening:
            extra = opening_items(dialogues)
            items = Items(
                items.ids + extra.ids,
                items.keys + extra.keys,
                items.reference + extra.reference,
                items.votes + extra.votes,
            )
        return items.map(_dissatisfied) if task == "dissatisfaction" else items
    return turn_items(dialogues, task)


@dataclass
class Gold:
    """A task's scored items: gold, and the single annotator's labels where annotators exist."""

    ids: list[str]
    keys: list[Key | None]
    gold: list[Any]
    human: list[Any] | None
    source: str
    reference: list[Any] | None = None
    """The log's reference labels of the same items, where it has both kinds."""
    earlier: dict[str, tuple[Key, ...]] = field(default_factory=dict)
    """Item id -> its earlier turns, read where the key's turn holds no prediction
    (`Items.earlier`)."""

    @property
    def dialogues(self) -> list[str]:
        """The dialogue of each item: the bootstrap's resampling unit."""
        return [
            key[0] if key is not None else item_id.removesuffix("#opening")
            for item_id, key in zip(self.ids, self.keys, strict=True)
        ]


DAWID_SKENE_TASKS = ("intent", "goal_success", "satisfaction", "dissatisfaction")
"""Tasks with one categorical label per item, which Dawid-Skene can aggregate; slot sets and
segmentations keep the majority rule."""


def gold_labels(items: Items, task: str, seed: int = 0, consensus: str = "majority") -> Gold | None:
    """Leave-one-out gold where the items have votes, else the reference labels.

    `consensus` is "majority" (vote with the tie rules of `CONSENSUS`) or "dawid-skene"
    (annotator confusion matrices learned by EM over all items, for `DAWID_SKENE_TASKS`).
    """
    if consensus not in ("majority", "dawid-skene"):
        raise ValueError(f"consensus must be majority or dawid-skene, got {consensus!r}")
    if items.has_votes:
        position = {item_id: i for i, item_id in enumerate(items.ids)}
        rows = [(i, v) for i, v in zip(items.ids, items.votes, strict=True)]
        if consensus == "dawid-skene" and task in DAWID_SKENE_TASKS:
            loo = leave_one_out_dawid_skene(rows, seed)
        else:
            loo = leave_one_out(rows, CONSENSUS[task], seed)
        keys = [items.keys[position[i]] for i in loo.item_ids]
        reference = [items.reference[position[i]] for i in loo.item_ids]
        has_reference = any(r is not None for r in reference)
        return Gold(
            loo.item_ids,
            keys,
            loo.gold,
            loo.human,
            "leave_one_out_consensus",
            reference if has_reference else None,
            items.earlier,
        )
    if items.has_reference:
        kept = [i for i, r in enumerate(items.reference) if r is not None]
        return Gold(
            [items.ids[i] for i in kept],
            [items.keys[i] for i in kept],
            [items.reference[i] for i in kept],
            None,
            "reference",
            earlier=items.earlier,
        )
    return None
