"""The quality benchmark's models trained side by side against one after another, in one run.

    python scripts/benchmark_train_jobs.py --quick   # seconds
    python scripts/benchmark_train_jobs.py           # 4 SGD models, 540 dialogues, 3 epochs

The models are the quality benchmark's SGD context arm (`quality.runs.train`, its settings)
from different seeds, on a random sample of an SGD log, each choosing its epoch on a held-out
part. They train one after another in this process with every thread (`--train-jobs 1`), and
side by side in `--jobs` processes forked from it, each with an equal share of the threads
(`quality.pool`). The frozen cache is filled before anything is timed, so both ways time
training alone. The rounds alternate which way goes first; the figure is the ratio of their
summed seconds.

Then the last round's models label (and score) `--label-logs` logs both ways, as the quality
benchmark labels its four SGD logs after training (`quality.pool.map_side_by_side`): one after
another here with every thread, and side by side, each log's calls in one process with its
share. The logs are the training sample cut into equal parts. Every way starts with empty
memos, so each encodes the logs it labels.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from benchmark_labeling import report  # this folder, run as a script
from quality import runs
from quality.pool import Job, map_side_by_side, train_all
from quality.runs import sample_logs, warm_cache, write_log
from quality.sgd import SGD_TASKS, sgd_scores

from labelgen.models.components.turn_encoder import clear_shared_caches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--log", type=Path, default=Path("../shared/data/sgd/train"))
    parser.add_argument("--dialogues", type=int, help="training dialogues (540; quick 40)")
    parser.add_argument("--models", type=int, help="models per way and round (4; quick 2)")
    parser.add_argument("--epochs", type=int, help="each model's epochs (3; quick 1)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--label-logs", type=int, default=4, help="logs each model labels")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmark-train-jobs"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n = args.dialogues or (40 if args.quick else 540)
    models = args.models or (2 if args.quick else 4)
    args.epochs = args.epochs or (1 if args.quick else 3)
    # the quality benchmark's settings and logs
    dialogues, train_log, val_log = sample_logs(args, n, n // 4)
    warm_cache([train_log, val_log], args)
    seconds = {"one_after_another": 0.0, "side_by_side": 0.0}
    ways = [("one_after_another", 1), ("side_by_side", args.jobs)]
    for round_ in range(args.rounds):
        for way, jobs in ways if round_ % 2 == 0 else ways[::-1]:
            args.train_jobs = jobs
            folder = args.out / way / f"round{round_}"
            start = time.perf_counter()
            train_all(
                {
                    f"seed{s}": Job(folder / f"seed{s}", train_log, val_log, SGD_TASKS, {"seed": s})
                    for s in range(models)
                },
                args,
            )
            seconds[way] += time.perf_counter() - start
    parts = [dialogues[:n][k :: args.label_logs] for k in range(args.label_logs)]
    logs = [write_log(part, args.out / f"label{k}.parquet") for k, part in enumerate(parts)]
    labeled = _label_both_ways(folder, logs, models, args)
    result = {
        "benchmark": "train_jobs",
        "training_dialogues": n,
        "held_out_dialogues": len(dialogues) - n,
        "models_per_way": models * args.rounds,
        "epochs": args.epochs,
        "jobs": args.jobs,
        "one_after_another_seconds": round(seconds["one_after_another"], 6),
        "side_by_side_seconds": round(seconds["side_by_side"], 6),
        "speedup": round(seconds["one_after_another"] / seconds["side_by_side"], 3),
        **labeled,
    }
    report(result, args.out)


def _label_both_ways(
    folder: Path, logs: list[Path], models: int, args: argparse.Namespace
) -> dict[str, float]:
    """The seconds of every model labeling and scoring each log, one after another with every
    thread, then side by side (`map_side_by_side`), and their ratio."""
    seconds = {}
    for way, jobs in (("one_after_another", 1), ("side_by_side", args.jobs)):
        clear_shared_caches()  # each way encodes the logs anew
        args.train_jobs = jobs
        runs.LABEL_THREADS = args.threads
        out = args.out / "labels" / way
        calls = {
            (s, log.stem): (
                folder / f"seed{s}" / "best.ckpt",
                log,
                out / f"s{s}-{log.stem}",
                args,
            )
            for log in logs
            for s in range(models)
        }
        start = time.perf_counter()
        map_side_by_side(sgd_scores, calls, args)
        seconds[way] = time.perf_counter() - start
    return {
        "label_calls_per_way": models * len(logs),
        "label_one_after_another_seconds": round(seconds["one_after_another"], 6),
        "label_side_by_side_seconds": round(seconds["side_by_side"], 6),
        "label_speedup": round(seconds["one_after_another"] / seconds["side_by_side"], 3),
    }


if __name__ == "__main__":
    main()
