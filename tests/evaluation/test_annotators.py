from __future__ import annotations

import random

import pytest

from labelgen.evaluation.annotators import leave_one_out, leave_one_out_dawid_skene, pick
from labelgen.evaluation.consensus import majority_vote


def _items(n: int = 200, annotators: int = 3):
    # every annotator's label is their own id: gold then shows exactly who voted
    return [(f"d{i}#0", [(f"a{j}", f"a{j}") for j in range(annotators)]) for i in range(n)]


def test_the_human_is_never_scored_against_itself():
    loo = leave_one_out(_items(annotators=4), consensus=lambda labels: tuple(sorted(labels)))
    for human, gold, held_out in zip(loo.human, loo.gold, loo.held_out, strict=True):
        assert human == held_out
        assert human not in gold
        assert len(gold) == 3


def test_choice_is_deterministic_per_seed_and_varies_across_seeds_and_items():
    items = _items()
    first = leave_one_out(items, consensus=sorted, seed=7)
    again = leave_one_out(items, consensus=sorted, seed=7)
    other = leave_one_out(items, consensus=sorted, seed=8)
    assert first.held_out == again.held_out
    assert first.held_out != other.held_out
    assert len(set(first.held_out)) == 3
    assert pick("d1#0", 3, seed=7) == pick("d1#0", 3, seed=7)


def test_choice_does_not_depend_on_the_other_items():
    items = _items()
    alone = leave_one_out(items[5:6], consensus=sorted, seed=1)
    together = leave_one_out(items, consensus=sorted, seed=1)
    assert alone.held_out[0] == together.held_out[5]


def test_items_with_too_few_annotators_are_skipped():
    items = [("x", [("a", 1), ("b", 1)]), ("y", [("a", 1), ("b", 2), ("c", 2)])]
    loo = leave_one_out(items, consensus=max)
    assert loo.item_ids == ["y"]
    with pytest.raises(ValueError):
        leave_one_out(items, consensus=max, min_annotators=1)


def test_dawid_skene_leave_one_out_holds_out_the_same_human_and_recovers_truth_better():
    rng = random.Random(1)
    swap = {"x": "y", "y": "z", "z": "x"}
    truth, items = {}, []
    for i in range(300):
        true = rng.choice("xyz")
        truth[f"t{i}"] = true
        votes = [
            ("good1", true if rng.random() < 0.8 else rng.choice("xyz")),
            ("good2", true if rng.random() < 0.8 else rng.choice("xyz")),
            ("adversary", swap[true] if rng.random() < 0.95 else true),
        ]
        items.append((f"t{i}", votes))
    vote = leave_one_out(items, consensus=majority_vote, seed=3)
    ds = leave_one_out_dawid_skene(items, seed=3)
    assert ds.item_ids == vote.item_ids and ds.held_out == vote.held_out
    assert ds.human == vote.human

    def acc(result):
        return sum(g == truth[i] for i, g in zip(result.item_ids, result.gold, strict=True)) / 300

    assert acc(ds) > acc(vote) + 0.1
