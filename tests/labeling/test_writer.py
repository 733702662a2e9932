from __future__ import annotations

import pytest

from labelgen.labeling.writer import decide_satisfaction


def _row(probs: list[float], cutoff: float) -> dict:
    return decide_satisfaction(probs, cutoff, None)


def test_dissatisfaction_follows_the_cutoff_and_the_rating_agrees():
    probs = [0.15, 0.1, 0.5, 0.15, 0.1]  # P(rating <= 2) = 0.25
    row = _row(probs, 0.5)
    assert row["dissatisfied"] is False and row["satisfaction"] == 3
    assert row["dissatisfied_confidence"] == pytest.approx(0.5 + 0.5 * 0.25 / 0.5)
    row = _row(probs, 0.2)
    assert row["dissatisfied"] is True and row["satisfaction"] == 1  # likeliest of 1 and 2
    assert row["dissatisfied_confidence"] == pytest.approx(0.5 + 0.5 * 0.05 / 0.8)
    assert row["satisfaction_confidence"] == 0.15 and row["satisfaction_probs"] == probs
    # confidence grows with the distance from the cutoff, on either side
    assert _row([0.0, 0.0, 1.0, 0.0, 0.0], 0.2)["dissatisfied_confidence"] == 1.0
    assert _row([0.5, 0.5, 0.0, 0.0, 0.0], 0.2)["dissatisfied_confidence"] == 1.0
