"""An evaluation report into a W&B run: metrics as a table and summary, plots as images, and a
table of sample labeled dialogues (turn texts, the model's labels, the reference intent)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from labelgen.evaluation.evaluate import SIDES


def log_report(
    report: dict[str, Any], out_dir: Path, project: str = "labelgen", name: str | None = None
) -> str | None:
    """Logs to a new run (offline unless WANDB_MODE says otherwise); returns its folder."""
    import wandb

    run = wandb.init(
        project=project,
        name=name,
        job_type="evaluate",
        dir=str(out_dir),
        mode=os.environ.get("WANDB_MODE", "offline"),
        config={"reference": report["reference"]},
    )
    rows = []
    for task, section in report.get("tasks", {}).items():
        for who in SIDES:
            for metric, e in section.get(who, {}).items():
                if e.get("value") is not None:
                    rows.append([task, who, metric, e["value"], *e["ci95"], e.get("n")])
                    run.summary[f"eval/{task}/{who}/{metric}"] = e["value"]
    columns = ["task", "who", "metric", "value", "ci_low", "ci_high", "n"]
    run.log({"eval/metrics": wandb.Table(columns=columns, data=rows)})
    samples = report.get("samples") or []
    if samples:
        columns = list(samples[0])
        run.log(
            {
                "eval/samples": wandb.Table(
                    columns=columns, data=[[row[c] for c in columns] for row in samples]
                )
            }
        )
    images = {f"eval/{key}": wandb.Image(path) for key, path in report.get("plots", {}).items()}
    if images:
        run.log(images)
    folder = run.dir
    run.finish()
    return folder
