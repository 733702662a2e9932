"""What scoring USS dissatisfaction leaves for labeling other data, and its ranking scores.

The cutoff on P(dissatisfied) (`CUTOFF_RULES`) and the 1-5 rating weights are chosen on the
evaluated items and written to calibration.json; `labelgen label --calibration` applies them
to logs that have no labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from labelgen.evaluation.gold import Gold
from labelgen.evaluation.metrics import ranking_scores
from labelgen.evaluation.predictions import Predictions, dissatisfaction_probability
from labelgen.evaluation.rating_decision import rating_powers, weights_for
from labelgen.evaluation.thresholds import best_f1_cutoff


def rating_choice_on(
    gold: Gold, preds: Predictions, cutoff: float, rule: str = "shared"
) -> tuple[list[float] | None, dict[str, Any]]:
    """Weights for labeling other data's 1-5 ratings, chosen on these items by `rule`
    (`rating_decision`), and the record of the choice: the rule and the two sides' powers."""
    pairs = [
        (g, probs)
        for key, g in zip(gold.keys, gold.gold, strict=True)
        if g is not None and key is not None
        if (probs := preds.get(key, "satisfaction_probs"))
    ]
    golds = [g for g, _ in pairs]
    powers = rating_powers(golds, [p for _, p in pairs], cutoff, rule)
    if powers is None:
        return None, {"rule": rule}
    record = {"rule": rule, "powers": {"dissatisfied": powers[0], "satisfied": powers[1]}}
    return weights_for(golds, powers), record


def _items(gold: Gold, preds: Predictions) -> tuple[list[float], list[bool], list[Any], list[str]]:
    """P(dissatisfied), the gold decision, the single annotator's (None without) and the
    dialogue of each scored item the model gave a probability for."""
    scores: list[float] = []
    positive: list[bool] = []
    humans: list[Any] = []
    dialogues: list[str] = []
    human = gold.human or [None] * len(gold.gold)
    for key, g, h in zip(gold.keys, gold.gold, human, strict=True):
        if g is None or key is None:
            continue
        if (p := dissatisfaction_probability(preds, key)) is not None:
            scores.append(p)
            positive.append(bool(g))
            humans.append(h)
            dialogues.append(key[0])
    return scores, positive, humans, dialogues


CUTOFF_RULES = ("f1", "f1-at-annotator-accuracy", "f1-bagged", "f1-at-annotator-accuracy-bagged")
"""How the dissatisfaction cutoff is chosen on the evaluated items: best F1; or best F1 among
the cutoffs at least as accurate as the single annotator on the same items (where the log has
annotators; else best F1). `-bagged`: the median of that rule's cutoffs over `BAGS` resamples
of the items' dialogues (`bagged_cutoff`)."""

BAGS = 200
"""Dialogue resamples a bagged cutoff takes the median over."""


def _cutoff(
    scores: np.ndarray, positive: np.ndarray, human: np.ndarray | None, judged: np.ndarray | None
) -> float | None:
    """Best F1's cutoff on these items; with `human`, among the cutoffs at least as accurate as
    the annotator is on the items it `judged` (where it judged any)."""
    bar = None
    if human is not None and judged is not None and judged.any():
        bar = float(np.mean(human[judged] == positive[judged]))
    return best_f1_cutoff(scores, positive, min_accuracy=bar)


def bagged_cutoff(
    scores: np.ndarray,
    positive: np.ndarray,
    human: np.ndarray | None,
    judged: np.ndarray | None,
    dialogues: Sequence[str],
    bags: int = BAGS,
    seed: int = 0,
) -> tuple[float | None, list[float]]:
    """The median of `_cutoff` over `bags` resamples of whole dialogues with replacement; and
    the 5th and 95th percentiles of those cutoffs.

    Why: on a rare class F1 over the cutoff can be flat over a range and then fall steeply,
    and the best point on a few hundred positives sits wherever that sample's noise puts it,
    often at the edge of the flat range (USS-SGD, session 43: flat from 0.29 to 0.35 on the
    calibration pool, the cutoff 0.351, F1 falling by a fifth at 0.38). Each resample's best
    point falls elsewhere on the flat range; their median keeps off its edge (bagging, as of a
    tree's split point). Resamples without a positive item give no cutoff and are left out.
    Not the default: on session 43's second draw it moved the cutoffs up, F1 +0.001, UAR
    -0.006 (docs/benchmarks.md)."""
    if not scores.size:
        return None, []
    _, index = np.unique(np.asarray(dialogues), return_inverse=True)
    order = np.argsort(index, kind="stable")
    groups = np.split(order, np.cumsum(np.bincount(index))[:-1])
    rng = np.random.default_rng(seed)
    cutoffs = []
    for _ in range(bags):
        take = np.concatenate([groups[d] for d in rng.integers(0, len(groups), len(groups))])
        cutoff = _cutoff(
            scores[take],
            positive[take],
            None if human is None else human[take],
            None if judged is None else judged[take],
        )
        if cutoff is not None:
            cutoffs.append(cutoff)
    if not cutoffs:
        return None, []
    return float(np.median(cutoffs)), np.percentile(cutoffs, [5, 95]).tolist()


def dissatisfaction_cutoffs(
    gold: Gold, preds: Predictions, rule: str = "f1"
) -> tuple[dict[str, float], dict]:
    """The dissatisfaction cutoff on these items by `rule`, for labeling other data with, and
    what chose it (the rule, the annotator accuracy it had to match; bagged: the resamples,
    the spread of their cutoffs and the unbagged rule's cutoff)."""
    if rule not in CUTOFF_RULES:
        raise ValueError(f"cutoff rule {rule!r} is not one of {', '.join(CUTOFF_RULES)}")
    scores, positive, human, dialogues = _items(gold, preds)
    chosen: dict[str, Any] = {"rule": rule}
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(positive, dtype=bool)
    judged = np.asarray([v is not None for v in human], dtype=bool)
    h = j = None
    if rule.startswith("f1-at-annotator-accuracy") and judged.any():
        h, j = np.asarray([bool(v) for v in human], dtype=bool), judged
        chosen["annotator_accuracy"] = float(np.mean(h[j] == y[j]))
    if not s.size:
        cutoff = None
    elif rule.endswith("-bagged"):
        cutoff, spread = bagged_cutoff(s, y, h, j, dialogues)
        chosen.update(bags=BAGS, spread=spread, unbagged=_cutoff(s, y, h, j))
    else:
        cutoff = _cutoff(s, y, h, j)
    return ({} if cutoff is None else {"dissatisfaction": cutoff}), chosen


def add_ranking(section: dict[str, Any], gold: Gold, preds: Predictions, n: int, seed: int):
    """The model's average precision and ROC AUC of P(dissatisfied), beside its decisions'
    scores: they do not depend on the cutoff, so on a new domain they tell a ranking that
    holds under a cutoff that does not transfer from one that fails. `positive_rate` is the
    gold prevalence on those items (what a random ranking's average precision comes to)."""
    scores, positive, _, dialogues = _items(gold, preds)
    if not scores:
        return  # decisions without probabilities (another tool's labels): nothing to rank
    ranking = ranking_scores(scores, positive, n, seed, dialogues)
    ranking = {k: e.to_dict() for k, e in ranking.items()}
    section["model"].update(
        average_precision=ranking["average_precision"], roc_auc=ranking["roc_auc"]
    )
    section["positive_rate"] = ranking["prevalence"]
