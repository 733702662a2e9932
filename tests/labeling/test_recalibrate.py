from __future__ import annotations

import json
import statistics

import pyarrow.parquet as pq
import pytest

from labelgen.cli import main
from labelgen.labeling import recalibrate as recalibrate_module
from labelgen.labeling.recalibrate import RecalibrationError, recalibrate
from tests.labeling.conftest import label, label_args, parts


def _bookkeeping(out) -> dict[str, str]:
    return {
        str(p.relative_to(out)): p.read_text()
        for folder in ("_done", "_rejects")
        for p in sorted((out / folder).iterdir())
    }


def test_recalibrated_labels_are_those_of_labeling_with_the_calibration(
    tmp_path, tiny_model_dir, log, capsys
):
    plain = label(tmp_path / "plain", tiny_model_dir, log)
    rows = pq.read_table(tmp_path / "plain").to_pylist()
    # a cutoff inside the model's P(rating <= 2), so that some turns change side; a rating
    # weight that changes the satisfied side's rating; thresholds that send labels to review
    cutoff = statistics.median(
        r["satisfaction_probs"][0] + r["satisfaction_probs"][1] for r in rows
    )
    calibration = tmp_path / "calibration.json"
    calibration.write_text(
        json.dumps(
            {
                "thresholds": {"intent": 0.9, "satisfaction": 0.5},
                "cutoffs": {"dissatisfaction": cutoff},
                "rating_weights": [1.0, 1.0, 1.0, 1.0, 1e9],
            }
        )
    )
    direct = label(tmp_path / "direct", tiny_model_dir, log, "--calibration", str(calibration))
    args = ["recalibrate", "--labels", str(tmp_path / "plain"), "--output", str(tmp_path / "re")]
    assert main([*args, "--calibration", str(calibration)]) == 0
    assert "decided" in capsys.readouterr().out
    assert parts(tmp_path / "re") == parts(tmp_path / "direct")
    assert _bookkeeping(tmp_path / "re") == _bookkeeping(tmp_path / "direct")
    manifest = json.loads((tmp_path / "re" / "_manifest.json").read_text())
    assert manifest.pop("recalibrated_from") == str(tmp_path / "plain")
    assert manifest == {k: v for k, v in direct.items() if k != "dialogues_per_second"}
    # ... and they differ from the labels they came from
    again = pq.read_table(tmp_path / "re").to_pylist()
    assert [r["dissatisfied"] for r in again] != [r["dissatisfied"] for r in rows]
    assert [r["satisfaction"] for r in again] != [r["satisfaction"] for r in rows]
    assert any(r["review"] for r in again) and not any(r["review"] for r in rows)
    assert manifest["auto_labeled_share"] != plain["auto_labeled_share"]
    # `labelgen label` into the output resumes it with these settings, refuses any other
    resumed = label_args(tmp_path / "re", tiny_model_dir, log, "--calibration", str(calibration))
    assert main(resumed) == 0
    assert parts(tmp_path / "re") == parts(tmp_path / "direct")
    assert main(label_args(tmp_path / "re", tiny_model_dir, log)) == 2
    assert "labeled by another job" in capsys.readouterr().err


def test_incomplete_labels_and_an_occupied_output_are_refused(tmp_path, tiny_model_dir, log):
    label(tmp_path / "plain", tiny_model_dir, log)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    with pytest.raises(RecalibrationError, match="not an empty directory"):
        recalibrate(tmp_path / "plain", tmp_path / "busy")
    assert (tmp_path / "busy" / "keep.txt").read_text() == "mine"
    with pytest.raises(RecalibrationError, match="own folder"):
        recalibrate(tmp_path / "plain", tmp_path / "plain")
    with pytest.raises(ValueError, match="dissatisfaction_cutoff"):
        recalibrate(tmp_path / "plain", tmp_path / "out", dissatisfaction_cutoff=1.5)
    next((tmp_path / "plain").glob("part-*.parquet")).unlink()
    with pytest.raises(RecalibrationError, match="missing"):
        recalibrate(tmp_path / "plain", tmp_path / "out")
    (tmp_path / "plain" / "_manifest.json").unlink()
    with pytest.raises(RecalibrationError, match="not complete"):
        recalibrate(tmp_path / "plain", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_crash_leaves_no_output_and_a_rerun_writes_it_whole(
    tmp_path, tiny_model_dir, log, monkeypatch
):
    label(tmp_path / "plain", tiny_model_dir, log)
    written = []
    real = recalibrate_module.pq.write_table

    def fail_on_the_second_part(table, where, **kwargs):
        if written:
            raise OSError(28, "No space left on device")
        written.append(where)
        real(table, where, **kwargs)

    monkeypatch.setattr(recalibrate_module.pq, "write_table", fail_on_the_second_part)
    with pytest.raises(OSError, match="No space"):
        recalibrate(tmp_path / "plain", tmp_path / "out", dissatisfaction_cutoff=0.3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain"]  # nor a temporary
    monkeypatch.undo()
    manifest = recalibrate(tmp_path / "plain", tmp_path / "out", dissatisfaction_cutoff=0.3)
    assert manifest["shards"] == len(parts(tmp_path / "out")) > 1
    assert pq.read_table(tmp_path / "out").num_rows == manifest["turns"]
