"""The dissatisfaction cutoff rules, bagged and not (`labelgen.evaluation.dissatisfaction`)."""

from __future__ import annotations

import numpy as np
import pytest

from labelgen.evaluation.dissatisfaction import _cutoff, bagged_cutoff
from labelgen.evaluation.thresholds import best_f1_cutoff


def _log(seed: int, dialogues: int = 300, turns: int = 10):
    # a rare positive class (about 4%) whose scores overlap the negatives', and an annotator
    # who finds half the positives and marks 5% of the negatives
    rng = np.random.default_rng(seed)
    d = np.repeat([f"d{i}" for i in range(dialogues)], turns)
    y = rng.random(d.size) < 0.04
    s = np.clip(rng.normal(0.2, 0.08, d.size) + y * rng.normal(0.15, 0.1, d.size), 0, 1)
    h = np.where(y, rng.random(d.size) < 0.5, rng.random(d.size) < 0.05)
    return s, y, h, d


def test_the_bagged_cutoff_is_the_median_of_the_dialogue_resamples_cutoffs():
    s, y, h, d = _log(0)
    judged = np.ones(s.size, dtype=bool)
    cutoff, spread = bagged_cutoff(s, y, h, judged, d, bags=30, seed=3)
    # the resamples again, by hand: whole dialogues drawn with replacement
    rng = np.random.default_rng(3)
    names = sorted(set(d))
    cutoffs = []
    for _ in range(30):
        take = np.concatenate([np.flatnonzero(d == names[i]) for i in rng.integers(0, 300, 300)])
        bar = float(np.mean(h[take] == y[take]))
        cutoffs.append(best_f1_cutoff(s[take], y[take], min_accuracy=bar))
    assert cutoff == pytest.approx(float(np.median(cutoffs)))
    assert spread == pytest.approx(np.percentile(cutoffs, [5, 95]).tolist())
    assert spread[0] <= cutoff <= spread[1] and spread[0] < spread[1]  # the resamples differ
    assert bagged_cutoff(s, y, h, judged, d, bags=30, seed=3) == (cutoff, spread)  # repeatable


def test_a_bagged_cutoff_is_none_without_items_or_positives():
    s, y, _, d = _log(1)
    assert bagged_cutoff(s[:0], y[:0], None, None, d[:0], bags=5) == (None, [])
    none = np.zeros(s.size, dtype=bool)
    assert bagged_cutoff(s, none, None, None, d, bags=5) == (None, [])
    assert _cutoff(s, none, None, None) is None


def test_the_bar_is_the_annotators_accuracy_on_the_items_it_judged():
    s, y, h, _ = _log(2)
    judged = np.arange(s.size) % 3 > 0  # a third of the items unjudged, still cut
    bar = float(np.mean(h[judged] == y[judged]))
    assert _cutoff(s, y, h, judged) == best_f1_cutoff(s, y, min_accuracy=bar)
    assert _cutoff(s, y, h, np.zeros(s.size, dtype=bool)) == best_f1_cutoff(s, y)
