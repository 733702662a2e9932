"""What each task's items are, read off reference dialogues: reference labels and annotator votes.

Item ids (they seed the choice of the single-pass human, see `annotators`):
- a turn: `<dialogue_id>#<turn_index>`, shared by all of the turn's tasks;
- the first user line's rating (USS `opening_satisfaction`): `<dialogue_id>#opening`;
- a reference goal: `<dialogue_id>#goal:<goal_id>`;
- a dialogue's segmentation: `<dialogue_id>`.

Annotators are matched by id, or by position where the log gives none (USS): see
`consensus.annotator_ids`. An annotator who left a label empty is not a voter for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from labelgen.data.schema import Dialogue, SlotSpan, Turn
from labelgen.evaluation.consensus import Span, annotator_ids

Key = tuple[str, int]
"""(dialogue_id, turn_index): where the model's prediction for an item sits."""

TURN_TASKS = ("intent", "slots", "satisfaction")
FEEDBACK_TASKS = ("barge_in", "rephrase", "rejection", "explicit_feedback")


@dataclass
class Items:
    """One task's items, as aligned lists."""

    ids: list[str] = field(default_factory=list)
    keys: list[Key | None] = field(default_factory=list)
    """None where no turn holds the item (a USS opening rating): no model prediction exists."""
    reference: list[Any] = field(default_factory=list)
    """The log's own reference label, None where it has none."""
    votes: list[list[tuple[str, Any]]] = field(default_factory=list)
    """(annotator id, label) per annotator who gave one."""
    earlier: dict[str, tuple[Key, ...]] = field(default_factory=dict)
    """Item id -> the item's earlier turns, latest first, read where the key's turn holds no
    prediction (a goal's: see `goal_items`)."""

    def add(
        self,
        item_id: str,
        key: Key | None,
        reference: Any,
        votes: list,
        earlier: tuple[Key, ...] = (),
    ) -> None:
        self.ids.append(item_id)
        self.keys.append(key)
        self.reference.append(reference)
        self.votes.append(votes)
        if earlier:
            self.earlier[item_id] = earlier

    def map(self, fn: Callable[[Any], Any]) -> Items:
        """The same items with every label (reference and votes) passed through `fn`."""
        return Items(
            list(self.ids),
            list(self.keys),
            [None if r is None else fn(r) for r in self.reference],
            [[(a, fn(v)) for a, v in votes] for votes in self.votes],
            dict(self.earlier),
        )

    @property
    def has_reference(self) -> bool:
        return any(r is not None for r in self.reference)

    @property
    def has_votes(self) -> bool:
        return any(self.votes)


def spans(slots: Sequence[SlotSpan] | None) -> frozenset[Span] | None:
    return None if slots is None else frozenset((s.slot, s.start, s.end) for s in slots)


def _turn_label(task: str, source: Turn | Any) -> Any:
    value = getattr(source, task)
    return spans(value) if task == "slots" else value


def turn_items(dialogues: Iterable[Dialogue], task: str) -> Items:
    """Per-turn items for intent, slots, satisfaction and the feedback flags."""
    items = Items()
    for d in dialogues:
        for t, turn in enumerate(d.turns):
            anns = turn.annotations or []
            ids = annotator_ids([a.annotator for a in anns])
            votes = (
                [(i, _turn_label(task, a)) for i, a in zip(ids, anns, strict=True)]
                if task in TURN_TASKS
                else []
            )
            votes = [(i, v) for i, v in votes if v is not None]
            reference = _turn_label(task, turn)
            if reference is not None or votes:
                items.add(f"{d.dialogue_id}#{t}", (d.dialogue_id, t), reference, votes)
    return items


def opening_items(dialogues: Iterable[Dialogue]) -> Items:
    """USS's first user-line ratings: judged by annotators, held by no turn."""
    items = Items()
    for d in dialogues:
        anns = d.annotations or []
        ids = annotator_ids([a.annotator for a in anns])
        votes = [(i, a.opening_satisfaction) for i, a in zip(ids, anns, strict=True)]
        votes = [(i, v) for i, v in votes if v is not None]
        if votes:
            items.add(f"{d.dialogue_id}#opening", None, None, votes)
    return items


def reference_tags(dialogue: Dialogue) -> tuple[str, ...] | None:
    """B/I/O per turn from the reference goal ids; None when the log has no goals."""
    if dialogue.goals is None:
        return None
    tags, previous = [], None
    for turn in dialogue.turns:
        goal = turn.goal_id
        tags.append("O" if goal is None else "I" if goal == previous else "B")
        previous = goal
    return tuple(tags)


def segment_items(dialogues: Iterable[Dialogue]) -> Items:
    """One item per dialogue, labelled with its tuple of tags.

    One annotator segments the whole dialogue, as a human would; only annotators who tagged
    every turn are voters. Keys point at the first turn; the scorer reads all turns.
    """
    items = Items()
    for d in dialogues:
        per_annotator: dict[str, list[str | None]] = {}
        for t, turn in enumerate(d.turns):
            anns = turn.annotations or []
            for i, a in zip(annotator_ids([a.annotator for a in anns]), anns, strict=True):
                per_annotator.setdefault(i, [None] * len(d.turns))[t] = a.segment
        votes = [
            (i, tuple(tags))
            for i, tags in per_annotator.items()
            if all(x is not None for x in tags)
        ]
        reference = reference_tags(d)
        if reference is not None or votes:
            items.add(d.dialogue_id, (d.dialogue_id, 0), reference, votes)
    return items


def goal_items(dialogues: Iterable[Dialogue]) -> Items:
    """One item per reference goal, keyed by the goal's last turn.

    Matching rule: a reference goal's predicted outcome is the outcome of the predicted goal
    that covers the reference goal's last turn; where the model put that turn in no goal, of
    the predicted goal covering the reference goal's latest turn that one covers (`earlier`).
    Why the fallback: success or failure shows in a system response, and the turns after it
    ("No, that's all, thanks") serve the goal or none by the log's own conventions (SGD keeps
    the intent after a notified success, drops it after "anything else?"); a model that ends
    the goal a turn early has made a segmentation error, which boundary F1 scores, not an
    outcome error. The single annotator judges each reference goal's outcome directly, so
    without the fallback the model alone would be charged for segmentation here. A goal none
    of whose turns lies in a predicted goal is still the answer "no goal", wrong either way.
    A goal no turn serves has no last turn and is skipped.
    """
    items = Items()
    for d in dialogues:
        served: dict[str, list[int]] = {}
        for t, turn in enumerate(d.turns):
            if turn.goal_id is not None:
                served.setdefault(turn.goal_id, []).append(t)
        for goal in d.goals or []:
            if goal.goal_id not in served:
                continue
            anns = goal.annotations or []
            ids = annotator_ids([a.annotator for a in anns])
            votes = [
                (i, a.success) for i, a in zip(ids, anns, strict=True) if a.success is not None
            ]
            if goal.success is not None or votes:
                *before, last = [(d.dialogue_id, t) for t in served[goal.goal_id]]
                item_id = f"{d.dialogue_id}#goal:{goal.goal_id}"
                items.add(item_id, last, goal.success, votes, tuple(reversed(before)))
    return items
