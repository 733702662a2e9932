"""`labelgen demo`: the whole workflow on synthetic logs, offline, on CPU, in a few minutes.

Synthesize logs with three noisy annotators -> pretrain (response swaps) -> fine-tune (every
task) -> export -> label the validation log -> evaluate it to calibrate thresholds -> label the
held-out test log with them -> evaluate against the annotators' consensus, beside a single
annotator. Data, labels and evaluation land in runs/demo; the two training runs in
runs/demo-pretrain and runs/demo-finetune (named in the demo configs).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

OUT = Path("runs/demo")
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
HEADLINE_METRIC = {
    "intent": "accuracy",
    "segment": "boundary_f1",
    "goal_success": "macro_f1",
    "slots": "f1",
    "satisfaction": "accuracy",
    "dissatisfaction": "f1",
}


def _fit(config: str) -> None:
    from labelgen.training import run

    path = CONFIGS / config
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run the demo from a labelgen checkout")
    run(["fit", "--config", str(path)])


def run_demo(dialogues: int = 800, seed: int = 0) -> dict[str, Any]:
    from labelgen.data.synth import synth_to_file
    from labelgen.evaluation.evaluate import evaluate
    from labelgen.evaluation.wandb_log import log_report
    from labelgen.labeling.label import (
        LabelJob,
        parse_thresholds,
        read_cutoff,
        read_rating_weights,
        run_label,
    )
    from labelgen.models.export import export_model

    start = time.perf_counter()
    # A fresh run each time: a previous run's checkpoints would compete for "best".
    for folder in (OUT, Path("runs/demo-pretrain"), Path("runs/demo-finetune")):
        shutil.rmtree(folder, ignore_errors=True)
    data = OUT / "data"
    sizes = {"train": dialogues, "val": max(dialogues // 4, 20), "test": max(dialogues // 2, 20)}
    for offset, (split, n) in enumerate(sizes.items()):
        synth_to_file(data / f"{split}.parquet", n, seed + offset)
    _fit("demo-pretrain.yaml")
    _fit("demo-finetune.yaml")
    [best] = sorted(Path("runs/demo-finetune/checkpoints").glob("best-*.ckpt"))
    model = export_model(best, OUT / "model", overwrite=True)

    def label(split: str, calibration: str | None = None) -> Path:
        out = OUT / f"labels-{split}"
        run_label(
            LabelJob(
                model=str(model),
                input=str(data / f"{split}.parquet"),
                output=str(out),
                thresholds=parse_thresholds([], calibration),
                dissatisfaction_cutoff=read_cutoff(calibration) or 0.5,
                rating_weights=read_rating_weights(calibration),
                accelerator="cpu",
            )
        )
        return out

    calibration = evaluate(
        label("val"),
        data / "val.parquet",
        out_dir=OUT / "eval-val",
        seed=seed,
        make_plots=False,
    )["calibration"]["path"]
    # review thresholds and the dissatisfaction cutoff, chosen on the validation labels
    labels = label("test", calibration)
    report = evaluate(labels, data / "test.parquet", out_dir=OUT / "eval", seed=seed)
    log_report(report, OUT / "eval", name="demo-evaluate")
    return {"report": report, "seconds": time.perf_counter() - start}


def summary(report: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Per task: model vs single annotator, and the coverage kept at the calibrated threshold."""
    lines = [f"{'task':<18}{'metric':<13}{'model':>7}{'human':>7}  threshold  coverage"]
    rows: dict[str, Any] = {}
    for task, section in report["tasks"].items():
        metric = HEADLINE_METRIC.get(task, "accuracy")
        model = section.get("model", {}).get(metric, {}).get("value")
        human = section.get("human", {}).get(metric, {}).get("value")
        sweep = section.get("thresholds", {})
        threshold = sweep.get("threshold_at_human", sweep.get("threshold_at_target"))
        coverage = sweep.get("coverage_at_human", sweep.get("coverage_at_target"))
        rows[task] = {
            "metric": metric,
            "model": model,
            "human": human,
            "threshold": threshold,
            "coverage": coverage,
        }
        cells = [f"{v:>7.3f}" if v is not None else f"{'-':>7}" for v in (model, human)]
        where = "unreached" if threshold is None else f"{threshold:9.3f}  {coverage:8.1%}"
        lines.append(f"{task:<18}{metric:<13}{cells[0]}{cells[1]}  {where}")
    return "\n".join(lines), rows
