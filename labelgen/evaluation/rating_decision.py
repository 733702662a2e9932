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

Since the side is fixed first, the two sides' decisions (1 or 2; 3, 4 or 5) never meet, and
`per-side` chooses a power for each; `shared`, the default, one for both, so the satisfied
side (nine turns in ten on USS-SGD) holds the dissatisfied side's power down, and few turns if any
get labeled 1. Per-side was tried on two fresh draws (session 44, docs/benchmarks.md): it
labeled 60-80 USS-SGD turns 1, catching 2 and 0 of ~20, UAR +0.011 and -0.007, kappa -0.008
and -0.007; and weights chosen on USS-SGD labeled 400-600 CCPE turns 1 (~18 gold), its kappa
-0.06. So it is an option, not the default.
"""

from __future__ import annotations

import itertools
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


RATING_RULES = ("shared", "per-side")
"""How the weights' powers are chosen: one for both sides of the cutoff (the default), or one
for each."""


def _weights(share: np.ndarray, powers: tuple[float, float]) -> list[float]:
    # ratings 1-2 take the dissatisfied side's power, 3-5 the satisfied side's; scaled so the
    # largest is 1. Each side's power is a scalar, as before per-side existed: numpy takes
    # other paths for an array of exponents, and those weights differed in the last bit
    raw = np.concatenate([share[:2] ** -powers[0], share[2:] ** -powers[1]])
    return (raw / raw.max()).tolist()


def rating_powers(
    gold: Sequence[int], probs: Sequence[Sequence[float]], cutoff: float, rule: str = "shared"
) -> tuple[float, float] | None:
    """The powers (dissatisfied side, satisfied side) of best (UAR + kappa) / 2 on these
    turns, by `rule` (`RATING_RULES`); None without turns. Ties keep the smaller powers."""
    if rule not in RATING_RULES:
        raise ValueError(f"rating rule {rule!r} is not one of {', '.join(RATING_RULES)}")
    if not gold:
        return None
    share = _share(gold)
    sides = [p[0] + p[1] > cutoff for p in probs]
    if rule == "shared":
        candidates = [(a, a) for a in POWERS]
    else:
        candidates = sorted(itertools.product(POWERS, POWERS), key=lambda c: (sum(c), c))
    best: tuple[float, tuple[float, float]] | None = None
    for powers in candidates:
        weights = _weights(share, powers)
        pred = [decide_rating(p, s, weights) for p, s in zip(probs, sides, strict=True)]
        sums = confusion_rows(gold, pred).sum(axis=0)[None]
        score = float(uar(sums)[0] + kappa(sums)[0]) / 2
        if best is None or score > best[0] + 1e-12:
            best = (score, powers)
    assert best is not None
    return best[1]


def rating_weights(
    gold: Sequence[int], probs: Sequence[Sequence[float]], cutoff: float, rule: str = "shared"
) -> list[float] | None:
    """Per-rating weights share^-a, with the powers a of `rating_powers`; None without turns.

    Shares are smoothed by one count per rating, so a rating absent from `gold` gets a large
    but finite weight, which the choice of a then weighs against its cost."""
    powers = rating_powers(gold, probs, cutoff, rule)
    return None if powers is None else weights_for(gold, powers)


def weights_for(gold: Sequence[int], powers: tuple[float, float]) -> list[float]:
    """The weights share^-a of the ratings in `gold`, a = powers[0] for 1-2, powers[1] for 3-5."""
    return _weights(_share(gold), powers)


def _share(gold: Sequence[int]) -> np.ndarray:
    counts = np.bincount(np.asarray(gold) - 1, minlength=len(RATINGS)) + 1.0
    return counts / counts.sum()


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
