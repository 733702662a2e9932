from __future__ import annotations

import itertools

import numpy as np
import pytest

from labelgen.labeling.decode import BEGIN as B
from labelgen.labeling.decode import INSIDE as I
from labelgen.labeling.decode import OUTSIDE as O
from labelgen.labeling.decode import decode_goals, decode_slots, viterbi_bio_batch


def test_goals_from_segment_tags():
    assert decode_goals([B, I, I, O, B, B, I]) == [0, 0, 0, -1, 1, 2, 2]
    # an I with no open goal opens one rather than losing the turn
    assert decode_goals([I, O, I, I]) == [0, -1, 1, 1]
    assert decode_goals([]) == []


def test_slot_spans_from_bio_tags():
    text = "play Purple Haze by Jimi Hendrix"
    offsets = [[0, 4], [5, 11], [12, 16], [17, 19], [20, 24], [25, 32]]
    names = ["O", "B-song", "I-song", "B-artist", "I-artist"]
    tags = [0, 1, 2, 0, 3, 4]
    conf = [0.9, 0.8, 0.6, 0.9, 0.7, 0.95]
    spans = decode_slots(tags, conf, offsets, names, text)
    assert spans == [
        {"slot": "song", "start": 5, "end": 16, "confidence": 0.6, "value": "Purple Haze"},
        {"slot": "artist", "start": 20, "end": 32, "confidence": 0.7, "value": "Jimi Hendrix"},
    ]
    # I of another slot starts a new span; a dangling I starts one too
    spans = decode_slots([2, 4], [0.5, 0.5], offsets[1:3], names, text)
    assert [(s["slot"], s["value"]) for s in spans] == [("song", "Purple"), ("artist", "Haze")]


NAMES = ["O", "B-date", "I-date", "B-time", "I-time"]


def viterbi_bio(probs: np.ndarray, names: list[str]) -> tuple[list[int], list[float]]:
    """One utterance's tags: a batch of one."""
    return viterbi_bio_batch(probs[None], np.array([len(probs)]), names)[0]


def _valid(tags: list[int], names: list[str] = NAMES) -> bool:
    previous = "O"
    for tag in tags:
        name = names[tag]
        if name.startswith("I-") and previous[2:] != name[2:]:
            return False
        previous = name
    return True


def test_viterbi_finds_the_best_valid_bio_sequence():
    rng = np.random.default_rng(0)
    for length in (1, 2, 3, 4):
        for _ in range(20):
            probs = rng.dirichlet(np.ones(len(NAMES)), size=length)
            tags, conf = viterbi_bio(probs, NAMES)
            # brute force over every valid sequence
            best = max(
                (seq for seq in itertools.product(range(len(NAMES)), repeat=length) if _valid(seq)),
                key=lambda seq: sum(np.log(probs[t, s]) for t, s in enumerate(seq)),
            )
            assert tags == list(best)
            assert conf == [float(probs[t, s]) for t, s in enumerate(best)]
    assert viterbi_bio(np.zeros((0, len(NAMES))), NAMES) == ([], [])


def test_viterbi_keeps_a_hesitant_value_whole():
    # "the 12th": token-wise argmax says O for "the", I-date for "12th" (a value cut short);
    # the best valid reading takes "the" into the date
    probs = np.array([[0.5, 0.4, 0.0, 0.1, 0.0], [0.3, 0.1, 0.6, 0.0, 0.0]])
    assert probs.argmax(1).tolist() == [0, 2]
    tags, _ = viterbi_bio(probs, NAMES)
    assert tags == [1, 2]


def _brute_force(probs: np.ndarray, names: list[str]) -> list[int]:
    valid = (s for s in itertools.product(range(len(names)), repeat=len(probs)) if _valid(s, names))
    return list(max(valid, key=lambda seq: sum(np.log(probs[t, s]) for t, s in enumerate(seq))))


# the space's layout (each I-x right after its B-x) and another, read by index lists
@pytest.mark.parametrize("names", [NAMES, ["I-time", "B-date", "O", "B-time", "I-date"]])
def test_a_batch_of_utterances_of_different_lengths_decodes_each_as_if_alone(names):
    rng = np.random.default_rng(1)
    lengths = np.array([3, 0, 1, 4, 2, 4, 1])
    # padding past each utterance's length holds probabilities that would win if read
    probs = np.zeros((len(lengths), 5, len(names)))
    probs[..., names.index("I-time")] = 1.0
    for i, n in enumerate(lengths):
        probs[i, :n] = rng.dirichlet(np.ones(len(names)), size=n)
    decoded = viterbi_bio_batch(probs, lengths, names)
    assert [len(tags) for tags, _ in decoded] == lengths.tolist()
    for i, (tags, conf) in enumerate(decoded):
        best = _brute_force(probs[i, : lengths[i]], names) if lengths[i] else []
        assert tags == best
        assert conf == [float(probs[i, t, s]) for t, s in enumerate(best)]
    assert viterbi_bio_batch(np.zeros((2, 0, 5)), np.array([0, 0]), names) == [([], [])] * 2
