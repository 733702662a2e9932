"""The USS half of the quality benchmark: dialogue-level k-fold satisfaction models, each
fold's cutoff and rating weights chosen on the other fold models' held-out slices, scored
against the leave-one-annotator-out consensus beside a single annotator; and the
evaluation-only files, transferred, calibrated in domain and fine-tuned in domain."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from labelgen.data.schema import Dialogue
from labelgen.evaluation.metrics import BINARY
from labelgen.evaluation.uss_protocol import by_rating
from labelgen.labeling.label import read_cutoff
from labelgen.models.components.turn_encoder import clear_shared_caches
from quality.names import RANKING, half_options
from quality.pool import Job, map_side_by_side, train_all
from quality.ratings import (
    RATINGS_ONLY,
    WITH_RATINGS_ONLY,
    arm_figures,
    ratings_only_models,
    run_arms,
    scarce_slice,
    stage1_digests,
    stage1_on_ratings,
)
from quality.runs import (
    CANDIDATES,
    ENSEMBLE,
    OTHER_ARM,
    Model,
    calibrate,
    gather,
    headline,
    label,
    read,
    rejects_file,
    relabel,
    satisfaction_members,
    satisfaction_starts,
    score,
    sgd_folder,
    write_log,
)

USS_TASKS = {"satisfaction": 1.0}
SWEEP_POINTS = ("threshold_at_human", "coverage_at_human", "half_human_error")
"""The threshold sweep's points each cross-validated model reports (`thresholds.summarize`)."""


def _sgd_model(args: argparse.Namespace, name: str) -> str | None:
    """The SGD-trained model a USS model starts from (multi-task in sequence: SGD's tasks,
    then satisfaction): this run's, or with `--only uss` the ones an earlier run left in
    --out; None when there are none."""
    if not hasattr(args, "sgd_models"):
        args.sgd_models = _earlier_sgd_models(args.out, args.regime, args.seed, args.pool_sides)
        args.sgd_arm = _earlier_arm(args.out) if args.sgd_models else None
    model = args.sgd_models.get(name)
    return None if model is None else str(model)


def _earlier_sgd_models(
    out: Path, regime: str | None = None, seed: int = 0, pool_sides: bool = False
) -> dict[str, Path]:
    """The SGD models of an earlier run in `out`, its results.json naming the model's
    candidate, so that a USS half run alone starts where the full run's did (the satisfaction
    models' names and starts: `satisfaction_starts`; those beside "model" and "baseline" only
    where their SGD model is there). Empty, with a warning, when the model's first member or
    the baseline is missing: the satisfaction models then start untrained. A warning too when
    that SGD half ran in another regime than this run's (`regime`: smoke, quick or full), as a
    full USS half on a quick SGD half's models would not repeat the full run's figures. An
    error when the model's pool the turn's sides otherwise than this run (`--pool-sides`): a
    satisfaction model pools as the SGD model it starts from (`train`), so the flag would be
    ignored without a word."""
    results = out / "results.json"
    earlier: dict[str, Any] = {}
    if results.is_file():
        whole = json.loads(results.read_text())
        earlier = whole.get("sgd", {})
        theirs = bool(half_options(whole, "sgd").get("pool_sides", False))
        if "sgd" in whole and theirs != pool_sides:
            raise SystemExit(
                f"the SGD models in {out} were trained with{'' if theirs else 'out'} "
                f"--pool-sides, this USS half is{'' if pool_sides else ' not'}: run both halves "
                "with the same setting"
            )
    arm = earlier.get("model_arm")
    starts = satisfaction_starts(arm) if arm in CANDIDATES else {}

    def checkpoint(name: str) -> Path:
        return out / "sgd" / sgd_folder(name, seed) / "best.ckpt"

    models = {
        "model": checkpoint(starts.pop("model", "with_pretraining")),
        # the baseline's pooling was chosen (`BASELINES`; before session 24: one, "baseline")
        "baseline": out / "sgd" / earlier.get("baseline_folder", "baseline") / "best.ckpt",
    }
    missing = [str(path) for path in models.values() if not path.is_file()]
    if arm is None or missing:
        why = f"missing {', '.join(missing)}" if missing else f"{results} names no SGD model"
        print(
            f"no SGD models in {out} ({why}; run the SGD half there first): the satisfaction "
            "models start untrained, not from SGD's tasks",
            file=sys.stderr,
        )
        return {}
    if regime is not None and earlier.get("regime") != regime:
        print(
            f"the SGD models in {out} come from a {earlier.get('regime', 'unrecorded')} run, "
            f"this USS half is {regime}: its figures are not those of one {regime} run",
            file=sys.stderr,
        )
    for name, start in starts.items():
        if checkpoint(start).is_file():
            models[name] = checkpoint(start)
    return models


def _earlier_arm(out: Path) -> str | None:
    """The SGD candidate an earlier run in `out` chose as the model (`sgd.model_arm`)."""
    results = out / "results.json"
    if not results.is_file():
        return None
    return json.loads(results.read_text()).get("sgd", {}).get("model_arm")


def satisfaction_options(args: argparse.Namespace, init_lr: float | None) -> dict[str, Any]:
    """`train`'s options shared by every satisfaction model: its pooling, patience and, where
    given, the learning rate of the weights it loads (absent otherwise, so earlier runs'
    models stay reusable by their settings)."""
    options: dict[str, Any] = {"pooling": args.uss_pooling, "patience": args.uss_patience}
    if init_lr is not None:
        options["init_lr"] = init_lr
    return options


def split_training_folds(
    folds: list[list[Dialogue]], k: int
) -> tuple[list[Dialogue], list[Dialogue]]:
    """Fold k's training dialogues, and the fifth of them that picks its epoch and that it
    labels for the pooled calibration (`calibration_pool`; the scored fold k is only labeled).
    The fifth is every fifth dialogue of each training fold, starting at position k % 5: with
    5 folds the five models' slices are disjoint, so one unlucky slice cannot steer them all."""
    train: list[Dialogue] = []
    val: list[Dialogue] = []
    for j, fold in enumerate(folds):
        if j != k:
            for i, dialogue in enumerate(fold):
                (val if i % 5 == k % 5 else train).append(dialogue)
    return train, val


def calibration_pool(val_parts: list[list[Dialogue]], scored: list[Dialogue]) -> list[Dialogue]:
    """The held-out dialogues that calibrate the model scoring `scored`: every fold model's
    validation slice, each labeled by the model that did not train on it, minus the scored
    fold's dialogues (a dialogue in two slices, possible with more than 5 folds, counts once).
    Five slices instead of one: the ~1,500 rated turns of one slice hold 2-3 rated 1, too few
    to choose the rating weights on (session 8: the choice swung kappa by half).

    The scored fold's own dialogues never calibrate it, and the model that scores it never
    trained on them. The other fold models did train on them, so their ratings reach the two
    numbers chosen here (the cutoff and the weights' power) indirectly, through those models'
    predictions on other dialogues; no label of the scored fold is compared with a prediction."""
    skip = {d.dialogue_id for d in scored}
    pool: dict[str, Dialogue] = {}
    for part in val_parts:
        for dialogue in part:
            if dialogue.dialogue_id not in skip:
                pool.setdefault(dialogue.dialogue_id, dialogue)
    return list(pool.values())


def cross_validate(
    dialogues: list[Dialogue],
    starts: dict[str, str | None],
    reference: Path,
    out: Path,
    args: argparse.Namespace,
    ensembles: dict[str, list[str]] | None = None,
    init_lr: float | None = None,
    options_of: dict[str, dict[str, Any]] | None = None,
    rated: dict[str, int] | None = None,
) -> tuple[dict[str, dict[str, Any]], list[list[Dialogue]], dict[str, Path], list[int]]:
    """Dialogue-level k-fold satisfaction models, one per fold and name, each starting from
    `starts[name]` (the baseline without context): every dialogue labeled out of fold, with
    the cutoff and rating weights chosen on the other fold models' held-out slices
    (`calibration_pool`), and scored against `reference`'s annotators. `ensembles`: more
    names, each fold's model averaging those names' fold models (`labelgen label --ensemble`),
    calibrated and scored the same way. `init_lr`: the learning rate of the weights loaded
    from the starts (`train`; default: the heads'). `options_of`: a name's own `train` options
    beside the shared ones (its seed, its start's shrink). `rated`: names whose fold models
    each read only a random this many of their training dialogues (`scarce_slice`, the same
    for every such name); what picks the epoch, calibrates and is scored stays whole.

    Returns each name's figures (`dissatisfaction_figures`, the threshold sweep's points and
    the fold cutoffs), the fold models' validation slices, the folder of each name's labels
    of them, and each scored fold's number of calibration dialogues."""
    ensembles, options_of, rated = ensembles or {}, options_of or {}, rated or {}
    folds = [dialogues[k :: args.folds] for k in range(args.folds)]
    combined = {name: out / f"oof-{name}" for name in (*starts, *ensembles)}
    val_labels = {name: out / f"val-labels-{name}" for name in combined}
    for stale in out.glob("oof-*"):
        # an earlier run's labels and scores of a name this run does not score (the model
        # averaged with the fresh one, left out on scarce ratings; a stage 1 fewer) would pass
        # for this run's; the fold models stay, for --reuse-models
        name = stale.name.removeprefix("oof-")
        if name not in combined:
            for folder in (stale, out / f"val-labels-{name}", out / f"eval-{name}"):
                shutil.rmtree(folder, ignore_errors=True)
    for folder in (*combined.values(), *val_labels.values()):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    val_parts: list[list[Dialogue]] = []
    val_logs: list[Path] = []
    jobs: dict[tuple[int, str], Job] = {}
    for k in range(args.folds):
        train_part, val_part = split_training_folds(folds, k)
        val_parts.append(val_part)
        fold_dir = out / f"fold{k}"
        logs = {None: write_log(train_part, fold_dir / "train.parquet")}
        for size in set(rated.values()):
            sliced = scarce_slice(train_part, size, args.seed, k)
            logs[size] = write_log(sliced, fold_dir / f"train-{size}.parquet")
        val_logs.append(write_log(val_part, fold_dir / "val.parquet"))
        for name, start in starts.items():
            options = {
                "context": name != "baseline",
                "init_from": start,
                **satisfaction_options(args, init_lr),
                **options_of.get(name, {}),
            }
            train_log = logs[rated.get(name)]
            jobs[k, name] = Job(fold_dir / name, train_log, val_logs[k], USS_TASKS, options)
    # every fold's models first (side by side with --train-jobs), then each labels its slice
    trained = train_all(jobs, args)
    checkpoints: dict[str, list[Model]] = {name: [] for name in combined}
    for k in range(args.folds):
        for name in starts:
            checkpoints[name].append(trained[k, name])
        for name, members in ensembles.items():
            checkpoints[name].append([checkpoints[member][k] for member in members])
    slices = map_side_by_side(
        label,
        {
            (k, name): (checkpoints[name][k], val_log, out / f"fold{k}" / f"val-labels-{name}")
            for k, val_log in enumerate(val_logs)
            for name in combined
        },
        args,
    )
    for (k, name), labels in slices.items():
        gather(labels, val_labels[name], f"f{k}")
    # Every fold model has labeled its own slice; now each scored fold's cutoff and rating
    # weights come from all slices but its own dialogues' (nested: never the scored fold).
    pools: list[int] = []
    calls = {}
    for k, held_out in enumerate(folds):
        fold_dir = out / f"fold{k}"
        pool = calibration_pool(val_parts, held_out)
        pools.append(len(pool))
        pool_log = write_log(pool, fold_dir / "calibration-pool.parquet")
        test_log = write_log(held_out, fold_dir / "test.parquet")
        for name, labels_dir in val_labels.items():
            calls[k, name] = (
                *(labels_dir, pool_log, fold_dir / f"calibrate-{name}"),
                *(checkpoints[name][k], test_log, fold_dir / f"labels-{name}", args),
            )
    cutoffs: dict[str, list[float | None]] = {name: [] for name in combined}
    powers: dict[str, list[Any]] = {name: [] for name in combined}
    for (k, name), (chosen, labels) in map_side_by_side(_calibrated, calls, args, 4).items():
        cutoffs[name].append(chosen[0])  # fold by fold: the calls are in the folds' order
        powers[name].append(chosen[1])
        gather(labels, combined[name], f"f{k}")
    # scored side by side too: each takes seconds of one core (the intervals resample every
    # figure), and with the other fold models' names that made one-core stretches of the run
    reports = map_side_by_side(
        _report,
        {
            name: (folder, reference, out / f"eval-{name}", args.seed)
            for name, folder in combined.items()
        },
        args,
        by_log=False,
        kind="score",
    )
    figures: dict[str, dict[str, Any]] = {}
    for name, report in reports.items():
        sweep = report["tasks"].get("dissatisfaction", {}).get("thresholds", {})
        figures[name] = {
            **dissatisfaction_figures(report),
            **{key: sweep.get(key) for key in SWEEP_POINTS},
            "fold_cutoffs": cutoffs[name],
            "fold_rating_powers": powers[name],
        }
    return figures, val_parts, val_labels, pools


def _report(labels: Path, reference: Path, out: Path, seed: int) -> dict[str, Any]:
    """A USS log's labels scored against its annotators (`score`), the report in `out`."""
    return score(labels, reference, "uss", out_dir=out, seed=seed)


def _calibrated(
    val_labels: Path,
    pool_log: Path,
    calibration_dir: Path,
    model: Model,
    test_log: Path,
    out: Path,
    args: argparse.Namespace,
) -> tuple[tuple[float | None, Any], Path]:
    """A scored fold's cutoff and rating weights chosen on its calibration pool, and its labels
    by that fold's model with them: the cutoff and the weights' powers, and the labels' folder."""
    calibration = calibrate(val_labels, pool_log, calibration_dir, args)
    powers = json.loads(calibration.read_text()).get("rating_rule", {}).get("powers")
    return (read_cutoff(str(calibration)), powers), label(model, test_log, out, calibration)


def uss(args: argparse.Namespace) -> dict[str, Any]:
    # USS-SGD turns that the SGD half also read (about 1 in 9) would keep the states of the
    # SGD chunks they were first encoded in: the same USS half would then differ, in the last
    # bits and so in what it learns, after the SGD half and run alone (`--only uss`)
    clear_shared_caches()
    out = args.out / "uss"
    dialogues = read(
        args.uss_train, "uss", args.uss_limit, args.seed, rejects=rejects_file(args, "uss-train")
    )[0]
    # the model, the baseline, and (after them, so that their figures are the same with them
    # or without) the model's twin from the other SGD arm (dissatisfaction with and without
    # stage 1) and, when the SGD model is an ensemble, its other member's: the satisfaction
    # model is then an ensemble too, each fold's averaging the fold models of its members
    start = _sgd_model(args, "model")  # first: with --only uss, reads the earlier run's choice
    candidate = getattr(args, "sgd_arm", None) if start is not None else None
    members = satisfaction_members(candidate) if candidate in CANDIDATES else ["model"]
    sgd_of = satisfaction_starts(candidate) if candidate in CANDIDATES else {}
    names = ["model", "baseline"]
    for name in sgd_of:
        wanted = name in members or (name == OTHER_ARM and args.uss_other_arm)
        if name != "model" and wanted and _sgd_model(args, name) is not None:
            names.append(name)
    starts = {name: _sgd_model(args, name) for name in names}
    ensembles = {ENSEMBLE: members} if len(members) > 1 and set(members) <= set(starts) else {}
    averaged = dict(ensembles)
    options_of: dict[str, dict[str, Any]] = {}
    rated: dict[str, int] = {}
    if args.uss_ratings_only:
        # after the others (their figures stay what they are without); where they read every
        # rating, the model's members averaged with the fresh one too
        arms, options_of, rated = ratings_only_models(args)
        starts |= arms
        if not args.uss_ratings_scarce:
            model = members if ensembles else ["model"]
            averaged[WITH_RATINGS_ONLY] = [*model, RATINGS_ONLY["no_pretraining"]]
    figures, val_parts, val_labels, pools = cross_validate(
        dialogues, starts, args.uss_train, out, args, averaged, args.uss_init_lr, options_of, rated
    )
    by_arm = {}
    ratings_only = {
        arm: figures.pop(name) for arm, name in run_arms(args).items() if name in starts
    }
    beside = figures.pop(WITH_RATINGS_ONLY, None)
    more = [name for name in starts if name in sgd_of and name != "model"]
    if more:
        # what stage 1 does to dissatisfaction: the same folds, rule and seed from either arm
        # (and from the next seed, when the model averages it), by the SGD model each started
        # from
        by_arm = {sgd_of["model"]: arm_figures(figures["model"])}
        for name in more:
            by_arm[sgd_of[name]] = arm_figures(figures.pop(name))
    if ensembles:
        figures["model"] = figures.pop(ENSEMBLE)
    results: dict[str, Any] = {
        **_opening(dialogues, starts, pools, args),
        "model_is_ensemble": bool(ensembles),
        **figures,
    }
    if by_arm:
        results["by_sgd_arm"] = by_arm
    if ratings_only:
        results["ratings_only"] = stage1_on_ratings(ratings_only, args.uss_ratings_scarce or None)
        results["ratings_only"]["stage1_digests"] = stage1_digests(arms)
        if beside is not None:
            results["ratings_only"]["with_the_model"] = {
                **arm_figures(beside),
                "model_minus_human": beside["model_minus_human"],
            }
    if args.uss_eval:
        # evaluation-only files: a model trained on the training dialogues labels them (with
        # an ensemble, one from each member's SGD model)
        cut = len(dialogues) // 5
        train_log = write_log(dialogues[cut:], out / "all.parquet")
        val_log = write_log(dialogues[:cut], out / "all-val.parquet")
        options = satisfaction_options(args, args.uss_init_lr)
        checkpoint: Model = list(
            train_all(
                {
                    name: Job(
                        out / ("all" if name == "model" else f"all-{name}"),
                        *(train_log, val_log, USS_TASKS),
                        {**options, "init_from": _sgd_model(args, name)},
                    )
                    for name in (members if ensembles else ["model"])
                },
                args,
            ).values()
        )
        if len(checkpoint) == 1:
            checkpoint = checkpoint[0]
        # Its cutoff and rating weights by the scored folds' rule, on every fold model's slice
        # (each labeled by a model that did not train on it): four times the dialogues of its
        # own held-out fifth, on which the cutoff swung from 0.29 to 0.19 between two runs
        pool = calibration_pool(val_parts, [])
        results["eval_calibration_dialogues"] = len(pool)
        pool_log = write_log(pool, out / "calibration-pool.parquet")
        slices = val_labels[ENSEMBLE if ensembles else "model"]
        calibration = calibrate(slices, pool_log, out / "calibrate-all", args)
    for extra in args.uss_eval:
        results[f"eval:{extra.name}"] = score_eval_file(checkpoint, extra, calibration, out, args)
    return results


def ratings_half(args: argparse.Namespace) -> dict[str, Any]:
    """`--only ratings`: the USS half's satisfaction models that read no SGD label
    (`run_arms`), cross-validated exactly as `uss` does beside the model, and nothing else:
    no SGD model is needed where `--uss-stage1` names the stage 1s. Each arm's figures are
    those the whole USS half gives it (the arms do not see the models beside them)."""
    clear_shared_caches()  # as `uss` does: the same states whatever ran before
    dialogues = read(
        args.uss_train, "uss", args.uss_limit, args.seed, rejects=rejects_file(args, "uss-train")
    )[0]
    starts, options_of, rated = ratings_only_models(args)
    figures, _, _, pools = cross_validate(
        *(dialogues, starts, args.uss_train, args.out / "uss", args),
        *({}, args.uss_init_lr, options_of, rated),
    )
    return {
        **_opening(dialogues, starts, pools, args),
        "ratings_only": {
            **stage1_on_ratings(
                {arm: figures[name] for arm, name in run_arms(args).items()},
                args.uss_ratings_scarce or None,
            ),
            "stage1_digests": stage1_digests(starts),
        },
    }


def _opening(
    dialogues: list[Dialogue],
    starts: dict[str, str | None],
    pools: list[int],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """What a USS half's results open with, whichever models it trained."""
    return {
        "dialogues": len(dialogues),
        "folds": args.folds,
        "regime": args.regime,
        "starts_from": starts,
        "cutoff_rule": args.cutoff_rule,
        "rating_rule": args.rating_rule,
        "calibration_dialogues": pools,
    }


def dissatisfaction_figures(report: dict[str, Any]) -> dict[str, Any]:
    """The headline figures of a USS evaluation: dissatisfaction for the model (with its
    average precision and ROC AUC, which no cutoff moves) and the single annotator, the
    model's lead over the annotator in accuracy and F1 with its paired 95% interval, the gold
    positive rate, and the USS paper's protocol on the 1-5 ratings, with each rating's gold and
    labeled turns and recall (`by_rating`)."""
    task = report["tasks"].get("dissatisfaction", {})
    figures: dict[str, Any] = {
        who: {
            m: task.get(who, {}).get(m, {}).get("value")
            for m in (*BINARY, *(RANKING if who == "model" else ()))
        }
        for who in ("model", "human")
    }
    lead = task.get("model_minus_human", {})
    figures["model_minus_human"] = {m: lead[m] for m in ("accuracy", "f1") if m in lead}
    figures["positive_rate"] = task.get("positive_rate", {}).get("value")
    figures["uss_protocol"] = {
        m: headline(report, "satisfaction", m)
        for m in ("uar", "kappa", "spearman_rho", "dissatisfaction_f1")
    }
    # UAR's parts: a rating never labeled costs a fifth of it (session 43: none labeled 1 or 5)
    if confusion := report["tasks"].get("satisfaction", {}).get("confusion"):
        figures["uss_protocol"]["by_rating"] = by_rating(confusion)
    return figures


def score_eval_file(
    checkpoint: Model, path: Path, calibration: Path, out: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """An evaluation-only USS file, labeled by models that never trained on it, three ways.

    Transferred (the record's top level, as before): the cutoff and rating weights chosen on
    the training file's slices. Another domain's annotators draw the line elsewhere (session
    10: CCPE's F1 0.182 with USS-SGD's cutoff, against 0.275 with another), so also
    `in_domain_calibration`: the file's dialogues in two alternating halves, each decided
    with the cutoff and weights chosen on the other half's ratings (cross-fitted, as a user who
    rates a sample of their own log would calibrate), never on its own. Both use the very
    probabilities of the transferred labels (`relabel`, since session 41; before, each half
    was labeled again, its batches cut otherwise): only the decisions differ, and the average
    precision says whether the ranking itself transfers.
    And `in_domain_finetuning`: models fine-tuned on the file's other folds' ratings."""
    stem = path.stem
    labels = label(checkpoint, path, out / f"labels-{stem}", calibration)
    report = score(labels, path, "uss", out_dir=out / f"eval-{stem}", seed=args.seed)
    record = {**report["tasks"].get("dissatisfaction", {})}
    record["uss_protocol"] = dissatisfaction_figures(report)["uss_protocol"]
    dialogues = read(path, "uss", rejects=rejects_file(args, f"uss-eval-{stem}"))[0]
    if args.uss_eval_finetune:
        record["in_domain_finetuning"] = in_domain_finetuning(
            checkpoint, dialogues, path, out / f"{stem}-folds", args
        )
    if len(dialogues) < 2:
        record["in_domain_calibration"] = {"skipped": f"{len(dialogues)} dialogue(s): no halves"}
        return record
    halves = [dialogues[0::2], dialogues[1::2]]
    crossed = out / f"labels-{stem}-in-domain"
    shutil.rmtree(crossed, ignore_errors=True)
    crossed.mkdir(parents=True)
    logs = [write_log(half, out / f"{stem}-half{k}.parquet") for k, half in enumerate(halves)]
    cutoffs = []
    for k, half in enumerate(halves):
        chosen = calibrate(labels, logs[1 - k], out / f"calibrate-{stem}-half{1 - k}", args)
        cutoffs.append(read_cutoff(str(chosen)))
        decided = relabel(labels, out / f"labels-{stem}-half{k}", chosen)
        gather(decided, crossed, f"h{k}", keep={d.dialogue_id for d in half})
    report = score(crossed, path, "uss", out_dir=out / f"eval-{stem}-in-domain", seed=args.seed)
    record["in_domain_calibration"] = {
        "halves": [len(h) for h in halves],
        "cutoffs": cutoffs,
        **dissatisfaction_figures(report),
    }
    return record


def in_domain_finetuning(
    checkpoint: Model, dialogues: list[Dialogue], path: Path, out: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """An evaluation-only file's own ratings put to use, as by a user who rates part of their
    log: the training file's k-fold protocol on the file's dialogues, each fold's model
    fine-tuned from the model trained on the training file (`checkpoint`), so every dialogue
    is labeled by a model that never trained on it, with a cutoff chosen on other slices."""
    # each fold model needs a training part and a held-out fifth of it to pick its epoch
    least = 5 * args.folds
    if len(dialogues) < least:
        return {"skipped": f"{len(dialogues)} dialogue(s): {args.folds} folds need {least}"}
    ensembles: dict[str, list[str]] = {}
    if isinstance(checkpoint, list):  # each member fine-tuned, and their fold models averaged
        starts = {f"member{i}": str(c) for i, c in enumerate(checkpoint)}
        ensembles = {"model": list(starts)}
    else:
        starts = {"model": str(checkpoint)}
    figures, _, _, pools = cross_validate(dialogues, starts, path, out, args, ensembles)
    return {
        "folds": args.folds,
        "starts_from": list(starts.values()),
        "calibration_dialogues": pools,
        **figures["model"],
    }
