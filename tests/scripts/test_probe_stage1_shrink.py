"""The stage-1 shrink probe on a tiny benchmark run: every model scored on the held-out
dialogues, and shrink 0 the arm without stage 1, bit for bit."""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import ROOT


@pytest.mark.slow
def test_shrink_zero_trains_the_arm_without_stage1(tmp_path, sgd_file, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    from quality.runs import read, write_log

    # what a benchmark run leaves: its SGD logs (stage 1 trained by the probe, as the run would)
    run = tmp_path / "run"
    dialogues = read(sgd_file, "sgd", 12, 0, rejects=run / "r.jsonl")[0]
    write_log(dialogues[:8], run / "sgd" / "train.parquet")
    write_log(dialogues[8:], run / "sgd" / "val.parquet")

    out = tmp_path / "probe"
    monkeypatch.setattr(
        "sys.argv",
        [
            "probe_stage1_shrink.py",
            *("--run", str(run), "--out", str(out), "--epochs", "1"),
            *("--shrink", "0", "--seeds", "0", "--train-jobs", "1", "--pretrain-epochs", "1"),
        ],
    )
    import probe_stage1_shrink

    probe_stage1_shrink.main()  # in this process: a fresh one would load torch and MiniLM again
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result == json.loads((out / "result.json").read_text())
    # the arms started from the probe's own stage 1, on the run's training log (no extras)
    assert result["stage1"] == str(out / "pretrain" / "best.ckpt")
    stage1 = json.loads((out / "pretrain" / "settings.json").read_text())
    assert stage1["tasks"] == {"defect": 1.0} and stage1["corrupt"] and stage1["epochs"] == 1
    scores = result["scores"]
    assert set(scores) == {"no-stage1-seed0", "shrink0.0-seed0"}
    assert result["held_out_dialogues"] == 4
    for figures in scores.values():
        headline = [figures[k] for k in ("intent_accuracy", "slot_span_f1", "boundary_f1")]
        assert all(0 <= value <= 1 for value in headline) and figures["val_loss"] > 0

    def weights(name):
        state = torch.load(out / name / "best.ckpt", map_location="cpu", weights_only=False)
        return {k: v for k, v in state["state_dict"].items() if not k.startswith("encoder.model.")}

    # shrink 0 keeps none of stage 1: the same fresh start and batches as no stage 1 at all
    # (loaded whole, stage 1's weights would differ from fresh ones: this can fail; the blend
    # itself is tested in tests/models)
    fresh, zero = (weights(name) for name in ("no-stage1-seed0", "shrink0.0-seed0"))
    assert fresh.keys() == zero.keys()
    assert all(torch.equal(fresh[k], zero[k]) for k in fresh)
    assert result["minus_no_stage1"] == {"shrink0.0-seed0": {"mean": 0.0, "val_loss": 0.0}}
