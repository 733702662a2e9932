"""Confidence thresholds: how precise the model is on what it keeps, and where it beats a human.

A label is kept when its confidence is >= the threshold (the labeler sends the rest to review,
`labelgen.labeling.writer`). Precision here is the accuracy of the kept labels against gold;
coverage is the share of items kept. The threshold written for the labeler is the LOWEST one
at which the model's precision on kept items reaches the single annotator's precision on all
items: the most labels the model can take over without doing worse than one human pass.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labelgen.data.atomic import AtomicFile

UNREACHABLE = math.nextafter(1.0, math.inf)
"""Written when no threshold reaches the target: above every probability, so the labeler sends
every label of the task to review (its thresholds are plain floats; null would not parse)."""


@dataclass(frozen=True)
class Sweep:
    """Precision and coverage at each distinct confidence, highest first."""

    thresholds: np.ndarray
    precision: np.ndarray
    coverage: np.ndarray
    kept: np.ndarray

    def to_dict(self) -> dict[str, list[float]]:
        return {
            "thresholds": self.thresholds.tolist(),
            "precision": self.precision.tolist(),
            "coverage": self.coverage.tolist(),
        }


def sweep(confidence: Sequence[float], correct: Sequence[bool]) -> Sweep:
    """The precision-coverage curve: one point per distinct confidence value.

    Items tied at a confidence are kept or dropped together, as a threshold does.
    """
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    if conf.shape != hit.shape:
        raise ValueError(f"{conf.size} confidences but {hit.size} correctness flags")
    if conf.size == 0:
        empty = np.empty(0)
        return Sweep(empty, empty, empty, np.empty(0, dtype=np.int64))
    order = np.argsort(-conf, kind="stable")
    conf, hit = conf[order], hit[order]
    kept = np.arange(1, conf.size + 1)
    hits = np.cumsum(hit)
    # the last position of each run of equal confidences is where that threshold cuts
    last = np.flatnonzero(np.append(conf[1:] != conf[:-1], True))
    return Sweep(conf[last], hits[last] / kept[last], kept[last] / conf.size, kept[last])


def lowest_threshold(curve: Sweep, precision: float) -> tuple[float, float] | None:
    """(threshold, coverage) at the lowest threshold whose kept precision is >= `precision`.

    Precision need not fall monotonically as the threshold drops; this is the widest cut that
    still meets the bar, even if some higher cut misses it. None when no cut meets it.
    """
    ok = np.flatnonzero(curve.precision >= precision - 1e-12)
    if ok.size == 0:
        return None
    i = ok[-1]
    return float(curve.thresholds[i]), float(curve.coverage[i])


def summarize(
    confidence: Sequence[float],
    correct: Sequence[bool],
    human_correct: Sequence[bool] | None = None,
    target: float = 0.95,
) -> dict[str, Any]:
    """Threshold at the human's precision (where a human exists) and at a target precision."""
    curve = sweep(confidence, correct)
    out: dict[str, Any] = {
        "items": int(curve.kept[-1]) if curve.kept.size else 0,
        "model_precision_all": float(curve.precision[-1]) if curve.kept.size else None,
        "target_precision": target,
    }
    at_target = lowest_threshold(curve, target)
    out["threshold_at_target"] = at_target[0] if at_target else None
    out["coverage_at_target"] = at_target[1] if at_target else 0.0
    if human_correct is not None:
        human = (
            float(np.mean(np.asarray(human_correct, dtype=np.float64)))
            if len(human_correct)
            else 0.0
        )
        at_human = lowest_threshold(curve, human)
        out["human_precision"] = human
        out["threshold_at_human"] = at_human[0] if at_human else None
        out["coverage_at_human"] = at_human[1] if at_human else 0.0
        if len(human_correct) == len(correct):
            out["half_human_error"] = half_human_error(confidence, correct, human_correct)
    return out


def half_human_error(
    confidence: Sequence[float], correct: Sequence[bool], human_correct: Sequence[bool]
) -> dict[str, Any]:
    """Where the model's error on the labels it keeps is at most half the single annotator's
    error on the same items: the widest such cut (threshold, coverage, both errors), and both
    errors at the first cut keeping at least half of the items.
    """
    model = sweep(confidence, correct)
    # the same confidences cut the annotator's labels at the same items
    human = sweep(confidence, human_correct)
    out: dict[str, Any] = {"threshold": None, "coverage": 0.0}
    if model.kept.size == 0:
        return out
    model_error, human_error = 1.0 - model.precision, 1.0 - human.precision

    def point(i: int) -> dict[str, float]:
        return {
            "threshold": float(model.thresholds[i]),
            "coverage": float(model.coverage[i]),
            "model_error": float(model_error[i]),
            "human_error": float(human_error[i]),
        }

    ok = np.flatnonzero(model_error <= human_error / 2 + 1e-12)
    if ok.size:
        out.update(point(int(ok[-1])))
    out["at_half_coverage"] = point(int(np.flatnonzero(model.coverage >= 0.5)[0]))
    return out


def calibrated(summary: Mapping[str, Any]) -> float:
    """The threshold to label with: at the human's precision if known, else at the target."""
    key = "threshold_at_human" if "human_precision" in summary else "threshold_at_target"
    value = summary.get(key)
    return UNREACHABLE if value is None else float(value)


def best_f1_cutoff(
    probabilities: Sequence[float], gold: Sequence[bool], min_accuracy: float | None = None
) -> float | None:
    """The decision cutoff on P(positive) with the best F1 on these items (`p > cutoff` is
    positive), halfway between neighbouring probabilities; None without a positive item.

    For a rare class (3% of USS turns are dissatisfied) 0.5 on a probability trained towards
    the annotators' vote shares almost never fires; F1 wants a lower cutoff, chosen on data
    that is not scored.

    With `min_accuracy` (a single annotator's accuracy on the same items), the best F1 among
    the cutoffs at least that accurate: decisions no less accurate than a person's, finding
    as many positives as that allows. Where no cutoff that labels anything positive is that
    accurate, the best F1 overall.
    """
    y = np.asarray(gold, dtype=bool)
    if not y.any():
        return None
    # each distinct probability is a cut: everything at one value goes the same way
    curve = sweep(probabilities, y)
    true_positives = curve.precision * curve.kept
    f1 = 2 * true_positives / (curve.kept + y.sum())
    if min_accuracy is not None:
        # correct = true positives + the negatives left below the cut
        accuracy = (2 * true_positives + y.size - curve.kept - y.sum()) / y.size
        # a float's last bit must not turn "as accurate" into "less accurate"
        accurate = accuracy >= min_accuracy - 1e-12
        if accurate.any():
            f1 = np.where(accurate, f1, -1.0)
    best = int(np.argmax(f1))
    below = curve.thresholds[best + 1] if best + 1 < curve.thresholds.size else 0.0
    return float((curve.thresholds[best] + below) / 2)


def write_calibration(
    path: str | Path,
    thresholds: Mapping[str, float],
    target: float | None = None,
    source: str | None = None,
    other: Mapping[str, float] | None = None,
    cutoffs: Mapping[str, float] | None = None,
    rating_weights: Sequence[float] | None = None,
    cutoff_rule: Mapping[str, Any] | None = None,
    rating_rule: Mapping[str, Any] | None = None,
) -> Path:
    """Writes `{"thresholds": {...}, "target": ..., "source": ...}` for `labelgen label`.

    Args:
        thresholds: task -> threshold, for the tasks the labeler can gate.
        target: the precision aimed at where no human baseline exists.
        source: what the thresholds were measured on (reference and predictions paths).
        other: thresholds of tasks the labeler has no gate for (kept apart, since it rejects
            unknown task names), e.g. binary dissatisfaction.
        cutoffs: decision cutoffs the labeler applies, e.g. {"dissatisfaction": 0.2}: a turn
            is labeled dissatisfied when P(rating <= 2) is above it.
        rating_weights: per rating 1-5, the weights the labeler's 5-point decision applies
            (`rating_decision.rating_weights`).
        cutoff_rule: how the cutoffs were chosen, for the record (the labeler ignores it).
        rating_rule: how the rating weights were chosen, for the record (ignored likewise).
    """
    for task, value in {**thresholds, **(other or {})}.items():
        if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise ValueError(f"threshold for {task!r} must be a finite number >= 0, got {value!r}")
    payload: dict[str, Any] = {
        "thresholds": {task: float(v) for task, v in thresholds.items()},
        "target": target,
        "source": source,
    }
    if other:
        payload["other_thresholds"] = {task: float(v) for task, v in other.items()}
    if cutoffs:
        payload["cutoffs"] = {task: float(v) for task, v in cutoffs.items()}
    if rating_weights is not None:
        payload["rating_weights"] = [float(v) for v in rating_weights]
    if cutoff_rule:
        payload["cutoff_rule"] = dict(cutoff_rule)
    if rating_rule:
        payload["rating_rule"] = dict(rating_rule)
    path = Path(path)
    file = AtomicFile(path, "w")
    file.handle.write(json.dumps(payload, indent=2) + "\n")
    file.close()
    return path


def read_calibration(path: str | Path) -> dict[str, float]:
    """task -> threshold, as `write_calibration` wrote them (the labeler-gated tasks)."""
    payload = json.loads(Path(path).read_text())
    thresholds = payload.get("thresholds") if isinstance(payload, dict) else None
    if not isinstance(thresholds, dict):
        raise ValueError(f"{path} has no 'thresholds' object")
    return {task: float(value) for task, value in thresholds.items()}
