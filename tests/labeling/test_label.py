from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from labelgen.cli import main
from labelgen.data.synth import synth_to_file
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def log(tmp_path_factory) -> Path:
    """60 synthetic dialogues with two broken records among them."""
    folder = tmp_path_factory.mktemp("log")
    synth_to_file(folder / "clean.jsonl", 60, seed=5)
    lines = (folder / "clean.jsonl").read_text().splitlines()
    lines.insert(10, '{"dialogue_id": "cut", "turns": [')
    lines.insert(40, json.dumps({"dialogue_id": "empty", "turns": []}))
    (folder / "log.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "log.jsonl"


def _args(out: Path, model: Path, log: Path, *extra: str) -> list[str]:
    """`labelgen label` arguments shared by every test: 4 shards of 16 records."""
    return [
        "label",
        "--model",
        str(model),
        "--input",
        str(log),
        "--output",
        str(out),
        "--shard-size",
        "16",
        "--batch-size",
        "4",
        "--accelerator",
        "cpu",
        *extra,
    ]


def _label(out: Path, model: Path, log: Path, *extra: str) -> dict:
    assert main(_args(out, model, log, *extra)) == 0
    return json.loads((out / "_manifest.json").read_text())


def _parts(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("part-*.parquet"))}


def test_every_record_is_labeled_or_rejected(tmp_path, tiny_model_dir, log):
    manifest = _label(tmp_path / "out", tiny_model_dir, log, "--threshold", "intent=0.99")
    assert manifest["input_records"] == 62 == manifest["dialogues"] + manifest["rejected"]
    assert manifest["rejected"] == 2 and manifest["shards"] == 4
    table = pq.read_table(tmp_path / "out").to_pylist()
    ids = [r["dialogue_id"] for r in table if r["turn_index"] == 0]
    assert len(ids) == len(set(ids)) == 60
    assert len(table) == manifest["turns"]
    row = table[0]
    assert row["intent"] and 0 < row["intent_confidence"] <= 1
    assert row["segment"] in "BIO" and len(row["satisfaction_probs"]) == 5
    assert all("intent" in r["review"] for r in table)  # nothing is 99% sure yet
    assert manifest["auto_labeled_share"]["intent"] == 0.0
    rejects = [
        json.loads(x) for p in (tmp_path / "out" / "_rejects").glob("*.jsonl") for x in p.open()
    ]
    assert sorted(r["source"].rsplit(":", 1)[1] for r in rejects) == ["11", "41"]
    assert all(r["reason"] for r in rejects)


def test_rerun_skips_done_shards_and_output_is_identical(tmp_path, tiny_model_dir, log):
    out = tmp_path / "out"
    _label(out, tiny_model_dir, log)
    first = _parts(out)
    (out / "_done" / "part-000002.json").unlink()  # as if killed before shard 2 was marked done
    stamp = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")}
    _label(out, tiny_model_dir, log)
    assert _parts(out) == first
    again = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")}
    assert [n for n in stamp if stamp[n] != again[n]] == ["part-000002.parquet"]


def _spawn(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "labelgen.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_sigkill_midway_then_rerun_matches_an_uninterrupted_run(tmp_path, tiny_model_dir, log):
    reference = tmp_path / "ref"
    _label(reference, tiny_model_dir, log)
    out = tmp_path / "out"
    args = _args(out, tiny_model_dir, log)
    for kill_after in (1, 2):  # killed twice, at different points
        proc = _spawn(args)
        deadline = time.time() + 120
        while len(list((out / "_done").glob("*.json"))) < kill_after and time.time() < deadline:
            if proc.poll() is not None:
                break
            time.sleep(0.01)
        proc.kill()
        proc.wait()
        # nothing half-written in sight: every visible part is a whole Parquet file
        for part in out.glob("part-*.parquet"):
            pq.read_table(part)
    finished = _spawn(args)
    stdout, stderr = finished.communicate(timeout=300)
    assert finished.returncode == 0, stderr.decode()[-2000:]
    assert _parts(out) == _parts(reference)
    manifest = json.loads(stdout.decode().strip().splitlines()[-1])
    assert manifest["input_records"] == 62


@pytest.mark.slow
def test_two_processes_give_the_output_of_one(tmp_path, tiny_model_dir, log):
    reference = tmp_path / "one"
    _label(reference, tiny_model_dir, log)
    out = tmp_path / "two"
    proc = _spawn(_args(out, tiny_model_dir, log, "--devices", "2", "--strategy", "ddp"))
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr.decode()[-2000:]
    assert _parts(out) == _parts(reference)
    assert json.loads(stdout.decode().strip().splitlines()[-1])["dialogues"] == 60


def test_bad_model_path_and_threshold_are_usage_errors(tmp_path, log, capsys):
    assert (
        main(
            [
                "label",
                "--model",
                str(tmp_path / "nope"),
                "--input",
                str(log),
                "--output",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert (
        main(
            [
                "label",
                "--model",
                str(log),
                "--input",
                str(log),
                "--output",
                str(tmp_path / "o"),
                "--threshold",
                "intent",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "does not exist" in err and "TASK=P" in err


def test_calibrated_cutoff_decides_dissatisfaction(tmp_path, tiny_model_dir, log):
    calibration = tmp_path / "calibration.json"
    calibration.write_text(json.dumps({"thresholds": {}, "cutoffs": {"dissatisfaction": 1e-6}}))
    manifest = _label(tmp_path / "low", tiny_model_dir, log, "--calibration", str(calibration))
    assert manifest["dissatisfaction_cutoff"] == 1e-6
    rows = pq.read_table(tmp_path / "low").to_pylist()
    assert all(r["dissatisfied"] and r["satisfaction"] <= 2 for r in rows)
    # the command line wins over the file
    _label(
        tmp_path / "high",
        tiny_model_dir,
        log,
        "--calibration",
        str(calibration),
        "--dissatisfaction-cutoff",
        "0.999999",
    )
    rows = pq.read_table(tmp_path / "high").to_pylist()
    assert not any(r["dissatisfied"] for r in rows)
    assert all(r["satisfaction"] >= 3 for r in rows)


def test_bf16_mixed_labels_match_full_precision(tmp_path, tiny_model_dir, log):
    # what a GPU job runs with --precision bf16-mixed (CPU autocast here): every output must
    # leave the model as something Parquet can hold, with labels close to float32's
    _label(tmp_path / "fp32", tiny_model_dir, log)
    manifest = _label(tmp_path / "bf16", tiny_model_dir, log, "--precision", "bf16-mixed")
    full, low = pq.read_table(tmp_path / "fp32"), pq.read_table(tmp_path / "bf16")
    assert manifest["turns"] == full.num_rows == low.num_rows
    pairs = zip(full["intent"].to_pylist(), low["intent"].to_pylist(), strict=True)
    assert sum(a == b for a, b in pairs) >= 0.9 * full.num_rows
    confidences = zip(
        full["intent_confidence"].to_pylist(), low["intent_confidence"].to_pylist(), strict=True
    )
    diffs = [abs(a - b) for a, b in confidences]
    assert 0 < max(diffs) < 0.05  # bf16 did run (it rounds), and only rounds
