from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import cohen_kappa_score, f1_score, recall_score

from labelgen.evaluation.uss_protocol import by_rating, confusion_matrix, uss_scores


def test_scores_match_scipy_and_scikit_learn():
    rng = np.random.default_rng(0)
    gold = rng.integers(1, 6, 400)
    pred = np.clip(gold + rng.integers(-2, 3, 400), 1, 5)
    scores = uss_scores(gold, pred, n_resamples=100)
    assert scores["uar"].value == pytest.approx(recall_score(gold, pred, average="macro"))
    assert scores["kappa"].value == pytest.approx(cohen_kappa_score(gold, pred))
    assert scores["spearman_rho"].value == pytest.approx(spearmanr(gold, pred).statistic)
    assert scores["dissatisfaction_f1"].value == pytest.approx(f1_score(gold <= 2, pred <= 2))
    for est in scores.values():
        assert est.low <= est.value <= est.high


def test_uar_averages_over_the_classes_present_in_gold():
    scores = uss_scores([3, 3, 4, 4], [3, 3, 4, 3], n_resamples=10)
    assert scores["uar"].value == pytest.approx((1.0 + 0.5) / 2)


def test_the_uss_code_f1_formula_shrinks_low_f1_only():
    # P = 1/2, R = 1/3: F1 = 0.4, the paper's code gives 2PR / max(P + R, 1) = 1/3
    gold = [1, 2, 1, 4, 4]
    pred = [1, 4, 5, 2, 4]
    scores = uss_scores(gold, pred, n_resamples=10)
    assert scores["dissatisfaction_f1"].value == pytest.approx(0.4)
    assert scores["dissatisfaction_f1_uss_code"].value == pytest.approx(1 / 3)
    perfect = uss_scores(gold, gold, n_resamples=10)
    assert perfect["dissatisfaction_f1_uss_code"].value == 1.0
    assert confusion_matrix(gold, pred)[0] == [1, 0, 0, 0, 1]


def test_ratings_outside_1_to_5_are_refused():
    with pytest.raises(ValueError):
        uss_scores([0, 3], [3, 3])


def test_by_rating_gives_the_recalls_uar_averages():
    rng = np.random.default_rng(1)
    gold = np.concatenate([rng.integers(2, 5, 300), [1, 1, 5]])  # 1 and 5 rare, 5 never labeled
    pred = np.clip(gold + rng.integers(-1, 2, gold.size), 1, 4)
    rows = by_rating(confusion_matrix(gold, pred))
    for key, ratings in (("gold", gold), ("labeled", pred)):
        counts = np.bincount(ratings, minlength=6)[1:].tolist()
        assert [rows[str(r)][key] for r in range(1, 6)] == counts
    assert rows["5"]["labeled"] == 0 and rows["5"]["recall"] == 0.0
    recalls = [rows[str(r)]["recall"] for r in range(1, 6)]
    assert recalls == pytest.approx(recall_score(gold, pred, labels=[1, 2, 3, 4, 5], average=None))
    assert np.mean(recalls) == pytest.approx(uss_scores(gold, pred, n_resamples=10)["uar"].value)
    absent = by_rating(confusion_matrix([3, 4], [3, 3]))
    assert absent["1"] == {"gold": 0, "labeled": 0, "recall": None}
    with pytest.raises(ValueError, match="5 x 5"):
        by_rating([[1, 2], [3, 4]])
