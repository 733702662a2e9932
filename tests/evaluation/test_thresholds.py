from __future__ import annotations

import json

import numpy as np
import pytest

from labelgen.evaluation.thresholds import (
    UNREACHABLE,
    best_f1_cutoff,
    calibrated,
    half_human_error,
    lowest_threshold,
    read_calibration,
    summarize,
    sweep,
    write_calibration,
)


def test_sweep_coverage_grows_as_the_threshold_drops():
    rng = np.random.default_rng(0)
    conf = rng.random(500).round(2)  # many ties
    correct = rng.random(500) < conf
    curve = sweep(conf, correct)
    assert np.all(np.diff(curve.thresholds) < 0)
    assert np.all(np.diff(curve.coverage) > 0)
    assert curve.coverage[-1] == 1.0
    assert curve.precision[-1] == pytest.approx(correct.mean())
    # tied confidences are kept or dropped together
    assert len(curve.thresholds) == len(np.unique(conf))


def test_sweep_points_on_a_small_example():
    curve = sweep([0.9, 0.8, 0.8, 0.5], [True, True, False, False])
    assert curve.thresholds.tolist() == [0.9, 0.8, 0.5]
    assert curve.precision.tolist() == pytest.approx([1.0, 2 / 3, 0.5])
    assert curve.coverage.tolist() == pytest.approx([0.25, 0.75, 1.0])


def test_lowest_threshold_meeting_the_human_is_taken_even_past_a_dip():
    # precision by threshold: 0.95 -> 1, 0.9 -> 0.5, 0.8 -> 2/3, 0.7 -> 3/4, 0.6 -> 3/5
    conf = [0.95, 0.9, 0.8, 0.7, 0.6]
    correct = [True, False, True, True, False]
    curve = sweep(conf, correct)
    assert lowest_threshold(curve, 0.75) == (0.7, pytest.approx(0.8))
    assert lowest_threshold(curve, 0.6) == (0.6, 1.0)
    assert lowest_threshold(curve, 1.0) == (0.95, pytest.approx(0.2))


def test_summary_compares_with_the_human_on_all_items():
    conf = [0.95, 0.9, 0.8, 0.7, 0.6]
    correct = [True, False, True, True, False]
    human = [True, True, True, False]  # 0.75
    out = summarize(conf, correct, human, target=0.99)
    assert out["human_precision"] == 0.75
    assert out["threshold_at_human"] == 0.7 and out["coverage_at_human"] == pytest.approx(0.8)
    assert out["threshold_at_target"] == 0.95
    assert calibrated(out) == 0.7
    unreachable = summarize([0.9, 0.8], [False, False], [True], target=0.9)
    assert unreachable["threshold_at_human"] is None
    assert calibrated(unreachable) == UNREACHABLE > 1.0
    assert calibrated(summarize([0.9], [True], None, target=0.9)) == 0.9


def test_calibration_round_trip(tmp_path):
    path = write_calibration(
        tmp_path / "out" / "calibration.json",
        {"intent": 0.83, "slots": UNREACHABLE},
        target=0.95,
        source="test",
        other={"dissatisfaction": 0.7},
        cutoffs={"dissatisfaction": 0.21},
    )
    assert read_calibration(path) == {"intent": 0.83, "slots": UNREACHABLE}
    payload = json.loads(path.read_text())
    assert payload["target"] == 0.95 and payload["source"] == "test"
    assert payload["other_thresholds"] == {"dissatisfaction": 0.7}
    assert payload["cutoffs"] == {"dissatisfaction": 0.21}
    with pytest.raises(ValueError):
        write_calibration(tmp_path / "bad.json", {"intent": float("nan")})
    (tmp_path / "empty.json").write_text("{}")
    with pytest.raises(ValueError):
        read_calibration(tmp_path / "empty.json")


def test_best_f1_cutoff_beats_every_other_cutoff():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    for _ in range(20):
        p = rng.choice([0.05, 0.1, 0.2, 0.3, 0.6, 0.9], size=40)
        gold = rng.random(40) < p  # rare and noisy, like dissatisfaction
        if not gold.any():
            continue
        cutoff = best_f1_cutoff(p, gold)
        best = f1_score(gold, p > cutoff)
        for other in np.linspace(0, 1, 101):
            assert f1_score(gold, p > other, zero_division=0) <= best + 1e-12
        assert cutoff not in set(p)  # halfway between neighbours, never on a probability
    assert best_f1_cutoff([0.2, 0.9], [False, False]) is None
    assert best_f1_cutoff([0.2, 0.3, 0.9], [False, True, True]) == pytest.approx(0.25)


def test_best_f1_cutoff_at_least_as_accurate_as_a_person():
    from sklearn.metrics import accuracy_score, f1_score

    rng = np.random.default_rng(1)
    constrained = 0
    for _ in range(40):
        p = rng.choice([0.02, 0.05, 0.1, 0.2, 0.4, 0.7], size=100)
        gold = rng.random(100) < p
        if not gold.any():
            continue
        cuts = [c for c in np.linspace(0, 1, 201) if (p > c).any()]
        # a person more accurate than the best-F1 cutoff, at times than every cutoff
        most = max(accuracy_score(gold, p > c) for c in cuts)
        person = rng.uniform(accuracy_score(gold, p > best_f1_cutoff(p, gold)), most + 0.02)
        cutoff = best_f1_cutoff(p, gold, min_accuracy=person)
        accurate = [c for c in cuts if accuracy_score(gold, p > c) >= person]
        if not accurate:  # no cutoff that fires is as accurate: the best F1 overall
            assert cutoff == best_f1_cutoff(p, gold)
            continue
        assert accuracy_score(gold, p > cutoff) >= person
        best = f1_score(gold, p > cutoff)
        assert all(f1_score(gold, p > c) <= best + 1e-12 for c in accurate)
        constrained += cutoff != best_f1_cutoff(p, gold)
    assert constrained > 10  # the person's accuracy moved the cutoff in many draws
    # best F1 fires on every turn (accuracy 1/2); only the top one is right more often (4/6)
    p, gold = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4], [True, False, False, False, True, True]
    assert best_f1_cutoff(p, gold) == pytest.approx(0.2)
    assert best_f1_cutoff(p, gold, min_accuracy=0.6) == pytest.approx(0.85)
    assert best_f1_cutoff(p, gold, min_accuracy=4 / 6) == pytest.approx(0.85)  # a tie will do
    assert best_f1_cutoff(p, gold, min_accuracy=0.7) == pytest.approx(0.2)  # out of reach


def test_half_human_error_on_the_kept_items():
    conf = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    model = [True, True, True, False, False, False]
    human = [False, True, True, True, True, True]
    out = half_human_error(conf, model, human)
    # keeping 3: model error 0 <= 1/3 / 2; keeping 4: 1/4 > (1/4) / 2
    assert out["threshold"] == 0.7 and out["coverage"] == 0.5
    assert out["model_error"] == 0.0 and out["human_error"] == pytest.approx(1 / 3)
    assert out["at_half_coverage"] == {
        "threshold": 0.7,
        "coverage": 0.5,
        "model_error": 0.0,
        "human_error": pytest.approx(1 / 3),
    }
    never = half_human_error([0.9, 0.8], [False, True], [True, True])
    assert never["threshold"] is None and never["coverage"] == 0.0
    assert never["at_half_coverage"]["model_error"] == 1.0
    full = summarize(conf, model, human, target=0.9)
    assert full["half_human_error"] == out
