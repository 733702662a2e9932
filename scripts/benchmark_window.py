"""labelgen against what a user would write instead: one encoder pass per turn over a window.

    python scripts/benchmark_window.py --quick       # 48 SGD dev dialogues, under 2 minutes
    python scripts/benchmark_window.py               # 240 SGD dev dialogues
    python scripts/benchmark_window.py --natural 300 # 300 at random: SGD's own length mix

The published satisfaction baselines classify each turn with the encoder over one sequence
holding the dialogue history, the turn and the next turn (the user's reaction), the history
truncated from the left to the encoder's maximum length. labelgen encodes each turn once and
lets a small dialogue Transformer carry the context. Both run here in one process, on the
same dialogues, batch size, thread count and length-sorted chunks of the same token budget.
The window side is only the encoder's forward pass over sequences tokenized beforehand (no
reading, no heads, no writing); labelgen's side is `run_label` end to end, so the ratio
favours the window. Per dialogue-length bucket, the window's encoder pass is set against
labelgen's model forward (encoder, dialogue Transformer, heads) on the same dialogues:
labelgen's cost per turn should stay flat as dialogues grow, the window's grow with the history.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import torch
from benchmark_labeling import (  # this folder, run as a script
    build_model,
    collated_batches,
    report,
    timed_label,
)

from labelgen.data.canonical import CanonicalWriter
from labelgen.data.readers import read_log
from labelgen.data.schema import Dialogue
from labelgen.data.tokenization import load_tokenizer
from labelgen.labeling.label import load_model
from labelgen.models.labelgen_module import LabelGenModule

TARGET = 5.0
BUCKETS = ((1, 5), (6, 9), (10, 13), (14, 1000))
"""Dialogue lengths in turns (a turn = a user utterance and the system's response)."""


def sample(log: Path, fmt: str, per_bucket: int, seed: int, natural: int = 0) -> list[Dialogue]:
    """`per_bucket` random dialogues of each length bucket (fewer where the log has fewer); with
    `natural`, that many random dialogues instead, in the log's own mix of lengths."""
    dialogues = [d for d in read_log(str(log), fmt) if isinstance(d, Dialogue)]
    rng = random.Random(seed)
    if natural:
        return rng.sample(dialogues, min(natural, len(dialogues)))
    by_bucket: dict[int, list[Dialogue]] = {i: [] for i in range(len(BUCKETS))}
    for d in dialogues:
        for i, (low, high) in enumerate(BUCKETS):
            if low <= len(d.turns) <= high:
                by_bucket[i].append(d)
    return [
        d for i in by_bucket for d in rng.sample(by_bucket[i], min(per_bucket, len(by_bucket[i])))
    ]


def window_batches(
    module: LabelGenModule, dialogues: list[Dialogue], batch_size: int
) -> list[dict[str, torch.Tensor]]:
    """Per batch of dialogues, one sequence per turn: (earlier turns and this turn, the next
    turn), cut from the left."""
    tokenizer = load_tokenizer(module.hparams["tokenizer"])
    tokenizer.truncation_side = "left"  # keep the most recent history
    limit = min(tokenizer.model_max_length, module.encoder.model.config.max_position_embeddings)
    batches = []
    for start in range(0, len(dialogues), batch_size):
        context, following = [], []
        for d in dialogues[start : start + batch_size]:
            texts = [f"{t.user_text or ''} {t.system_text or ''}".strip() for t in d.turns]
            for i in range(len(texts)):
                context.append(" ".join(texts[: i + 1]) or ".")
                following.append(texts[i + 1] if i + 1 < len(texts) and texts[i + 1] else ".")
        enc = tokenizer(
            context,
            following,
            truncation="only_first",
            max_length=limit,
            padding=True,
            return_tensors="pt",
        )
        batches.append(
            {
                "input_ids": enc["input_ids"],
                "attention_mask": enc["attention_mask"],
                "token_type_ids": enc.get("token_type_ids"),
            }
        )
    return batches


@torch.no_grad()
def timed(fn, batches) -> float:
    start = time.perf_counter()
    for batch in batches:
        fn(batch)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--log", type=Path, default=Path("../shared/data/sgd/dev"))
    parser.add_argument("--format", default="sgd")
    parser.add_argument("--model", type=Path, help="exported model or .ckpt (default: built)")
    parser.add_argument("--per-bucket", type=int, help="dialogues per length bucket (60; 12)")
    parser.add_argument("--natural", type=int, default=0, help="N random dialogues instead")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmark-window"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    dialogues = sample(
        args.log,
        args.format,
        args.per_bucket or (12 if args.quick else 60),
        args.seed,
        args.natural,
    )
    log = args.out / "log.parquet"
    with CanonicalWriter(log) as writer:
        writer.write_all(dialogues)
    model = args.model or build_model(log, args.out / "model")
    start = time.perf_counter()
    module = load_model(str(model))
    load_s = time.perf_counter() - start
    module.encoder.cache_enabled = False

    def encoder(batch):
        module.encoder._encode(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])

    buckets = []
    for low, high in BUCKETS:
        group = [d for d in dialogues if low <= len(d.turns) <= high]
        if not group:
            continue
        part = args.out / f"log-{low}-{high}.parquet"
        with CanonicalWriter(part) as writer:
            writer.write_all(group)
        ours, windows = (
            collated_batches(module, part, args.batch_size),
            window_batches(module, group, args.batch_size),
        )
        timed(encoder, windows[:1])  # warm-up
        window_s = timed(encoder, windows)
        labelgen_s = timed(module, ours)
        turns = sum(len(d.turns) for d in group)
        tokens = sum(int(b["attention_mask"].sum()) for b in windows)
        buckets.append(
            {
                "turns_per_dialogue": [low, high],
                "dialogues": len(group),
                "turns": turns,
                "window_tokens_per_turn": round(tokens / turns, 1),
                "window_ms_per_turn": round(1000 * window_s / turns, 2),
                "labelgen_model_ms_per_turn": round(1000 * labelgen_s / turns, 2),
                "speedup": round(window_s / labelgen_s, 2),
            }
        )

    windows = window_batches(module, dialogues, args.batch_size)
    window_s = timed(encoder, windows)
    label_s, _ = timed_label(model, log, args.out / "labels", args)
    label_s -= load_s  # run_label loads the model once per job: start-up, not per-turn work
    turns = sum(len(d.turns) for d in dialogues)
    result = {
        "benchmark": "window_baseline",
        "log": str(args.log),
        "sample": f"{args.natural} at random" if args.natural else "equal length buckets",
        "dialogues": len(dialogues),
        "turns": turns,
        "window_turns_per_s": round(turns / window_s, 1),
        "label_turns_per_s": round(turns / label_s, 1),
        "speedup": round(window_s / label_s, 2),
        "target": TARGET,
        "buckets": buckets,
    }
    report(result, args.out)


if __name__ == "__main__":
    main()
