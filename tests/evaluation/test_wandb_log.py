"""The evaluation's W&B run, offline: what `wandb sync` would upload is in the run folder."""

from __future__ import annotations

import json

from labelgen.evaluation.evaluate import evaluate
from tests.conftest import intent_labels, run_python

LOG_REPORT = """
import json, sys
from pathlib import Path
from labelgen.evaluation.wandb_log import log_report
print(log_report(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2])))
"""


def test_offline_run_holds_metrics_samples_and_plots(tmp_path):
    log, labels = intent_labels(tmp_path, wrong_every=3)
    report = evaluate(labels, log, out_dir=tmp_path / "eval", n_resamples=20)
    samples = report["samples"]
    assert len({r["dialogue_id"] for r in samples}) == 8
    assert any(r["intent"] == "Wrong" and r["review"] == "intent" for r in samples)
    assert all(r["user_text"] for r in samples)
    (tmp_path / "report.json").write_text(json.dumps(report))

    result = run_python(
        ["-c", LOG_REPORT, str(tmp_path / "report.json"), str(tmp_path / "eval")],
        tmp_path,
        {"WANDB_MODE": "offline", "WANDB_SILENT": "true"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [run] = (tmp_path / "eval" / "wandb").glob("offline-run-*")
    assert list(run.glob("run-*.wandb"))  # the record `wandb sync` uploads
    tables = {p.name.split("_")[0]: p for p in run.rglob("*.table.json")}
    assert set(tables) == {"metrics", "samples"}
    logged = json.loads(tables["samples"].read_text())
    assert logged["columns"][:3] == ["dialogue_id", "turn_index", "user_text"]
    assert len(logged["data"]) == len(samples)
    metrics = json.loads(tables["metrics"].read_text())
    accuracy = [r for r in metrics["data"] if r[:3] == ["intent", "model", "accuracy"]]
    assert accuracy and accuracy[0][3] == report["tasks"]["intent"]["model"]["accuracy"]["value"]
    assert list(run.rglob("*.png"))  # the plots
