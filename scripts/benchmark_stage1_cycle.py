"""Stage 1 with its batches and swaps repeating every few epochs, against new ones every epoch,
in one run.

    python scripts/benchmark_stage1_cycle.py --quick   # seconds
    python scripts/benchmark_stage1_cycle.py           # 1,800 SGD dialogues, 12 epochs, cycle 3

Stage 1 as the quality benchmark trains it (`quality.runs.train`, its settings: the encoder
frozen, its states cached), on a random sample of an SGD log, choosing its epoch on a held-out
part: once with new batches and swaps every epoch (`order_cycle` 0, the default), once with
them repeating every `--cycle` epochs (`LogDataModule.order_cycle`). A swapped turn is a turn
the cache has never seen, so the frozen encoder runs on it; repeated, it is read from the
cache. Each way starts from the same cache, filled with the logs' own turns before anything
is timed (the first `--cycle` epochs of both ways are the same batches, so the second way
would otherwise find the first one's swaps cached). Reports each way's seconds, the turns its
encoder ran on, its held-out loss, and the ratio of the seconds.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from benchmark_labeling import report  # this folder, run as a script
from quality.runs import sample_logs, train, warm_cache
from quality.sgd import best_epoch

from labelgen.models.components.turn_encoder import clear_shared_caches, shared_cache_turns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--log", type=Path, default=Path("../shared/data/sgd/train"))
    parser.add_argument("--dialogues", type=int, help="training dialogues (1,800; quick 40)")
    parser.add_argument("--epochs", type=int, help="stage 1's epochs (12; quick 3)")
    parser.add_argument("--cycle", type=int, help="the repeating way's cycle (3; quick 1)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmark-stage1-cycle"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n = args.dialogues or (40 if args.quick else 1800)
    args.epochs = args.epochs or (3 if args.quick else 12)
    cycle = args.cycle or (1 if args.quick else 3)
    if not 0 < cycle < args.epochs:
        parser.error(f"--cycle must be between 1 and --epochs - 1, got {cycle}")
    # the quality benchmark's settings and logs
    dialogues, train_log, val_log = sample_logs(args, n, n // 3)
    ways = {}
    for name, order_cycle in (("every_epoch", 0), ("cycled", cycle)):
        clear_shared_caches()  # each way finds the logs' own turns cached, and nothing else
        warm_cache([train_log, val_log], args)
        cached = shared_cache_turns()
        start = time.perf_counter()
        checkpoint = train(
            args.out / name,
            train_log,
            val_log,
            {"defect": 1.0},
            args,
            corrupt=True,
            order_cycle=order_cycle,
        )
        seconds = time.perf_counter() - start
        epoch, loss = best_epoch(checkpoint)
        ways[name] = {
            "order_cycle": order_cycle,
            "seconds": round(seconds, 3),
            # none dropped here: far below `EncoderConfig.cache_turns`
            "turns_encoded": shared_cache_turns() - cached,
            "epoch": epoch,
            "val_loss": loss,
        }
    result = {
        "benchmark": "stage1_cycle",
        "training_dialogues": n,
        "held_out_dialogues": len(dialogues) - n,
        "epochs": args.epochs,
        "cycle": cycle,
        **ways,
        "speedup": round(ways["every_epoch"]["seconds"] / ways["cycled"]["seconds"], 3),
    }
    report(result, args.out)


if __name__ == "__main__":
    main()
