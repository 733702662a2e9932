"""The 5-point decision: the side from the cutoff, the rating within it from calibrated weights."""

from __future__ import annotations

import numpy as np
import pytest

from labelgen.evaluation.rating_decision import (
    POWERS,
    check_weights,
    decide_rating,
    rating_powers,
    rating_weights,
    weights_for,
)
from labelgen.evaluation.uss_protocol import confusion_rows, kappa, uar


def test_the_side_is_kept_and_weights_choose_within_it():
    p = [0.05, 0.15, 0.6, 0.15, 0.05]
    assert decide_rating(p, dissatisfied=False) == 3
    assert decide_rating(p, dissatisfied=True) == 2
    assert decide_rating(p, False, [1, 1, 1, 5, 1]) == 4
    assert decide_rating(p, True, [4, 1, 1, 1, 1]) == 1
    assert decide_rating(p, True, [1, 1, 1, 100, 100]) == 2  # never across the side


def _skewed():
    """Most turns rated 3; the 4s are the turns where the model gives 4 more than usual, yet
    never more than 3, so the plain likeliest rating never says 4."""
    gold, probs = [], []
    for i in range(200):
        if i % 5 == 0:
            gold.append(4)
            probs.append([0.01, 0.04, 0.55, 0.35, 0.05])
        else:
            gold.append(3)
            probs.append([0.01, 0.04, 0.8, 0.1, 0.05])
    return gold, probs


def _sums(gold, probs, weights, cutoff=0.5):
    pred = [decide_rating(p, p[0] + p[1] > cutoff, weights) for p in probs]
    return confusion_rows(gold, pred).sum(axis=0)[None]


def _uar(gold, probs, weights, cutoff=0.5):
    return float(uar(_sums(gold, probs, weights, cutoff))[0])


def _kappa(gold, probs, weights, cutoff=0.5):
    return float(kappa(_sums(gold, probs, weights, cutoff))[0])


def test_weights_chosen_for_balanced_recall_recover_the_rare_rating():
    gold, probs = _skewed()
    weights = rating_weights(gold, probs, cutoff=0.5)
    assert weights is not None and len(weights) == 5
    assert _uar(gold, probs, None) == pytest.approx(0.5)  # every 4 labeled 3
    assert _uar(gold, probs, weights) == pytest.approx(1.0)
    assert weights[3] > weights[2]  # the rarer rating weighs more


def _rare_five():
    """Two 5s hide among 3s, and so do 98 of the 3s; 60 4s give 4 more than the 3s do."""
    gold, probs = [], []
    for i in range(400):
        if i < 2:
            gold.append(5)
            probs.append([0.01, 0.04, 0.7, 0.05, 0.2])
        elif i < 100:
            gold.append(3)
            probs.append([0.01, 0.04, 0.75, 0.05, 0.15])
        elif i < 340:
            gold.append(3)
            probs.append([0.01, 0.04, 0.85, 0.05, 0.05])
        else:
            gold.append(4)
            probs.append([0.01, 0.04, 0.5, 0.4, 0.05])
    return gold, probs


def test_one_rare_turn_is_not_bought_with_a_quarter_of_the_common_rating():
    """Weights steep enough to catch the two 5s relabel 98 3s as 5. UAR alone would take that
    trade; its mean with kappa does not, and keeps the mild weights that recover the 4s."""
    gold, probs = _rare_five()
    weights = rating_weights(gold, probs, cutoff=0.5)
    steep = [1.0, 1.0, 0.05, 0.13, 0.58]  # power 0.5 here: catches both 5s
    assert _uar(gold, probs, steep) > _uar(gold, probs, weights)
    assert _kappa(gold, probs, weights) > 0.9 > 0.5 > _kappa(gold, probs, steep)
    assert _uar(gold, probs, weights) == pytest.approx(2 / 3)  # 3s and 4s, no 5


def _rare_one_and_rare_five():
    """The rare-5 turns, and a dissatisfied side where 4 turns rated 1 give 1 more than the
    40 rated 2 do, yet never more than 2: only weights steeper than the satisfied side can
    afford (power 0.75 or 1 here) label them 1."""
    gold, probs = _rare_five()
    for i in range(44):
        gold.append(1 if i < 4 else 2)
        probs.append([0.15, 0.65, 0.15, 0.03, 0.02] if i < 4 else [0.05, 0.75, 0.15, 0.03, 0.02])
    return gold, probs


def test_each_side_takes_its_own_power():
    gold, probs = _rare_one_and_rare_five()
    shared = rating_weights(gold, probs, cutoff=0.5, rule="shared")
    per_side = rating_weights(gold, probs, cutoff=0.5, rule="per-side")
    a_dissatisfied, a_satisfied = rating_powers(gold, probs, cutoff=0.5, rule="per-side")
    assert a_dissatisfied > a_satisfied
    assert rating_powers(gold, probs, cutoff=0.5) == (a_satisfied, a_satisfied)  # the default
    # the 1s found, the 5s still not bought with 98 3s: UAR from 3/5 to 4/5, kappa not lower
    assert _uar(gold, probs, shared) == pytest.approx(3 / 5)
    assert _uar(gold, probs, per_side) == pytest.approx(4 / 5)
    assert _kappa(gold, probs, per_side) >= _kappa(gold, probs, shared)
    # the satisfied side's weights keep their ratios: the same 3/4/5 decisions
    assert per_side[3] / per_side[2] == pytest.approx(shared[3] / shared[2])
    assert per_side[4] / per_side[2] == pytest.approx(shared[4] / shared[2])


def test_shared_weights_are_the_share_to_one_power():
    gold, probs = _rare_one_and_rare_five()
    a, _ = rating_powers(gold, probs, cutoff=0.5, rule="shared")
    counts = [gold.count(r) + 1 for r in range(1, 6)]
    raw = [(c / sum(counts)) ** -a for c in counts]
    assert a in POWERS
    assert rating_weights(gold, probs, 0.5) == pytest.approx([v / max(raw) for v in raw])
    # and to the last bit the weights calibration.json held before per-side existed, so that
    # no decision on a tie moves: numpy's share ** -a with a scalar a, over all five ratings
    # (an array of exponents differed in the last bit for 14 of these 500)
    rng = np.random.default_rng(0)
    for _ in range(100):
        counts = rng.integers(1, 60, 5)
        gold = [r for r in range(1, 6) for _ in range(counts[r - 1])]
        share = (counts + 1.0) / (counts + 1.0).sum()
        for power in POWERS:
            before = (share**-power / (share**-power).max()).tolist()
            assert weights_for(gold, (power, power)) == before
    with pytest.raises(ValueError, match="rating rule 'steep'"):
        rating_powers(gold, probs, 0.5, "steep")


def test_without_skew_the_plain_decision_stays():
    gold = [1, 2, 3, 4, 5] * 20
    probs = [[0.9 if i == g - 1 else 0.025 for i in range(5)] for g in gold]
    weights = rating_weights(gold, probs, cutoff=0.5)
    assert weights == pytest.approx([1.0] * 5)  # power 0: ties keep the plain rule
    assert rating_powers(gold, probs, cutoff=0.5) == (0.0, 0.0)
    assert rating_weights([], [], cutoff=0.5) is None


def test_weights_are_checked():
    assert check_weights(None) is None
    assert check_weights([1, 2, 3, 4, 5]) == [1.0, 2.0, 3.0, 4.0, 5.0]
    for bad in ([1, 2], [1, 1, 1, 1, 0], [1, 1, 1, 1, float("nan")], [1, 1, 1, 1, "x"]):
        with pytest.raises(ValueError, match="rating_weights"):
            check_weights(bad)
