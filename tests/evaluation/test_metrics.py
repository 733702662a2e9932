from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from labelgen.evaluation.metrics import (
    accuracy,
    binary_difference,
    binary_scores,
    goal_starts,
    macro_scores,
    pk,
    ranking_scores,
    resample_counts,
    segment_ids,
    segmentation_scores,
    span_scores,
    value_accuracy,
    window_diff,
    window_errors,
    window_size,
)


def _noisy(n: int, error: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, 4, n)
    pred = np.where(rng.random(n) < error, rng.integers(0, 4, n), gold)
    return gold.tolist(), pred.tolist()


def test_bootstrap_interval_contains_the_estimate_and_narrows_with_more_items():
    widths = []
    for n in (100, 2500):
        gold, pred = _noisy(n, 0.3)
        for est in [accuracy(gold, pred), *macro_scores(gold, pred).values()]:
            assert est.low <= est.value <= est.high
            assert est.n == n
        est = accuracy(gold, pred)
        widths.append(est.high - est.low)
    assert widths[1] < widths[0] / 3


def test_bootstrap_is_reproducible_per_seed():
    gold, pred = _noisy(300, 0.3)
    assert accuracy(gold, pred, seed=1) == accuracy(gold, pred, seed=1)
    assert accuracy(gold, pred, seed=1) != accuracy(gold, pred, seed=2)


def test_point_estimates_match_scikit_learn():
    gold, pred = _noisy(500, 0.4, seed=3)
    macro = macro_scores(gold, pred, n_resamples=10)
    assert macro["accuracy"].value == pytest.approx(accuracy_score(gold, pred))
    assert macro["macro_f1"].value == pytest.approx(f1_score(gold, pred, average="macro"))
    assert macro["macro_precision"].value == pytest.approx(
        precision_score(gold, pred, average="macro")
    )
    assert macro["macro_recall"].value == pytest.approx(recall_score(gold, pred, average="macro"))
    bt, bp = [g == 0 for g in gold], [p == 0 for p in pred]
    binary = binary_scores(bt, bp, n_resamples=10)
    assert binary["f1"].value == pytest.approx(f1_score(bt, bp))
    assert binary["precision"].value == pytest.approx(precision_score(bt, bp))
    assert binary["recall"].value == pytest.approx(recall_score(bt, bp))


def _ranked(n: int, seed: int = 0):
    """Scores that rank positives higher than chance, with many ties (rounded)."""
    rng = np.random.default_rng(seed)
    positive = rng.random(n) < 0.15
    scores = np.round(np.clip(rng.normal(0.3 + 0.25 * positive, 0.2), 0, 1), 2)
    return scores, positive


def test_ranking_scores_match_scikit_learn_with_ties():
    scores, positive = _ranked(800, seed=4)
    assert len(set(scores)) < 200  # ties are the hard part
    ranking = ranking_scores(scores, positive, n_resamples=10)
    assert ranking["average_precision"].value == pytest.approx(
        average_precision_score(positive, scores)
    )
    assert ranking["roc_auc"].value == pytest.approx(roc_auc_score(positive, scores))
    assert ranking["prevalence"].value == pytest.approx(positive.mean())


def test_ranking_resamples_are_scikit_learn_with_the_draw_counts_as_weights():
    scores, positive = _ranked(300, seed=5)
    ranking = ranking_scores(scores, positive, n_resamples=40, seed=7)
    counts = np.concatenate([c for _, c in resample_counts(300, 40, seed=7)])
    aps = [average_precision_score(positive, scores, sample_weight=w) for w in counts]
    aucs = [roc_auc_score(positive, scores, sample_weight=w) for w in counts]
    assert ranking["average_precision"].low == pytest.approx(np.percentile(aps, 2.5))
    assert ranking["average_precision"].high == pytest.approx(np.percentile(aps, 97.5))
    assert ranking["roc_auc"].low == pytest.approx(np.percentile(aucs, 2.5))
    assert ranking["roc_auc"].high == pytest.approx(np.percentile(aucs, 97.5))
    assert ranking["roc_auc"].low < ranking["roc_auc"].value < ranking["roc_auc"].high


def test_ranking_scores_of_a_perfect_a_reversed_and_an_undefined_ranking():
    positive = [True, True, False, False, False]
    perfect = ranking_scores([0.9, 0.8, 0.3, 0.2, 0.1], positive, n_resamples=10)
    assert perfect["average_precision"].value == 1.0 and perfect["roc_auc"].value == 1.0
    reversed_ = ranking_scores([0.1, 0.2, 0.3, 0.8, 0.9], positive, n_resamples=10)
    assert reversed_["roc_auc"].value == 0.0
    assert reversed_["average_precision"].value == pytest.approx((1 / 4 + 2 / 5) / 2)
    none = ranking_scores([0.5, 0.4], [False, False], n_resamples=10)
    assert np.isnan(none["average_precision"].value) and np.isnan(none["roc_auc"].value)
    assert none["prevalence"].value == 0.0
    with pytest.raises(ValueError, match="3 scores but 2 gold"):
        ranking_scores([0.1, 0.2, 0.3], [True, False])


def test_labels_outside_the_averaged_classes_are_wrong_answers():
    scores = macro_scores([True, False, True], [True, None, None], labels=[True, False])
    # True: tp 1, fn 1 -> F1 2/3; False: fn 1 -> F1 0
    assert scores["macro_f1"].value == pytest.approx(1 / 3)
    assert scores["accuracy"].value == pytest.approx(1 / 3)


def test_no_positive_prediction_gives_zero_not_nan():
    scores = binary_scores([True, False], [False, False], n_resamples=20)
    assert scores["precision"].value == 0.0 and scores["f1"].value == 0.0


def test_span_f1_on_hand_examples():
    song, artist = ("song", 5, 16), ("artist", 20, 31)
    gold = [{song, artist}, {song}, set()]
    pred = [{song}, {("song", 5, 15)}, {artist}]
    scores = span_scores(gold, pred, n_resamples=20)
    # tp 1; fp: song[5:15], artist in turn 3 -> 2; fn: artist, song in turn 2 -> 2
    assert scores["precision"].value == pytest.approx(1 / 3)
    assert scores["recall"].value == pytest.approx(1 / 3)
    assert scores["f1"].value == pytest.approx(1 / 3)
    assert span_scores([{song}], [{song}], n_resamples=5)["f1"].value == 1.0


def test_value_accuracy_ignores_offsets_case_and_spacing_but_not_slots():
    gold = [[("song", "Purple Haze")], [("song", "Hey Joe")], []]
    pred = [[("song", "purple  haze")], [("artist", "Hey Joe")], []]
    assert value_accuracy(gold, pred, n_resamples=5).value == pytest.approx(2 / 3)


def test_segment_ids_and_goal_starts_read_tags_leniently():
    assert segment_ids("BIIBIO") == [0, 0, 0, 1, 1, 2]
    assert segment_ids("OOIIBO") == [0, 0, 1, 1, 2, 3]
    assert goal_starts("BIIBIO") == {0, 3}
    assert goal_starts("OIIOIB") == {1, 4, 5}
    with pytest.raises(ValueError):
        segment_ids("BX")


def test_pk_and_window_diff_are_zero_for_identical_segmentations():
    for tags in ("BIIBII", "BIOBIIIO", "B", "OOOO"):
        assert pk(tags, tags) == 0.0
        assert window_diff(tags, tags) == 0.0


def test_pk_and_window_diff_on_known_examples():
    # segments [0,0,0,1,1,1] vs one segment, k = 2: windows (0,2) ok, (1,3) and (2,4) cross the
    # missed boundary, (3,5) ok.
    assert pk("BIIBII", "BIIIII", k=2) == 0.5
    assert window_diff("BIIBII", "BIIIII", k=2) == 0.5
    # a boundary one turn late: windows (1,3) and (3,5) disagree
    assert pk("BIIBII", "BIIIBI", k=2) == pytest.approx(2 / 4)
    # an extra boundary next to a true one: every window that holds it crosses the true one
    # too, so Pk cannot see it; WindowDiff counts boundaries and can
    assert pk("BIBIII", "BBBIII", k=2) == 0.0
    assert window_diff("BIBIII", "BBBIII", k=2) == pytest.approx(1 / 4)
    assert window_size(["BIIBII"]) == 2  # mean segment length 3, half rounded
    assert window_errors("BI", "BB", k=2) == (0, 0, 0)  # too short for a window


def test_pk_is_positive_whenever_segmentations_differ():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(3, 10))
        ref = "".join(rng.choice(list("BIO"), n))
        hyp = "".join(rng.choice(list("BIO"), n))
        if segment_ids(ref) != segment_ids(hyp):
            assert window_diff(ref, hyp, k=1) > 0


def test_segmentation_scores_over_dialogues():
    gold = ["BIIBII", "BIO"]
    pred = ["BIIIII", "BIO"]
    scores = segmentation_scores(gold, pred, k=2, n_resamples=50)
    assert scores["boundary_precision"].value == 1.0
    assert scores["boundary_recall"].value == pytest.approx(2 / 3)
    assert scores["pk"].value == pytest.approx(2 / 5)  # 2 errors in 4 + 1 windows
    assert scores["pk"].n == 2


def test_a_paired_difference_separates_what_two_intervals_cannot():
    rng = np.random.default_rng(0)
    gold = rng.random(2000) < 0.1
    person = np.where(rng.random(2000) < 0.1, ~gold, gold)
    # the model: the person's labels with 30 of the person's errors put right, nothing else
    model = person.copy()
    model[np.flatnonzero(person != gold)[:30]] = gold[np.flatnonzero(person != gold)[:30]]
    a, b = binary_scores(gold, model), binary_scores(gold, person)
    diff = binary_difference(gold, model, person)
    for name in ("accuracy", "precision", "recall", "f1"):
        assert diff[name].value == pytest.approx(a[name].value - b[name].value)
    assert diff["accuracy"].value == pytest.approx(30 / 2000)
    # apart, the two accuracies' intervals overlap; paired, the model is better on every
    # resample, since it is never wrong where the person is right
    assert a["accuracy"].low < b["accuracy"].high
    assert diff["accuracy"].low > 0 and diff["f1"].low > 0
    # the other way round: the same resamples, mirrored
    back = binary_difference(gold, person, model)
    assert back["f1"].value == pytest.approx(-diff["f1"].value)
    assert back["f1"].high == pytest.approx(-diff["f1"].low)
    # no better than the person: an interval around 0
    same = binary_difference(gold, person, person)
    assert same["f1"].value == same["f1"].low == same["f1"].high == 0
    with pytest.raises(ValueError, match="2000 gold labels but 3 predictions"):
        binary_difference(gold, model, person[:3])


def _dialogues(sizes: list[int]) -> list[str]:
    return [f"d{k}" for k, size in enumerate(sizes) for _ in range(size)]


def test_one_item_per_group_resamples_exactly_as_items_do():
    rng = np.random.default_rng(8)
    gold, pred = rng.random(300) < 0.3, rng.random(300) < 0.3
    plain = binary_scores(gold, pred, n_resamples=200, seed=3)
    grouped = binary_scores(gold, pred, n_resamples=200, seed=3, groups=list(range(300)))
    assert grouped == plain


def test_grouped_intervals_resample_whole_dialogues():
    # Each dialogue is right or wrong as a whole, as turns sharing a user and a topic tend to
    # be: ten turns of one dialogue say no more than one, and the interval must show it.
    rng = np.random.default_rng(9)
    sizes = [10] * 60
    right = np.repeat(rng.random(60) < 0.7, 10)
    groups = _dialogues(sizes)
    turns = accuracy(right, np.ones(600, dtype=bool), n_resamples=500, seed=1)
    dialogues = accuracy(right, np.ones(600, dtype=bool), n_resamples=500, seed=1, groups=groups)
    assert dialogues.value == turns.value == right.mean()
    width = dialogues.high - dialogues.low
    assert width > 2.5 * (turns.high - turns.low)  # sqrt(10) in theory
    # the interval of the dialogue-level accuracy, whose 60 values it resamples
    per_dialogue = right[::10].astype(float)
    draws = np.concatenate([c for _, c in resample_counts(60, 500, seed=1)])
    expected = np.percentile(draws @ per_dialogue / 60, [2.5, 97.5])
    assert [dialogues.low, dialogues.high] == pytest.approx(expected)


def test_grouped_accuracy_divides_by_the_items_a_resample_holds():
    # One long dialogue all right and nine one-turn dialogues all wrong: a resample that
    # draws the long one twice holds 100 right turns, not 100 of the sample's 59.
    sizes = [50] + [1] * 9
    gold = np.ones(59, dtype=bool)
    pred = np.r_[np.ones(50, dtype=bool), np.zeros(9, dtype=bool)]
    groups = _dialogues(sizes)
    for scores in (
        binary_scores(gold, pred, n_resamples=300, groups=groups),
        macro_scores(gold, pred, n_resamples=300, groups=groups),
        {"accuracy": accuracy(gold, pred, n_resamples=300, groups=groups)},
    ):
        acc = scores["accuracy"]
        assert acc.value == pytest.approx(50 / 59)
        assert 0.0 <= acc.low < acc.value < acc.high <= 1.0


def test_grouped_ranking_weights_every_turn_by_its_dialogues_draws():
    scores, positive = _ranked(240, seed=6)
    groups = _dialogues([4] * 60)
    ranking = ranking_scores(scores, positive, n_resamples=40, seed=2, groups=groups)
    draws = np.concatenate([c for _, c in resample_counts(60, 40, seed=2)])
    weights = np.repeat(draws, 4, axis=1)
    aucs = [roc_auc_score(positive, scores, sample_weight=w) for w in weights]
    assert ranking["roc_auc"].value == pytest.approx(roc_auc_score(positive, scores))
    assert ranking["roc_auc"].low == pytest.approx(np.percentile(aucs, 2.5))
    assert ranking["roc_auc"].high == pytest.approx(np.percentile(aucs, 97.5))
    with pytest.raises(ValueError, match="239 group keys for 240 items"):
        ranking_scores(scores, positive, groups=groups[:-1])
