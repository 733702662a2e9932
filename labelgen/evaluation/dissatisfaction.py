"""What scoring USS dissatisfaction leaves for labeling other data, and its ranking scores.

The cutoff on P(dissatisfied) (`CUTOFF_RULES`) and the 1-5 rating weights are chosen on the
evaluated items and written to calibration.json; `labelgen label --calibration` applies them
to logs that have no labels.
"""

from __future__ import annotations

from typing import Any

from labelgen.evaluation.gold import Gold
from labelgen.evaluation.metrics import ranking_scores
from labelgen.evaluation.predictions import Predictions, dissatisfaction_probability
from labelgen.evaluation.rating_decision import rating_weights
from labelgen.evaluation.thresholds import best_f1_cutoff


def rating_weights_on(gold: Gold, preds: Predictions, cutoff: float) -> list[float] | None:
    """Weights for labeling other data's 1-5 ratings, chosen on these items (`rating_decision`)."""
    pairs = [
        (g, probs)
        for key, g in zip(gold.keys, gold.gold, strict=True)
        if g is not None and key is not None
        if (probs := preds.get(key, "satisfaction_probs"))
    ]
    return rating_weights([g for g, _ in pairs], [p for _, p in pairs], cutoff)


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


CUTOFF_RULES = ("f1", "f1-at-annotator-accuracy")
"""How the dissatisfaction cutoff is chosen on the evaluated items: best F1; or best F1 among
the cutoffs at least as accurate as the single annotator on the same items (where the log has
annotators; else best F1)."""


def dissatisfaction_cutoffs(
    gold: Gold, preds: Predictions, rule: str = "f1"
) -> tuple[dict[str, float], dict]:
    """The dissatisfaction cutoff on these items by `rule`, for labeling other data with, and
    what chose it (the rule, and the annotator accuracy it had to match)."""
    scores, positive, human, _ = _items(gold, preds)
    chosen: dict[str, Any] = {"rule": rule}
    bar = None
    judged = [(h, g) for h, g in zip(human, positive, strict=True) if h is not None]
    if rule == "f1-at-annotator-accuracy" and judged:
        bar = sum(bool(h) == g for h, g in judged) / len(judged)
        chosen["annotator_accuracy"] = bar
    cutoff = best_f1_cutoff(scores, positive, min_accuracy=bar) if scores else None
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
