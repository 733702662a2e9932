"""Stage 1's start, shrunk: the quality benchmark's stage-1 arm fine-tuned from one stage-1
checkpoint at several shrinks and seeds, on an earlier benchmark run's SGD logs.

    python scripts/probe_stage1_shrink.py --run runs/benchmark-quality \\
        --stage1 runs/benchmark-quality/sgd/pretrain/best.ckpt --shrink 0.25 1 --seeds 0 1 2

Each model is `quality.runs.train` as the benchmark trains its arms (the same settings, logs,
frozen cache and side-by-side processes), from `--stage1` with `init_shrink` = each
`--shrink` (`OptimConfig.init_shrink`): every weight stage 1 trained starts at that share of
it, the rest this seed's fresh initialization; beside them, each seed's arm without stage 1
(shrink 0 starts from the same weights and trains on the same batches). Each model is
scored on the run's held-out training dialogues (`sgd/val.parquet`, where the benchmark
chooses epochs and candidates; never dev): the headline figures, their mean, and the held-out
loss at the kept epoch. Seeds tell a shrink's effect from a seed's: two seeds of the arm
without stage 1 differed by 0.005 in the mean and 0.028 in the loss (session 26).

`--pretrain-epochs N` first trains a stage 1 of its own for N epochs, as the benchmark does, on
the run's stage-1 log (`sgd/pretrain.parquet`, left by `--sgd-pretrain-extra`; else its
training log), and starts the arms from it; `--pretrain-cycle K` repeats that stage 1's
batches and swaps every K epochs (`LogDataModule.order_cycle`). `--no-controls` leaves out the
arms without stage 1 (deterministic on one machine: an earlier probe's figures stand for them).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pyarrow.parquet as pq
import torch
from benchmark_labeling import report  # this folder, run as a script
from quality.names import headline_mean
from quality.pool import Job, train_all
from quality.runs import train, warm_cache
from quality.sgd import SGD_TASKS, best_epoch, sgd_scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a quality benchmark's --out")
    parser.add_argument("--stage1", type=Path, help="default: RUN/sgd/pretrain/best.ckpt")
    parser.add_argument(
        "--pretrain-epochs",
        type=int,
        help="train a stage 1 of this many epochs on the run's stage-1 log and start from it",
    )
    parser.add_argument(
        "--pretrain-cycle",
        type=int,
        default=0,
        help="that stage 1's batches and swaps repeat every this many epochs (0: never)",
    )
    parser.add_argument(
        "--controls",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also train each seed's arm without stage 1 (the differences need them)",
    )
    parser.add_argument("--shrink", type=float, nargs="+", default=[0.25])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=16, help="the benchmark's full run: 16")
    parser.add_argument("--train-jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/probe-stage1-shrink"))
    args = parser.parse_args()
    if args.stage1 and args.pretrain_epochs:
        parser.error("--stage1 and --pretrain-epochs: one stage 1, given or trained")
    stage1 = args.stage1 or args.run / "sgd" / "pretrain" / "best.ckpt"
    logs = args.run / "sgd"
    if not (logs / "val.parquet").is_file() or not (args.pretrain_epochs or stage1.is_file()):
        parser.error(f"{args.run}: no SGD logs or stage-1 checkpoint of a benchmark run there")
    for shrink in args.shrink:
        if not 0 <= shrink <= 1:
            parser.error(f"--shrink must be in [0, 1], got {shrink}")
    # the settings `train` reads, as the benchmark's full run sets them
    vars(args).update(
        pooling="mean", pool_sides=True, layers=4, reuse_models=False, warm_cache=True, seed=0
    )
    if args.pretrain_epochs:
        stage1 = _pretrain(logs, args)
    jobs = {}
    for seed in args.seeds:
        starts = {f"no-stage1-seed{seed}": {}} if args.controls else {}
        starts |= {
            f"shrink{shrink}-seed{seed}": {"init_from": str(stage1), "init_shrink": shrink}
            for shrink in args.shrink
        }
        for name, start in starts.items():
            jobs[name] = Job(
                args.out / name,
                logs / "train.parquet",
                logs / "val.parquet",
                SGD_TASKS,
                {**start, "seed": seed},
            )
    models = train_all(jobs, args)
    scores = {}
    for name, checkpoint in models.items():
        figures = sgd_scores(checkpoint, logs / "val.parquet", args.out / f"val-{name}", args)
        epoch, loss = best_epoch(checkpoint)
        scores[name] = {**figures, "mean": headline_mean(figures), "epoch": epoch, "val_loss": loss}
    result = {
        "probe": "stage1_shrink",
        "run": str(args.run),
        "stage1": str(stage1),
        "held_out_dialogues": _dialogues(logs / "val.parquet"),
        "scores": scores,
        # each shrink against the same seed's arm without stage 1
        "minus_no_stage1": {
            name: {
                key: round(s[key] - scores[_fresh(name)][key], 6) for key in ("mean", "val_loss")
            }
            for name, s in scores.items()
            if not name.startswith("no-stage1") and _fresh(name) in scores
        },
    }
    report(result, args.out)


def _pretrain(logs: Path, args: argparse.Namespace) -> Path:
    """Stage 1 as the benchmark trains it (`quality.sgd`): the fine-tuning logs' turns encoded
    first, then the stage-1 log's, so its extra dialogues change no state the arms read."""
    warm_cache([logs / "train.parquet", logs / "val.parquet"], args)
    log = logs / "pretrain.parquet"
    if not log.is_file():  # a run without --sgd-pretrain-extra pretrains on its training log
        log = logs / "train.parquet"
    return train(
        args.out / "pretrain",
        log,
        logs / "val.parquet",
        {"defect": 1.0},
        args,
        corrupt=True,
        epochs=args.pretrain_epochs,
        order_cycle=args.pretrain_cycle,
    )


def _fresh(name: str) -> str:
    """The same seed's arm without stage 1."""
    return "no-stage1-" + name.rsplit("-", 1)[1]


def _dialogues(log: Path) -> int:
    return pq.read_metadata(log).num_rows


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
