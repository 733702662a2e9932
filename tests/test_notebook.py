"""notebooks/walkthrough.ipynb runs top to bottom and shows what it promises."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT, SHARED_DATA

NOTEBOOK = ROOT / "notebooks" / "walkthrough.ipynb"


def _execute(tmp_path, monkeypatch, source: str):
    import nbformat
    from nbclient import NotebookClient

    # the kernel inherits this environment: write under tmp_path, few epochs, W&B off
    monkeypatch.setenv("LABELGEN_WALKTHROUGH_DIR", str(tmp_path))
    monkeypatch.setenv("LABELGEN_WALKTHROUGH_QUICK", "1")
    monkeypatch.setenv("LABELGEN_WALKTHROUGH_DATA", source)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    # One thread: under pytest-xdist the kernel shares the cores with the other worker, and
    # two busy thread pools on two cores slowed the SGD run six-fold (85 s alone, 8.5 min).
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    ).execute()  # raises CellExecutionError, with the cell and traceback, if a cell fails
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert "review thresholds" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 3  # the three plots
    [dialogue] = [h for h in html if "turn / goal" in h]  # the rendered dialogue
    assert dialogue.count("<tr>") > 2  # its header and turns
    assert any("intent_confidence" in h for h in html)  # the labels' table
    assert (tmp_path / "runs" / "walkthrough-model" / "README.md").is_file()
    assert not (ROOT / "notebooks" / "runs").exists()  # nothing written beside the notebook
    return text, json.loads((tmp_path / "runs" / "eval-test" / "metrics.json").read_text())


@pytest.mark.slow
def test_walkthrough_runs_top_to_bottom(tmp_path, monkeypatch):
    text, metrics = _execute(tmp_path, monkeypatch, "synthetic")
    assert "single annotator" in text
    assert "human" in metrics["tasks"]["intent"]  # the point to beat, from the annotators


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "sgd" / "train").is_dir(), reason="needs ../shared/data")
def test_walkthrough_on_sgd_learns_the_intents(tmp_path, monkeypatch):
    """The SGD option trains the pretrained MiniLM's model on three services' dialogues: in
    the quick setting it must already label most held-out intents and slots right."""
    _, metrics = _execute(tmp_path, monkeypatch, "sgd")
    intent, slots = metrics["tasks"]["intent"], metrics["tasks"]["slots"]
    assert intent["items"] >= 300 and "human" not in intent  # SGD has no annotators
    assert intent["model"]["accuracy"]["value"] >= 0.8
    assert slots["model"]["f1"]["value"] >= 0.5
