"""Names and figures every part of the benchmark reads, kept apart from torch and the models:
reading a run's results (`quality.targets`, `scripts/quality_targets.py`) imports nothing else."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

RANKING = ("average_precision", "roc_auc")
"""The dissatisfaction figures that rank the turns, which no cutoff moves."""

NEXT_SEED = "no_pretraining_next_seed"
"""The arm without stage 1 trained again from the next seed (`sgd_folder`): a second model that
differs from the first by its seed alone."""

SGD_HEADLINES = {
    "intent_accuracy": ("intent", "accuracy"),
    "intent_macro_f1": ("intent", "macro_f1"),
    "slot_span_f1": ("slots", "f1"),
    "boundary_f1": ("segment", "boundary_f1"),
    "goal_success_macro_f1": ("goal_success", "macro_f1"),
}
"""The figures reported for every SGD model and log; their mean chooses the model."""


def file_digest(path: Path) -> str:
    """A file's digest as every model's settings.json names its data and its start
    (`init_from`), and results.json its stage-1 checkpoints: blake2b, 16 bytes, in hex."""
    return hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()


def headline_mean(scores: dict[str, float | None]) -> float:
    """The mean of the headline figures a model has: what chooses the model and the baseline."""
    values = [scores[key] for key in SGD_HEADLINES if scores.get(key) is not None]
    return sum(values) / len(values) if values else float("-inf")


def half_options(results: dict[str, Any], half: str) -> dict[str, Any]:
    """The options the run that wrote `half` resolved (`<half>.provenance`, since session 57),
    else the results' last run's: a half rerun alone (`--only`) records its own."""
    provenance = results.get(half, {}).get("provenance") or {}
    return provenance.get("options") or results.get("options", {})
