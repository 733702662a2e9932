"""notebooks/walkthrough.ipynb runs top to bottom and shows what it promises."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT

NOTEBOOK = ROOT / "notebooks" / "walkthrough.ipynb"


@pytest.mark.slow
def test_walkthrough_runs_top_to_bottom(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    # the kernel inherits this environment: write under tmp_path, few epochs, W&B off
    monkeypatch.setenv("LABELGEN_WALKTHROUGH_DIR", str(tmp_path))
    monkeypatch.setenv("LABELGEN_WALKTHROUGH_QUICK", "1")
    monkeypatch.setenv("WANDB_MODE", "disabled")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    ).execute()  # raises CellExecutionError, with the cell and traceback, if a cell fails

    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "single annotator" in text and "review thresholds" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 3  # the three plots
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    [dialogue] = [h for h in html if "turn / goal" in h]  # the rendered dialogue
    assert dialogue.count("<tr>") > 2  # its header and turns
    assert any("intent_confidence" in h for h in html)  # the labels' table
    assert (tmp_path / "runs" / "walkthrough-model" / "README.md").is_file()
    assert not (ROOT / "notebooks" / "runs").exists()  # nothing written beside the notebook
