from __future__ import annotations

import random

import pytest

from labelgen.evaluation.consensus import (
    annotator_ids,
    binary_vote,
    dawid_skene,
    majority_vote,
    rating_mode,
    span_vote,
)


def test_majority_vote_takes_the_most_frequent_label():
    assert majority_vote(["b", "a", "b"]) == "b"


def test_majority_vote_tie_goes_to_the_smallest_label_whatever_the_order():
    assert majority_vote(["PlaySong", "AddAlarm"]) == "AddAlarm"
    assert majority_vote(["AddAlarm", "PlaySong"]) == "AddAlarm"
    assert majority_vote(["I", "B", "O"]) == "B"
    # natural order for numbers, not string order ("10" < "9")
    assert majority_vote([10, 9]) == 9


def test_binary_vote_tie_goes_to_the_named_class():
    assert binary_vote([True, True, False]) is True
    assert binary_vote([True, False, False]) is False
    assert binary_vote([True, False]) is False
    assert binary_vote([True, False], tie=True) is True
    assert binary_vote([False, True, True, False], tie=True) is True


def test_rating_mode_tie_goes_to_the_lowest_tied_rating():
    assert rating_mode([4, 3, 4]) == 4
    assert rating_mode([4, 2]) == 2
    assert rating_mode([5, 3, 3, 5, 1]) == 3


def test_span_vote_keeps_spans_most_annotators_marked_exactly():
    a, b, c = ("song", 5, 16), ("artist", 20, 31), ("song", 5, 15)
    assert span_vote([{a, b}, {a}, {a, c}]) == {a}
    # marked by one of two annotators: a tie, left out
    assert span_vote([{a, b}, {a}]) == {a}
    assert span_vote([[], [a]]) == frozenset()


@pytest.mark.parametrize("fn", [majority_vote, rating_mode, binary_vote, span_vote])
def test_consensus_of_nobody_is_an_error(fn):
    with pytest.raises(ValueError):
        fn([])


def test_annotators_without_ids_are_named_by_position():
    assert annotator_ids([None, None, None]) == ["#0", "#1", "#2"]
    assert annotator_ids(["a0", None]) == ["a0", "#1"]


def test_dawid_skene_beats_majority_vote_with_an_adversarial_annotator():
    rng = random.Random(0)
    labels = ("x", "y", "z")
    truth = {f"item{i}": rng.choice(labels) for i in range(400)}
    # Two decent annotators and one who systematically answers the next label over.
    swap = {"x": "y", "y": "z", "z": "x"}
    triples, votes = [], {}
    for item, true in truth.items():
        answers = {
            "good1": true if rng.random() < 0.75 else rng.choice(labels),
            "good2": true if rng.random() < 0.75 else rng.choice(labels),
            "adversary": swap[true] if rng.random() < 0.95 else true,
        }
        votes[item] = list(answers.values())
        triples += [(item, worker, label) for worker, label in answers.items()]
    mv = {item: majority_vote(v) for item, v in votes.items()}
    ds = dawid_skene(triples)
    mv_acc = sum(mv[i] == t for i, t in truth.items()) / len(truth)
    ds_acc = sum(ds[i] == t for i, t in truth.items()) / len(truth)
    assert ds_acc > mv_acc + 0.1
    assert ds_acc > 0.85


def test_dawid_skene_keeps_label_types():
    triples = [(i, w, i % 2 == 0) for i in range(6) for w in ("a", "b", "c")]
    result = dawid_skene(triples)
    assert result == {i: i % 2 == 0 for i in range(6)}
    assert dawid_skene([]) == {}
