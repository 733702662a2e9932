"""Scoring a labeling run against a reference log, side by side with a single annotator.

For each task with both a model column and reference labels or annotator votes:
- gold: where the log has annotator votes, the leave-one-out majority vote (`annotators`;
  items with fewer than 3 annotators are not scored), and the model and the single-pass
  human are scored against the same gold on the same items (items the model left unlabeled
  are dropped for both, and counted); where it has reference
  labels only (SGD intents, slots, goals), the reference labels, and there is no human;
- where both exist (synthetic logs), `model_vs_reference` scores the model against the
  reference labels of the same items too;
- a threshold sweep (`thresholds`), plots, and for satisfaction the USS paper's protocol.

Binary dissatisfaction (rating <= 2) is the headline task on USS: gold is the majority of the
remaining annotators' binarized votes, a tie counting as not dissatisfied (`consensus`).

Every interval is a bootstrap over dialogues, not items: a resample draws whole dialogues, with
all their turns, goals and ratings (`metrics`, groups), because the turns of one dialogue do
not err independently.

For dissatisfaction, `model_minus_human` gives the model's lead over the single annotator with
the interval of the difference over paired resamples, and the headline says whether each lead
is beyond resampling noise.

Outputs in `out_dir`: `metrics.json` (the returned dict), `calibration.json` (review thresholds,
the dissatisfaction cutoff by `cutoff_rule` and the rating weights of best mean UAR and kappa
by `rating_rule`, for `labelgen label --calibration` on other data) and PNG plots.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from labelgen.data.atomic import AtomicFile
from labelgen.data.readers import read_log
from labelgen.data.rejects import Reject
from labelgen.data.schema import Dialogue
from labelgen.evaluation import plots
from labelgen.evaluation.dissatisfaction import (
    CUTOFF_RULES,
    add_ranking,
    dissatisfaction_cutoffs,
    rating_choice_on,
)
from labelgen.evaluation.gold import CONSENSUS, Gold, gold_labels, task_items
from labelgen.evaluation.items import FEEDBACK_TASKS, Key
from labelgen.evaluation.metrics import (
    BINARY,
    N_RESAMPLES,
    Estimate,
    binary_difference,
    binary_scores,
    macro_scores,
    segmentation_scores,
    span_scores,
    value_accuracy,
)
from labelgen.evaluation.predictions import (
    MODEL_COLUMNS,
    READERS,
    Predictions,
    read_predictions,
    sample_rows,
)
from labelgen.evaluation.rating_decision import RATING_RULES
from labelgen.evaluation.thresholds import calibrated, summarize, sweep, write_calibration
from labelgen.evaluation.uss_protocol import confusion_matrix, uss_scores

GATED_TASKS = ("intent", "segment", "goal_success", "slots", "satisfaction")
"""Tasks `labelgen label` can gate with a threshold (labeling.writer.GATED_TASKS); the others'
thresholds go to calibration.json's `other_thresholds`."""
TASKS = ("intent", "slots", "segment", "goal_success", "satisfaction", "dissatisfaction")
TASKS += FEEDBACK_TASKS
HEADLINE = "dissatisfaction"


# ---- scoring, per kind of task ---------------------------------------------------------------

SlotLabel = tuple[tuple[str, int, int, str], ...]
"""Slots as scored: sorted (slot, start, end, value) spans, the value read off the user text
where the label does not carry one (consensus and annotator spans)."""


def _slot_label(spans: Any, text: str) -> SlotLabel:
    return tuple(
        sorted(
            (s[0], s[1], s[2], s[3] if len(s) > 3 and s[3] is not None else text[s[1] : s[2]])
            for s in spans
        )
    )


def _spans(label: SlotLabel) -> frozenset[tuple[str, int, int]]:
    return frozenset(s[:3] for s in label)


def _score(
    task: str, gold: list[Any], pred: list[Any], n_resamples: int, seed: int, groups: list[str]
) -> dict:
    """The task's scores; `groups` holds each item's dialogue, the bootstrap's unit."""
    if task == "intent":
        return macro_scores(gold, pred, None, n_resamples, seed, groups)
    if task == "slots":
        scores = span_scores(
            [_spans(g) for g in gold], [_spans(p) for p in pred], n_resamples, seed, groups
        )
        scores["value_accuracy"] = value_accuracy(
            [[(s[0], s[3]) for s in g] for g in gold],
            [[(s[0], s[3]) for s in p] for p in pred],
            n_resamples,
            seed,
            groups,
        )
        return scores
    if task == "segment":
        # one item per dialogue already; its turns' tags are grouped by that dialogue
        scores = segmentation_scores(gold, pred, n_resamples=n_resamples, seed=seed)
        tags = macro_scores(
            [t for tags in gold for t in tags],
            [t for tags in pred for t in tags],
            None,
            n_resamples,
            seed,
            [d for d, tags in zip(groups, gold, strict=True) for _ in tags],
        )
        scores["tag_accuracy"], scores["tag_macro_f1"] = tags["accuracy"], tags["macro_f1"]
        return scores
    if task == "goal_success":
        return macro_scores(gold, pred, [True, False], n_resamples, seed, groups)
    if task == "satisfaction":
        return uss_scores(gold, pred, n_resamples, seed, groups)
    return binary_scores(gold, pred, True, n_resamples, seed, groups)


def _correct(task: str, gold: Any, pred: Any) -> list[bool]:
    """Correctness per thresholded unit: per turn for segments, else per item."""
    if task == "segment":
        return [g == p for g, p in zip(gold, pred, strict=True)]
    if task == "slots":
        return [_spans(gold) == _spans(pred)]
    return [gold == pred]


def _as_dict(scores: dict[str, Estimate]) -> dict[str, Any]:
    return {name: e.to_dict() for name, e in scores.items()}


@dataclass
class _Aligned:
    """Gold, human, reference and model labels of the items the model labeled, aligned."""

    gold: list[Any]
    human: list[Any] | None
    reference: list[Any] | None
    model: list[Any] | None
    confidence: list[float]
    """Per thresholded unit (per turn for segments); a missing confidence counts as 0."""
    missing: int
    dialogues: list[str]
    """Each item's dialogue."""
    read_earlier: int = 0
    """Items whose label was read on an earlier turn (`Gold.earlier`)."""


def _align(
    task: str,
    gold: Gold,
    preds: Predictions | None,
    dialogue_turns: dict[str, int],
    texts: dict[Key, str],
) -> _Aligned:
    keep, model, conf, read_earlier = list(range(len(gold.ids))), [], [], 0
    if preds is not None:
        keep = []
        for i, key in enumerate(gold.keys):
            read = _read(task, preds, key, dialogue_turns)
            if read is not None and read[0] is None:  # a turn in no predicted goal
                for earlier in gold.earlier.get(gold.ids[i], ()):
                    other = _read(task, preds, earlier, dialogue_turns)
                    if other is not None and other[0] is not None:
                        read, read_earlier = other, read_earlier + 1
                        break
            if read is not None:
                keep.append(i)
                model.append(read[0])
                conf.extend(0.0 if c is None else float(c) for c in read[1])

    def select(labels: list[Any] | None, kept: bool = True) -> list[Any] | None:
        if labels is None:
            return None
        chosen = [labels[i] for i in keep] if kept else labels
        if task != "slots":
            return chosen
        return [
            None if x is None else _slot_label(x, texts.get(gold.keys[i], ""))
            for i, x in zip(keep, chosen, strict=True)
        ]

    dialogues = gold.dialogues  # a property that builds the whole list: once, not per item
    return _Aligned(
        select(gold.gold),
        select(gold.human),
        select(gold.reference),
        None if preds is None else select(model, kept=False),
        conf,
        len(gold.ids) - len(keep),
        [dialogues[i] for i in keep],
        read_earlier,
    )


def _task_report(
    task: str, a: _Aligned, n_resamples: int, seed: int, target: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the task's section of metrics.json, what its plots and calibration need)."""
    section: dict[str, Any] = {"items": len(a.gold)}
    if a.model is not None:
        section["missing_predictions"] = a.missing
        if task == "goal_success":
            section["read_on_earlier_turn"] = a.read_earlier
        section["model"] = _as_dict(_score(task, a.gold, a.model, n_resamples, seed, a.dialogues))
    if a.human is not None:
        section["human"] = _as_dict(_score(task, a.gold, a.human, n_resamples, seed, a.dialogues))
    if not a.model:
        return section, {}
    if task == "dissatisfaction" and a.human is not None:
        # on the same resamples: whether the model beats the person beyond resampling noise
        section["model_minus_human"] = _as_dict(
            binary_difference(a.gold, a.model, a.human, True, n_resamples, seed, a.dialogues)
        )
    if a.reference is not None:
        kept = [i for i, r in enumerate(a.reference) if r is not None]
        section["model_vs_reference"] = _as_dict(
            _score(
                task,
                [a.reference[i] for i in kept],
                [a.model[i] for i in kept],
                n_resamples,
                seed,
                [a.dialogues[i] for i in kept],
            )
        )
    correct = [c for g, m in zip(a.gold, a.model, strict=True) for c in _correct(task, g, m)]
    human_correct = (
        None
        if a.human is None
        else [c for g, h in zip(a.gold, a.human, strict=True) for c in _correct(task, g, h)]
    )
    summary = summarize(a.confidence, correct, human_correct, target)
    section["thresholds"] = summary
    if task == "satisfaction":
        section["confusion"] = confusion_matrix(a.gold, a.model)
    extra = {"confidence": a.confidence, "correct": correct, "summary": summary}
    return section, extra | {"gold": a.gold, "model": a.model}


def _read(
    task: str, preds: Predictions, key: Key | None, dialogue_turns: dict[str, int]
) -> tuple[Any, list[float | None]] | None:
    """The model's label for one item and its confidences (one per turn for segments)."""
    if key is None:
        return None
    if task == "segment":
        dialogue_id = key[0]
        reads = [
            READERS["segment"](preds, (dialogue_id, t)) for t in range(dialogue_turns[dialogue_id])
        ]
        if any(r is None for r in reads):
            return None
        return tuple(r[0] for r in reads), [r[1] for r in reads]
    read = READERS[task](preds, key)
    return None if read is None else (read[0], [read[1]])


# ---- entry points ----------------------------------------------------------------------------


def load_reference(path: str | Path, fmt: str = "auto") -> tuple[list[Dialogue], list[Reject]]:
    """All dialogues of a reference log, and its rejects (counted, never fatal)."""
    dialogues, rejects = [], []
    for record in read_log(path, fmt):
        (dialogues if isinstance(record, Dialogue) else rejects).append(record)
    return dialogues, rejects


def human_baseline(
    reference_path: str | Path,
    fmt: str = "auto",
    seed: int = 0,
    n_resamples: int = N_RESAMPLES,
    include_opening: bool = False,
    consensus: str = "majority",
) -> dict[str, Any]:
    """The single annotator against the leave-one-out consensus, with no predictions.

    Items are those `evaluate` scores: satisfaction ratings of turns only. `include_opening`
    adds USS's first-line ratings, which no turn holds and so no model labels. On USS-SGD
    (seed 0) binary dissatisfaction gives accuracy 0.916, F1 0.311 over 11,833 turns, and
    0.921, 0.309 with the 1,000 opening ratings (DESIGN.md: 0.92, about 0.30).
    """
    dialogues, rejects = load_reference(reference_path, fmt)
    report: dict[str, Any] = {"reference": _reference_info(reference_path, fmt, dialogues, rejects)}
    tasks: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    texts = _texts(dialogues)
    for task in CONSENSUS:
        items = task_items(dialogues, task, include_opening)
        if not items.has_votes:
            continue
        gold = gold_labels(items, task, seed, consensus)
        if gold is None or not gold.ids:
            # votes, but no item with enough annotators for a leave-one-out gold label
            skipped[task] = "no item has enough annotators for a leave-one-out consensus"
            continue
        aligned = _align(task, gold, None, {}, texts)
        section, _ = _task_report(task, aligned, n_resamples, seed, 0.0)
        tasks[task] = {"gold": gold.source, **section}
    report["tasks"] = tasks
    report["skipped"] = skipped
    report["seed"] = seed
    report["resampling_unit"] = "dialogue"
    report["consensus"] = consensus
    report["include_opening"] = include_opening
    return _finite(report)


def evaluate(
    predictions_dir: str | Path,
    reference_path: str | Path,
    fmt: str = "auto",
    out_dir: str | Path = "runs/evaluation",
    seed: int = 0,
    n_resamples: int = N_RESAMPLES,
    target_precision: float = 0.95,
    make_plots: bool = True,
    consensus: str = "majority",
    cutoff_rule: str = "f1",
    rating_rule: str = "shared",
) -> dict[str, Any]:
    """Scores predictions against a reference log; writes metrics.json, calibration.json, PNGs.

    Args:
        predictions_dir: `labelgen label` output (part-*.parquet, one row per turn).
        reference_path: the labeled log, read with `read_log(reference_path, fmt)`.
        seed: picks the single-pass human per item and seeds the bootstrap.
        target_precision: where no annotators give a human baseline, the calibrated threshold
            is the lowest reaching this precision.
        cutoff_rule: how calibration.json's dissatisfaction cutoff is chosen (`CUTOFF_RULES`).
        rating_rule: how the powers of its rating weights are chosen (`RATING_RULES`).
    """
    if cutoff_rule not in CUTOFF_RULES:
        raise ValueError(f"cutoff rule {cutoff_rule!r} is not one of {', '.join(CUTOFF_RULES)}")
    if rating_rule not in RATING_RULES:
        raise ValueError(f"rating rule {rating_rule!r} is not one of {', '.join(RATING_RULES)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dialogues, rejects = load_reference(reference_path, fmt)
    preds = read_predictions(predictions_dir)
    dialogue_turns = {d.dialogue_id: len(d.turns) for d in dialogues}
    texts = _texts(dialogues)
    report: dict[str, Any] = {
        "reference": _reference_info(reference_path, fmt, dialogues, rejects),
        "predictions": _join_info(predictions_dir, preds, dialogues),
        "seed": seed,
        "n_resamples": n_resamples,
        "resampling_unit": "dialogue",
        "consensus": consensus,
    }
    tasks: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    figures: dict[str, str] = {}
    thresholds: dict[str, float] = {}
    other: dict[str, float] = {}
    golds: dict[str, Gold] = {}
    for task in TASKS:
        if not any(preds.has(c) for c in MODEL_COLUMNS[task]):
            continue  # the model has no such head: nothing to say
        gold = gold_labels(task_items(dialogues, task), task, seed, consensus)
        if gold is None or not gold.ids:
            skipped[task] = "the reference log has no labels or annotator votes for it"
            continue
        golds[task] = gold
        aligned = _align(task, gold, preds, dialogue_turns, texts)
        if not aligned.model:
            skipped[task] = "the model labeled none of the reference items"
            continue
        section, extra = _task_report(task, aligned, n_resamples, seed, target_precision)
        if task == "goal_success":
            # the same goals read on their last turns only (the matching rule before session
            # 22), so that a figure under either rule can be compared; it can be higher, since
            # "no goal" is a false positive for neither outcome and a wrong outcome is one
            strict = _align(task, replace(gold, earlier={}), preds, dialogue_turns, texts)
            section["model_last_turn_only"] = _as_dict(
                _score(task, strict.gold, strict.model, n_resamples, seed, strict.dialogues)
            )
        if task == "dissatisfaction":
            add_ranking(section, gold, preds, n_resamples, seed)
        tasks[task] = {"gold": gold.source, **section}
        if not extra:
            continue
        (thresholds if task in GATED_TASKS else other)[task] = calibrated(extra["summary"])
        if make_plots:
            figures.update(_plots(task, extra, out))
    report["tasks"] = tasks
    report["skipped"] = skipped
    if HEADLINE in tasks and "human" in tasks[HEADLINE]:
        report["headline"] = _headline(tasks[HEADLINE])
    report["plots"] = figures
    report["samples"] = sample_rows(dialogues, preds, seed)
    cutoffs, chosen = (
        dissatisfaction_cutoffs(golds["dissatisfaction"], preds, cutoff_rule)
        if "dissatisfaction" in tasks
        else ({}, {"rule": cutoff_rule})
    )
    weights, rated = (
        rating_choice_on(
            golds["satisfaction"], preds, cutoffs.get("dissatisfaction", 0.5), rating_rule
        )
        if "satisfaction" in tasks
        else (None, {"rule": rating_rule})
    )
    calibration = write_calibration(
        out / "calibration.json",
        thresholds,
        target=target_precision,
        source=f"predictions {predictions_dir} against {reference_path}",
        other=other,
        cutoffs=cutoffs,
        cutoff_rule=chosen,
        rating_weights=weights,
        rating_rule=rated,
    )
    report["calibration"] = {
        "path": str(calibration),
        "thresholds": thresholds,
        "other": other,
        "cutoffs": cutoffs,
        "cutoff_rule": chosen,
        "rating_weights": weights,
        "rating_rule": rated,
    }
    report = _finite(report)
    metrics = AtomicFile(out / "metrics.json", "w")
    metrics.handle.write(json.dumps(report, indent=2) + "\n")
    metrics.close()
    return report


SIDES = ("model", "human", "model_vs_reference", "model_minus_human", "model_last_turn_only")
"""A task section's scored sides: the model and the single annotator against gold, the model
against the log's reference labels, the model's lead over the annotator (paired), and for goal
success the model read on each goal's last turn only (`items.goal_items`)."""


def render(report: dict[str, Any]) -> str:
    """A plain-text table of a report from `evaluate` or `human_baseline`, for the terminal."""
    lines = [f"{'task':<18}{'who':<20}{'metric':<28}{'value':>7}  95% CI"]
    for task, section in report.get("tasks", {}).items():
        for side in SIDES:
            for metric, e in section.get(side, {}).items():
                if e["value"] is None:
                    continue
                low, high = (f"{x:.3f}" if x is not None else "nan" for x in e["ci95"])
                who = {
                    "human": "single annotator",
                    "model_minus_human": "model - annotator",
                    "model_last_turn_only": "model (last turn)",
                }.get(side, side)
                lines.append(f"{task:<18}{who:<20}{metric:<28}{e['value']:>7.3f}  [{low}, {high}]")
    if "headline" in report:
        beats = report["headline"]["model_beats_human"]
        sure = report["headline"]["beyond_resampling_noise"]
        lines.append(
            f"headline ({HEADLINE}): model beats the single annotator on accuracy: "
            f"{beats['accuracy']} (beyond resampling noise: {sure['accuracy']}), on F1: "
            f"{beats['f1']} (beyond resampling noise: {sure['f1']})"
        )
    return "\n".join(lines)


# ---- helpers ---------------------------------------------------------------------------------


def _texts(dialogues: Sequence[Dialogue]) -> dict[Key, str]:
    return {(d.dialogue_id, t): turn.user_text for d in dialogues for t, turn in enumerate(d.turns)}


def _reference_info(
    path: str | Path, fmt: str, dialogues: list[Dialogue], rejects: list[Reject]
) -> dict[str, Any]:
    return {
        "path": str(path),
        "format": fmt,
        "dialogues": len(dialogues),
        "turns": sum(len(d.turns) for d in dialogues),
        "rejects": len(rejects),
    }


def _join_info(path: str | Path, preds: Predictions, dialogues: list[Dialogue]) -> dict[str, Any]:
    reference = {
        (d.dialogue_id, t): turn.turn_id for d in dialogues for t, turn in enumerate(d.turns)
    }
    matched = [key for key in reference if key in preds.index]
    mismatched = sum(
        1 for key in matched if key in preds.turn_ids and preds.turn_ids[key] != reference[key]
    )
    return {
        "path": str(path),
        "shards": preds.files,
        "rows": preds.rows,
        "duplicate_rows": preds.duplicates,
        "matched_turns": len(matched),
        "unpredicted_turns": len(reference) - len(matched),
        "rows_without_reference": sum(1 for key in preds.index if key not in reference),
        "turn_id_mismatches": mismatched,
    }


def _headline(section: dict[str, Any]) -> dict[str, Any]:
    model = {k: section["model"][k]["value"] for k in BINARY}
    human = {k: section["human"][k]["value"] for k in BINARY}
    return {
        "task": HEADLINE,
        "model": model,
        "human": human,
        "model_beats_human": {k: model[k] > human[k] for k in ("accuracy", "f1")},
        # the paired difference's whole 95% interval above 0
        "beyond_resampling_noise": {
            k: section["model_minus_human"][k]["ci95"][0] > 0 for k in ("accuracy", "f1")
        },
    }


def _plots(task: str, extra: dict[str, Any], out: Path) -> dict[str, str]:
    summary = extra["summary"]
    human = summary.get("human_precision")
    threshold = summary.get("threshold_at_human" if human is not None else "threshold_at_target")
    figures = {
        f"{task}_precision_coverage": plots.precision_coverage(
            sweep(extra["confidence"], extra["correct"]),
            out / f"{task}_precision_coverage.png",
            human_precision=human,
            threshold=threshold,
            title=task,
        ),
        f"{task}_reliability": plots.reliability(
            extra["confidence"], extra["correct"], out / f"{task}_reliability.png", title=task
        ),
    }
    if task in ("intent", "satisfaction"):
        figures[f"{task}_confusion"] = plots.confusion(
            extra["gold"], extra["model"], out / f"{task}_confusion.png", title=task
        )
    return {name: str(path) for name, path in figures.items()}


def _finite(value: Any) -> Any:
    """NaN and infinity have no JSON spelling: they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
