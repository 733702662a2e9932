"""Which 1-5 rating a turn is labeled with, given the model's five probabilities.

The side (dissatisfied: rating <= 2, or not) is decided first, by the dissatisfaction cutoff
(best F1 on held-out labeled turns). Within that side the likeliest rating wins, after
weighting each rating by its share among held-out gold ratings to the power -a. Ratings are
skewed (on USS-SGD 83% of the turns are rated 3), so the plain likeliest rating is nearly
always 3 and the rarer ratings are rarely recalled; the weights trade some accuracy for recall
of every rating. The power a is chosen on the same held-out turns, never on the turns being
scored, for the mean of the USS protocol's two agreement scores: unweighted average recall
(UAR) and Cohen's kappa. UAR alone rewards steep weights: on a few hundred held-out turns
with two or three rated 1, catching one of them is worth more UAR than mislabeling hundreds
of 3s as 4 or 5 costs, and kappa, which counts those, fell by half (USS-SGD, session 8).
Keeping the side fixed keeps the 5-point label and the binary label in agreement.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from labelgen.evaluation.uss_protocol import RATINGS, confusion_rows, kappa, uar

POWERS = (0.0, 0.25, 0.5, 0.75, 1.0)
"""Candidate powers: 0 is the plain likeliest rating, 1 divides by the share outright."""


def decide_rating(
    probs: Sequence[float], dissatisfied: bool, weights: Sequence[float] | None = None
) -> int:
    """The rating (1-5) on the decided side: the largest probability times its weight."""
    side = range(0, 2) if dissatisfied else range(2, len(probs))
    w = weights or [1.0] * len(probs)
    return max(side, key=lambda i: probs[i] * w[i]) + 1


def rating_weights(
    gold: Sequence[int], probs: Sequence[Sequence[float]], cutoff: float
) -> list[float] | None:
    """Per-rating weights share^-a, with a of best (UAR + kappa) / 2 on these turns; None
    without turns.

    Shares are smoothed by one count per rating, so a rating absent from `gold` gets a large
    but finite weight, which the choice of a then weighs against its cost."""
    if not gold:
        return None
    counts = np.bincount(np.asarray(gold) - 1, minlength=len(RATINGS)) + 1.0
    share = counts / counts.sum()
    sides = [p[0] + p[1] > cutoff for p in probs]
    best: tuple[float, list[float]] | None = None
    for power in POWERS:
        weights = (share**-power / (share**-power).max()).tolist()
        pred = [decide_rating(p, s, weights) for p, s in zip(probs, sides, strict=True)]
        sums = confusion_rows(gold, pred).sum(axis=0)[None]
        score = float(uar(sums)[0] + kappa(sums)[0]) / 2
        if best is None or score > best[0] + 1e-12:  # ties keep the smaller power
            best = (score, weights)
    assert best is not None
    return best[1]


def check_weights(weights: Sequence[float] | None) -> list[float] | None:
    """Five finite positive numbers, or None; a clear error otherwise."""
    if weights is None:
        return None
    values = list(weights)
    if len(values) != len(RATINGS) or not all(
        isinstance(v, int | float) and math.isfinite(v) and v > 0 for v in values
    ):
        raise ValueError(f"rating_weights must be 5 finite numbers > 0, got {weights!r}")
    return [float(v) for v in values]
