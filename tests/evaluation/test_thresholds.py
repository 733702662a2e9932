from __future__ import annotations

import json

import numpy as np
import pytest

from labelgen.evaluation.thresholds import (
    UNREACHABLE,
    calibrated,
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
    )
    assert read_calibration(path) == {"intent": 0.83, "slots": UNREACHABLE}
    payload = json.loads(path.read_text())
    assert payload["target"] == 0.95 and payload["source"] == "test"
    assert payload["other_thresholds"] == {"dissatisfaction": 0.7}
    with pytest.raises(ValueError):
        write_calibration(tmp_path / "bad.json", {"intent": float("nan")})
    (tmp_path / "empty.json").write_text("{}")
    with pytest.raises(ValueError):
        read_calibration(tmp_path / "empty.json")
