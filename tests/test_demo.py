"""The README's main job, shrunk: synthesize, pretrain, fine-tune, label, evaluate."""

from __future__ import annotations

import json

from tests.conftest import run_python


def test_demo_end_to_end(tmp_path):
    result = run_python(
        ["-m", "labelgen.cli", "demo", "--dialogues", "60"], tmp_path, {"WANDB_MODE": "offline"}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    tasks = summary["tasks"]
    for task in ("intent", "slots", "segment", "goal_success", "dissatisfaction"):
        assert tasks[task]["model"] is not None and tasks[task]["human"] is not None, task
    demo = tmp_path / "runs" / "demo"
    metrics = json.loads((demo / "eval" / "metrics.json").read_text())
    assert metrics["reference"]["rejects"] == 0
    assert list((demo / "eval").glob("*.png"))
    assert json.loads((demo / "labels-test" / "_manifest.json").read_text())["dialogues"] == 30
    assert list((tmp_path / "runs" / "demo-finetune" / "wandb").glob("offline-run-*"))
    assert "model vs a single annotator" in result.stdout
    # the evaluation went to W&B too: the metrics table and the plots in the offline run
    [run] = (demo / "eval" / "wandb").glob("offline-run-*")
    media = {p.suffix for p in run.rglob("*") if "media" in p.parts}
    assert {".json", ".png"} <= media
