"""Consensus of several annotators: majority vote with fixed tie rules, and Dawid-Skene.

Tie rules (each chosen so that the gold label never depends on the order annotators are listed
in, and each tested):
- nominal labels (intent, segment tag): the smallest tied label in sort order. Arbitrary, but
  deterministic; with two annotators left after leave-one-out a tie is common, and any rule
  that looked at the annotators' order would quietly favour whoever is listed first.
- binary labels: the caller names the class a tie goes to. The evaluation sends a tie to the
  "no problem" class: not dissatisfied, goal succeeded. A split vote is not evidence of a
  problem, and on USS-SGD this rule reproduces the single-annotator figures in DESIGN.md
  (accuracy 0.92, F1 0.30): seed 0 gives 0.916 / 0.311 over rated turns. Binary
  dissatisfaction is the majority of the binarized votes, not the binarized 5-class mode:
  that (ties to the lowest rating) gives 0.888 / 0.397, ties to "dissatisfied" the same, and
  "mean rating <= 2" 0.909 / 0.137.
- ordinal ratings (5-class satisfaction): the lowest tied mode. This is what the USS paper's
  code does (`np.argmax` over the rating counts), so the 5-class protocol matches it.
- slot spans: a span is in the consensus when more than half of the annotators marked it
  exactly (same slot, start and end); a tied span is left out, like a tied binary vote.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from typing import TypeVar

L = TypeVar("L", bound=Hashable)

Span = tuple[str, int, int]
"""(slot, start, end): what an exact-span match compares."""


def majority_vote(labels: Sequence[L]) -> L:
    """The most frequent label; a tie goes to the smallest tied label in sort order."""
    if not labels:
        raise ValueError("majority_vote needs at least one label")
    counts = Counter(labels)
    top = max(counts.values())
    return min((label for label, count in counts.items() if count == top), key=_sort_key)


def binary_vote(votes: Sequence[bool], tie: bool = False) -> bool:
    """True when more than half the votes are True; an exact split gives `tie`."""
    if not votes:
        raise ValueError("binary_vote needs at least one vote")
    yes = sum(bool(v) for v in votes)
    if 2 * yes == len(votes):
        return tie
    return 2 * yes > len(votes)


def rating_mode(ratings: Sequence[int]) -> int:
    """The most frequent rating; a tie goes to the lowest tied rating (the USS paper's rule)."""
    if not ratings:
        raise ValueError("rating_mode needs at least one rating")
    counts = Counter(ratings)
    top = max(counts.values())
    return min(r for r, c in counts.items() if c == top)


def span_vote(annotations: Sequence[Iterable[Span]]) -> frozenset[Span]:
    """Spans marked by more than half of the annotators (each annotator's spans as a set)."""
    if not annotations:
        raise ValueError("span_vote needs at least one annotator")
    counts = Counter(span for spans in annotations for span in set(spans))
    return frozenset(span for span, c in counts.items() if 2 * c > len(annotations))


def annotator_ids(ids: Sequence[str | None]) -> list[str]:
    """Ids for an item's annotators: the given id, or `#<position>` where the log has none.

    USS names no annotators, only positions in a comma-separated list; position j is taken to
    be the same annotator across items. That is an assumption the data does not promise, so
    Dawid-Skene's per-annotator confusion matrices on USS are per position, not per person.
    """
    return [f"#{j}" if annotator is None else annotator for j, annotator in enumerate(ids)]


def dawid_skene(
    triples: Iterable[tuple[Hashable, str, Hashable]], n_iter: int = 100, tol: float = 1e-5
) -> dict[Hashable, Hashable]:
    """Dawid-Skene consensus over (item, annotator, label) triples: item -> most likely label.

    EM over one confusion matrix per annotator, started from the majority vote; an annotator
    who is consistently wrong in the same way still carries information, which a vote cannot
    use. Uses crowd-kit's implementation. Labels are mapped to integers first so that any
    hashable label (bool, str, int) round-trips unchanged.
    """
    import warnings

    import pandas as pd
    from crowdkit.aggregation import DawidSkene

    rows = list(triples)
    if not rows:
        return {}
    labels = sorted({label for _, _, label in rows}, key=_sort_key)
    code = {label: i for i, label in enumerate(labels)}
    items = list(dict.fromkeys(item for item, _, _ in rows))
    item_code = {item: i for i, item in enumerate(items)}
    frame = pd.DataFrame(
        {
            "task": [item_code[item] for item, _, _ in rows],
            "worker": [str(worker) for _, worker, _ in rows],
            "label": [code[label] for _, _, label in rows],
        }
    )
    with warnings.catch_warnings():
        # crowd-kit 1.4 still passes pandas keywords that pandas 3 deprecates; harmless today
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        result = DawidSkene(n_iter=n_iter, tol=tol).fit_predict(frame)
    return {items[int(task)]: labels[int(label)] for task, label in result.items()}


def _sort_key(label: Hashable) -> tuple[str, object]:
    # Labels of one task share a type and sort naturally; keying on the type name first never
    # compares a str with an int, and anything without a natural order sorts by its repr.
    if isinstance(label, str | int | float):
        return (type(label).__name__, label)
    return (type(label).__name__, repr(label))
