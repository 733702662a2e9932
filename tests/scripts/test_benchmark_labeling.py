"""The labeling-overhead benchmark: both sides count the same turns, and the labels are real."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from tests.conftest import ROOT, run_python


@pytest.mark.slow
def test_quick_run_reports_the_ratio_of_the_same_turns(tmp_path):
    result = run_python(
        [
            str(ROOT / "scripts" / "benchmark_labeling.py"),
            "--quick",
            "--dialogues",
            "24",
            "--batch-size",
            "8",
            "--repeats",
            "2",
            "--memo-mb",
            "64",
            *("--threads", "1"),  # beside the other test worker (tests/conftest.py)
            "--out",
            str(tmp_path),
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    assert printed == json.loads((tmp_path / "result.json").read_text())
    assert printed["dialogues"] == 24 and printed["batch_size"] == 8
    labeled = sum(pq.read_metadata(p).num_rows for p in (tmp_path / "labels").glob("part-*"))
    assert labeled == printed["turns"] > 24
    bare, label = printed["bare_encoder_turns_per_s"], printed["label_turns_per_s"]
    assert bare > 0 and label > 0
    # of rounded figures: relative, since on a loaded machine either can be far from 1
    assert printed["ratio"] == pytest.approx(label / bare, rel=0.01, abs=2e-3)
    # the figure is one of the interleaved jobs' ratios, each between two bare passes
    assert len(printed["ratios"]) == 2 and len(printed["bare_pass_s"]) == 3
    assert printed["ratio"] in printed["ratios"]
    assert printed["label_turns_per_s_with_model_load"] < label
    # the memo's jobs wrote the uncached job's labels; the second skipped the encoder, the
    # third the reading and featurizing too (each job's own labels folder)
    assert printed["memo_labels_identical"] is True
    assert printed["memo_speedup"] > 0 and printed["memo_hit_s"] > 0
    assert printed["memo_and_batches_speedup"] > 0 and printed["memo_and_batches_hit_s"] > 0
    for name in ("fill", "hit", "hit-batches"):
        written = tmp_path / f"labels-memo-{name}"
        assert sum(pq.read_metadata(p).num_rows for p in written.glob("part-*")) == labeled
