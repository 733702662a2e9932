"""AdamW's fused kernel against its per-weight loop, on the quality benchmark's SGD models.

    python scripts/benchmark_optimizer.py --quick   # seconds
    python scripts/benchmark_optimizer.py           # 600 SGD dialogues, 3 epochs, 2 rounds

The model is the quality benchmark's SGD context arm (`quality.runs.train`, its settings) on
a random sample of an SGD log, choosing its epoch on a held-out part, trained once with
`OptimConfig.fused` (`--fused-adamw`) and once without, from the same seed. The frozen cache is
filled before anything is timed, so both time training alone. The rounds alternate which goes
first; the figure is the ratio of their summed seconds. Beside it, how far the two models
end apart: the same update rounded otherwise moves every later step, as another machine does
(their held-out losses at their best epochs, and the largest weight difference).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from benchmark_labeling import report  # this folder, run as a script
from quality.runs import sample_logs, train, warm_cache
from quality.sgd import SGD_TASKS, best_epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--log", type=Path, default=Path("../shared/data/sgd/train"))
    parser.add_argument("--dialogues", type=int, help="training dialogues (600; quick 40)")
    parser.add_argument("--epochs", type=int, help="the model's epochs (3; quick 1)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmark-optimizer"))
    args = parser.parse_args()
    # one thread by default: the quality benchmark trains its models two side by side, each
    # with one of the two cores' threads (`--train-jobs`)
    torch.set_num_threads(args.threads)
    n = args.dialogues or (40 if args.quick else 600)
    args.epochs = args.epochs or (1 if args.quick else 3)
    # the quality benchmark's settings and logs
    dialogues, train_log, val_log = sample_logs(args, n, n // 3)
    warm_cache([train_log, val_log], args)
    seconds = {"fused": 0.0, "loop": 0.0}
    ways = [("fused", True), ("loop", False)]
    checkpoints: dict[str, Path] = {}
    for round_ in range(args.rounds):
        for way, fused in ways if round_ % 2 == 0 else ways[::-1]:
            start = time.perf_counter()
            args.fused_adamw = fused  # what `train` reads, as from --fused-adamw
            checkpoints[way] = train(
                args.out / way / f"round{round_}", train_log, val_log, SGD_TASKS, args
            )
            seconds[way] += time.perf_counter() - start
    weights = {
        way: torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
        for way, path in checkpoints.items()
    }
    result = {
        "benchmark": "optimizer",
        "training_dialogues": n,
        "held_out_dialogues": len(dialogues) - n,
        "epochs": args.epochs,
        "rounds": args.rounds,
        "threads": args.threads,
        "fused_seconds": round(seconds["fused"], 6),
        "loop_seconds": round(seconds["loop"], 6),
        "fused_over_loop": round(seconds["fused"] / seconds["loop"], 3),
        # the last round's models: where each chose its epoch, and how far apart they ended
        "best_epoch_and_val_loss": {way: best_epoch(path) for way, path in checkpoints.items()},
        "max_weight_difference": max(
            float((weights["fused"][k].double() - v.double()).abs().max())
            for k, v in weights["loop"].items()
            if v.is_floating_point() and v.numel()
        ),
    }
    report(result, args.out)


if __name__ == "__main__":
    main()
