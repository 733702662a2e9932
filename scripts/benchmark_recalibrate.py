"""`labelgen recalibrate` against labeling again, to apply a new calibration to a labeled log.

    python scripts/benchmark_recalibrate.py --quick   # seconds
    python scripts/benchmark_recalibrate.py           # CCPE labeled by a USS-SGD model, 2 rounds

A satisfaction model as the quality benchmark trains it (`quality.runs.train`, its settings,
the frozen MiniLM) on a random sample of a USS file labels another USS file, as `labelgen
label` does (one process, `--threads`). Its labels are evaluated against that file's
annotators, which writes a calibration.json (the dissatisfaction cutoff and rating weights):
what a user does after rating a sample of a labeled log. Then, timed, the calibration is
applied both ways: the log labeled again with `--calibration`, and the first labels decided
again (`labelgen.labeling.recalibrate`). The rounds alternate which goes first; the figure is
the ratio of their summed seconds. Beside it: whether the two outputs are the same bytes, and
how many turns the calibration moved to the other side of the cutoff.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import pyarrow.parquet as pq
import torch
from benchmark_labeling import report  # this folder, run as a script
from quality.runs import calibrate, decisions, sample_logs, train

from labelgen.labeling.label import LabelJob, run_label
from labelgen.labeling.recalibrate import recalibrate

SATISFACTION = {"satisfaction": 1.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--log", type=Path, default=Path("../shared/data/uss/SGD.txt"))
    parser.add_argument("--label-log", type=Path, default=Path("../shared/data/uss/CCPE.txt"))
    parser.add_argument("--dialogues", type=int, help="training dialogues (300; quick 30)")
    parser.add_argument("--epochs", type=int, help="the model's epochs (2; quick 1)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmark-recalibrate"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n = args.dialogues or (30 if args.quick else 300)
    args.epochs = args.epochs or (1 if args.quick else 2)
    args.cutoff_rule, args.rating_rule = "f1", "shared"  # `labelgen evaluate`'s defaults
    _, train_log, val_log = sample_logs(args, n, n // 4, fmt="uss")
    model = train(args.out / "model", train_log, val_log, SATISFACTION, args)

    def label(out: Path, calibration: Path | None = None) -> None:
        # as `labelgen label` runs by default: no memo of states or batches
        run_label(
            LabelJob(
                model=str(model),
                input=str(args.label_log),
                output=str(out),
                accelerator="cpu",
                threads=args.threads,
                **decisions(calibration),
            )
        )

    first = args.out / "labels"
    shutil.rmtree(first, ignore_errors=True)
    label(first)
    calibration = calibrate(first, args.label_log, args.out / "evaluation", args)
    seconds = {"label": 0.0, "recalibrate": 0.0}
    for round_ in range(args.rounds):
        for way in ("label", "recalibrate") if round_ % 2 == 0 else ("recalibrate", "label"):
            out = args.out / way
            shutil.rmtree(out, ignore_errors=True)
            start = time.perf_counter()
            if way == "label":
                label(out, calibration)
            else:
                recalibrate(first, out, **decisions(calibration))
            seconds[way] += time.perf_counter() - start
    parts = {way: _parts(args.out / way) for way in seconds}
    before = pq.read_table(first, columns=["dissatisfied"]).column(0).to_pylist()
    after = pq.read_table(args.out / "recalibrate", columns=["dissatisfied"]).column(0).to_pylist()
    result = {
        "benchmark": "recalibrate",
        "training_dialogues": n,
        "epochs": args.epochs,
        "labeled_log": str(args.label_log),
        "turns": len(before),
        "rounds": args.rounds,
        "threads": args.threads,
        "cutoff": decisions(calibration)["dissatisfaction_cutoff"],
        "turns_moved_by_the_calibration": sum(a != b for a, b in zip(before, after, strict=True)),
        "label_seconds": round(seconds["label"], 6),
        "recalibrate_seconds": round(seconds["recalibrate"], 6),
        "recalibrate_over_label": round(seconds["recalibrate"] / seconds["label"], 4),
        "same_bytes": parts["label"] == parts["recalibrate"],
    }
    report(result, args.out)


def _parts(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("part-*.parquet"))}


if __name__ == "__main__":
    main()
