"""The USS paper's satisfaction protocol (Sun et al., SIGIR 2021), for comparison with it.

Gold is the mode of the annotators' 1-5 ratings, a tie going to the lowest tied rating, as the
paper's code does (`consensus.rating_mode`). Scores: UAR (recall averaged over the rating
classes), Cohen's kappa, Spearman's rho, and F1 of binary dissatisfaction (rating <= 2).

Two departures from the paper's code, both documented where they act:
- UAR averages over the classes present in the gold labels; the paper's code averages over
  all five, so a fold without a class loses a fifth of its UAR.
- F1 is 2PR / (P + R). The paper's code divides by max(P + R, 1), which shrinks every F1
  whose P + R < 1; `dissatisfaction_f1_uss_code` keeps that formula so that numbers can be
  set beside the published ones (e.g. BERT 0.048 on USS-SGD).

The 10-fold dialogue-level cross-validation of the paper is a training protocol: predictions
for every dialogue come from the fold that held it out, and are scored here like any other.

Every score is a function of the 5 x 5 confusion matrix (Spearman's rho too: with 5 values,
midranks follow from the margins), so the bootstrap resamples confusion matrices.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from labelgen.evaluation.metrics import N_RESAMPLES, Estimate, Groups, estimates, ratio

RATINGS = (1, 2, 3, 4, 5)
DISSATISFIED = 2
"""A rating <= this is dissatisfaction."""


def confusion_rows(gold: Sequence[int], pred: Sequence[int]) -> np.ndarray:
    """One row per item: a one-hot 5 x 5 confusion cell (gold-major), flattened."""
    g = np.asarray(gold, dtype=np.int64) - 1
    p = np.asarray(pred, dtype=np.int64) - 1
    if g.shape != p.shape:
        raise ValueError(f"{g.size} gold ratings but {p.size} predicted ratings")
    if g.size and (g.min() < 0 or p.min() < 0 or g.max() > 4 or p.max() > 4):
        raise ValueError("ratings must be integers 1-5")
    rows = np.zeros((g.size, 25))
    rows[np.arange(g.size), g * 5 + p] = 1.0
    return rows


def _matrices(sums: np.ndarray) -> np.ndarray:
    return sums.reshape(-1, 5, 5)


def uar(sums: np.ndarray) -> np.ndarray:
    cm = _matrices(sums)
    support = cm.sum(axis=2)
    recall = ratio(np.diagonal(cm, axis1=1, axis2=2), support)
    present = support > 0
    return ratio(np.where(present, recall, 0.0).sum(axis=1), present.sum(axis=1))


def kappa(sums: np.ndarray) -> np.ndarray:
    cm = _matrices(sums)
    n = cm.sum(axis=(1, 2))
    observed = ratio(np.trace(cm, axis1=1, axis2=2), n)
    expected = ratio((cm.sum(axis=2) * cm.sum(axis=1)).sum(axis=1), n**2)
    return ratio(observed - expected, 1.0 - expected)


def _midranks(margin: np.ndarray) -> np.ndarray:
    # Average rank of every item holding each rating, as spearmanr ranks ties.
    below = np.cumsum(margin, axis=1) - margin
    return below + (margin + 1.0) / 2.0


def spearman(sums: np.ndarray) -> np.ndarray:
    cm = _matrices(sums)
    n = cm.sum(axis=(1, 2))
    rows, cols = cm.sum(axis=2), cm.sum(axis=1)
    mean = ((n + 1.0) / 2.0)[:, None]
    x, y = _midranks(rows) - mean, _midranks(cols) - mean
    cov = np.einsum("bi,bij,bj->b", x, cm, y)
    var = (rows * x**2).sum(axis=1) * (cols * y**2).sum(axis=1)
    return ratio(cov, np.sqrt(var))


def _dissatisfaction(sums: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cm = _matrices(sums)
    d = DISSATISFIED
    return (
        cm[:, :d, :d].sum(axis=(1, 2)),
        cm[:, d:, :d].sum(axis=(1, 2)),
        cm[:, :d, d:].sum(axis=(1, 2)),
    )


def dissatisfaction_f1(sums: np.ndarray) -> np.ndarray:
    tp, fp, fn = _dissatisfaction(sums)
    return ratio(2 * tp, 2 * tp + fp + fn)


def dissatisfaction_f1_uss_code(sums: np.ndarray) -> np.ndarray:
    tp, fp, fn = _dissatisfaction(sums)
    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    return 2 * precision * recall / np.maximum(precision + recall, 1.0)


def accuracy(sums: np.ndarray) -> np.ndarray:
    cm = _matrices(sums)
    return ratio(np.trace(cm, axis1=1, axis2=2), cm.sum(axis=(1, 2)))


SCORES = {
    "uar": uar,
    "kappa": kappa,
    "spearman_rho": spearman,
    "dissatisfaction_f1": dissatisfaction_f1,
    "dissatisfaction_f1_uss_code": dissatisfaction_f1_uss_code,
    "accuracy": accuracy,
}


def uss_scores(
    gold: Sequence[int],
    pred: Sequence[int],
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    groups: Groups = None,
) -> dict[str, Estimate]:
    """The paper's scores of 1-5 `pred` against 1-5 `gold`, with bootstrap intervals."""
    rows = confusion_rows(gold, pred)
    return estimates(rows, SCORES, n_resamples, seed, groups)


def confusion_matrix(gold: Sequence[int], pred: Sequence[int]) -> list[list[int]]:
    """Counts[gold - 1][pred - 1], for the report."""
    return confusion_rows(gold, pred).sum(axis=0).reshape(5, 5).astype(int).tolist()


def by_rating(confusion: Sequence[Sequence[int]]) -> dict[str, dict[str, float | int | None]]:
    """Per rating, from a `confusion_matrix`: its gold turns, the turns labeled with it, and
    its recall (None where gold holds none). UAR is the mean of these recalls; where a rare
    rating is never labeled, its zero recall is a fifth of UAR, which the one number hides."""
    cm = np.asarray(confusion, dtype=np.int64)
    if cm.shape != (len(RATINGS), len(RATINGS)):
        raise ValueError(f"a confusion matrix must be 5 x 5, got shape {cm.shape}")
    gold, labeled = cm.sum(axis=1), cm.sum(axis=0)
    return {
        str(r): {
            "gold": int(gold[i]),
            "labeled": int(labeled[i]),
            "recall": float(cm[i, i] / gold[i]) if gold[i] else None,
        }
        for i, r in enumerate(RATINGS)
    }
