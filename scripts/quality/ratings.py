"""Stage 1 where ratings are a log's only labels (`--uss-ratings-only`): satisfaction models
that read no SGD label, from nothing (the draw's seed and the next one) and from a stage 1,
cross-validated on the USS training file as the model is.

Why: every other stage-1 measure goes through an SGD model, whose 16 epochs on SGD's labels
may wash out what stage 1 taught; the brief's stage 1 is for unlabeled logs, where ratings may
be the only labels there are. Session 52 measured it with the run's own stage 1 (2 epochs on
the 1,800 fine-tuning dialogues): level on 1,000 rated dialogues and on 160. Session 53, in
scratch runs, with a stage 1 on every SGD training dialogue shrunk to a quarter: above two
seeds without it in four draws of four on 160 rated dialogues, beyond a seed's spread in two.
So the stage 1 can be any checkpoint (`--uss-stage1`), its weights shrunk (`--stage1-shrink`),
the ratings scarce (`--uss-ratings-scarce`), and the arm without stage 1 trained again from the
next seed, so the run measures a seed's spread beside stage 1's lead (`stage1_on_ratings`).
Session 54: a second stage-1 seed, and one draw of five where the first read below both fresh
seeds; so each further checkpoint trains an arm of its own, and the run reports every stage-1
arm's mean against the two fresh seeds' (`quality_targets.py` pools it over draws).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path
from typing import Any

from labelgen.data.schema import Dialogue
from quality.names import NEXT_SEED, RANKING, file_digest

RATINGS_ONLY = {
    "no_pretraining": "ratings-only",
    "with_pretraining": "stage1-then-ratings",
    NEXT_SEED: "ratings-only-next-seed",
}
"""The satisfaction models that read no SGD label, by their arm (fresh; from stage 1; fresh
from the next seed) and the folder under uss/fold*/ that holds each."""
WITH_RATINGS_ONLY = "model-and-ratings-only"
"""The model's satisfaction members averaged with the fresh one (errors of models from other
starts are partly independent), calibrated and scored as the model is; only where the fresh
one read every rating the model did."""
SPREAD_ON = "average_precision"
"""The figure stage 1's lead is judged on against a seed's spread: no cutoff moves it, where F1
and accuracy also move with the cutoff chosen on a few hundred held-out turns."""


def ratings_only_arms(stage1s: int = 1) -> dict[str, str]:
    """`RATINGS_ONLY` and, past the first of `stage1s` stage-1 checkpoints, an arm from each
    further one (`with_pretraining_2` in `stage1-2-then-ratings`, ...): stage 1 from more than
    one seed, so that its lead is not one stage 1's luck."""
    more = {f"with_pretraining_{k}": f"stage1-{k}-then-ratings" for k in range(2, stage1s + 1)}
    return {**RATINGS_ONLY, **more}


def run_arms(args: argparse.Namespace) -> dict[str, str]:
    """`ratings_only_arms` for a run: one stage-1 arm per `--uss-stage1` checkpoint, or the
    one from the SGD half's stage 1 where none is named."""
    return ratings_only_arms(len(args.uss_stage1 or [None]))


def from_stage1(arm: str) -> bool:
    """Whether one of `ratings_only_arms` starts from a stage 1."""
    return arm.startswith("with_pretraining")


def ratings_only_starts(out: Path, stage1: list[Path] | None = None) -> dict[str, str | None]:
    """The models by folder, each with its start: from nothing, or from each of the `stage1`
    checkpoints (default: the stage 1 of the SGD half in `out`, which read the SGD dialogues'
    text, not their labels). An error when a checkpoint is not there."""
    paths = stage1 or [out / "sgd" / "pretrain" / "best.ckpt"]
    for path in paths:
        if not path.is_file():
            where = (
                "" if stage1 else f": run the SGD half in {out} first, or name one (--uss-stage1)"
            )
            raise SystemExit(
                f"--uss-ratings-only starts a satisfaction model from a stage 1, and {path} "
                f"is missing{where}"
            )
    arms = ratings_only_arms(len(paths))
    stage1_arms = [arm for arm in arms if from_stage1(arm)]
    starts = dict.fromkeys(arms.values())
    for arm, path in zip(stage1_arms, paths, strict=True):
        starts[arms[arm]] = str(path)
    return starts


def stage1_digests(starts: dict[str, str | None]) -> dict[str, str]:
    """Each stage-1 checkpoint among `starts` by its path, with its file's digest (the one
    each fold model's settings.json names as its `init_from`). Why: a path names a file on one
    machine; session 57's checkpoints were lost with theirs and trained again under other
    paths, which a later machine may reuse for other bits. So a draw's results.json says which
    checkpoint its arms started from, and `quality_targets.py` pools each one's draws apart."""
    return {path: file_digest(Path(path)) for path in filter(None, starts.values())}


def ratings_only_options(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Each model's own `train` options beside the satisfaction models' shared ones: the arms
    from stage 1 start at `--stage1-shrink` of their weights (absent at 1, so session 52's
    models stay reusable by their settings), the next seed's arm from the next seed."""
    shrink = {} if args.stage1_shrink == 1.0 else {"init_shrink": args.stage1_shrink}
    arms = run_arms(args)
    options = {name: dict(shrink) for arm, name in arms.items() if from_stage1(arm)}
    return {**options, RATINGS_ONLY[NEXT_SEED]: {"seed": args.seed + 1}}


def ratings_only_models(
    args: argparse.Namespace,
) -> tuple[dict[str, str | None], dict[str, dict[str, Any]], dict[str, int]]:
    """`--uss-ratings-only`'s models for `uss.cross_validate`: their starts, their own `train`
    options, and the rated dialogues each reads (`--uss-ratings-scarce`; empty: all)."""
    starts = ratings_only_starts(args.out, args.uss_stage1)
    rated = dict.fromkeys(starts, args.uss_ratings_scarce) if args.uss_ratings_scarce else {}
    return starts, ratings_only_options(args), rated


def scarce_slice(train: list[Dialogue], size: int | None, seed: int, fold: int) -> list[Dialogue]:
    """A random `size` of a fold model's training dialogues, in their order (all of them for
    None): the same for every arm of a draw, so the arms differ by their start alone. The
    slice that picks the epoch and calibrates, and the scored fold, stay whole."""
    if size is None or size >= len(train):
        return train
    keep = sorted(random.Random(f"{seed}:{fold}").sample(range(len(train)), size))
    return [train[i] for i in keep]


def stage1_on_ratings(
    figures: dict[str, dict[str, Any]], rated: int | None = None
) -> dict[str, Any]:
    """Dissatisfaction from the models that read no SGD label (`ratings_only_arms`' arms, each
    `cross_validate`'s figures) and the first stage 1's lead over the arm without it; where the
    next seed's arm is there, how far a seed alone moves each figure (`seed_spread`: the
    run's target row judges the lead in `SPREAD_ON` against it), and the mean of the arms from
    stage 1 less the mean of the fresh ones (`stage1_mean_minus_fresh_mean`: the lead that
    `quality_targets.py` pools over draws). `rated`: the rated dialogues each fold model read
    (None: its whole training folds). Runs before session 57 also wrote `beyond_a_seed`, the
    row's verdict again; nothing reads it."""
    arms = {arm: arm_figures(arm_of) for arm, arm_of in figures.items()}
    without = arms["no_pretraining"]
    result: dict[str, Any] = {**arms, "rated_dialogues_per_fold_model": rated}
    result["with_minus_without"] = _differences(arms["with_pretraining"], without)
    if NEXT_SEED in arms:
        spread = _differences(arms[NEXT_SEED], without)
        result["seed_spread"] = {m: None if v is None else abs(v) for m, v in spread.items()}
        stage1 = [_values(read) for arm, read in arms.items() if from_stage1(arm)]
        fresh = [_values(without), _values(arms[NEXT_SEED])]
        result["stage1_mean_minus_fresh_mean"] = {
            m: minus(_mean([v[m] for v in stage1]), _mean([v[m] for v in fresh])) for m in stage1[0]
        }
    return result


def _values(arm: dict[str, Any]) -> dict[str, float | None]:
    values = {m: arm.get(m) for m in ("accuracy", "f1", *RANKING)}
    return values | {m: arm["uss_protocol"].get(m) for m in ("uar", "kappa")}


def _differences(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float | None]:
    values = _values(b)
    return {m: minus(v, values[m]) for m, v in _values(a).items()}


def _mean(values: list[float | None]) -> float | None:
    return None if None in values else sum(values) / len(values)


def minus(a: float | None, b: float | None) -> float | None:
    """a - b, None where either is not measured: no difference made up."""
    return None if a is None or b is None else a - b


def arm_figures(figures: dict[str, Any]) -> dict[str, Any]:
    """One cross-validated model's dissatisfaction figures, its USS protocol and its folds'
    calibration, flat: how an arm beside the model is reported."""
    return {
        **figures["model"],
        "uss_protocol": figures["uss_protocol"],
        "fold_cutoffs": figures["fold_cutoffs"],
        "fold_rating_powers": figures["fold_rating_powers"],
    }
