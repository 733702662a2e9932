from __future__ import annotations

import json
import os
import random
import subprocess
import time
from contextlib import suppress
from dataclasses import replace
from pathlib import Path

import lightning as L
import pyarrow.parquet as pq
import pytest
import torch

from labelgen.cli import main
from labelgen.labeling import shards
from labelgen.labeling.label import LabelJob, run_label
from labelgen.models.components import turn_encoder
from labelgen.models.export import export_model
from tests.labeling.conftest import (
    assert_consistent,
    hidden_files,
    label,
    label_args,
    outcome,
    parts,
    spawn,
)
from tests.models.conftest import TINY_ROBERTA, make_datamodule, make_module


def test_every_record_is_labeled_or_rejected(tmp_path, tiny_model_dir, log):
    manifest = label(tmp_path / "out", tiny_model_dir, log, "--threshold", "intent=0.99")
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
    label(out, tiny_model_dir, log)
    first = parts(out)
    (out / "_done" / "part-000002.json").unlink()  # as if killed before shard 2 was marked done
    stamp = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")}
    label(out, tiny_model_dir, log)
    assert parts(out) == first
    again = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")}
    assert [n for n in stamp if stamp[n] != again[n]] == ["part-000002.parquet"]


def _wait(out: Path, proc: subprocess.Popen, shards_done: int) -> bool:
    """Until `proc` holds the output's lock (its imports are over, its job has begun) and
    `shards_done` shards are done; False if it ends first."""
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline:
        with suppress(OSError, ValueError):
            holder = json.loads((out / "_lock").read_text())["pid"]
            if holder == proc.pid and len(list((out / "_done").glob("*"))) >= shards_done:
                return True
        time.sleep(0.01)
    return False


def test_sigkill_at_random_points_then_rerun_matches_an_uninterrupted_run(
    tmp_path, tiny_model_dir, log
):
    reference, out = tmp_path / "ref", tmp_path / "out"
    extra = ("--shard-size", "8")  # 8 shards
    label(reference, tiny_model_dir, log, *extra)
    args = label_args(out, tiny_model_dir, log, *extra)
    # Random points along the job's progress rather than the clock, which a loaded machine
    # stretches: up to 2 shards done, 3 to 5, 6 to 8 (all: the kill may come after the end),
    # each followed by up to 0.2 s more (about a shard).
    rng = random.Random(2)  # 0, 4 and 8 shards: before the first, midway, after the last
    for low, high in ((0, 2), (3, 5), (6, 8)):
        proc = spawn(args)
        if _wait(out, proc, rng.randint(low, high)):
            time.sleep(rng.uniform(0, 0.2))
        proc.kill()
        proc.wait()
        assert_consistent(out)
    finished = spawn(args)
    stdout, stderr = finished.communicate(timeout=300)
    assert finished.returncode == 0, stderr.decode()[-2000:]
    assert json.loads(stdout.decode().strip().splitlines()[-1])["input_records"] == 62
    # Labels written by other processes than the reference's, byte for byte: this is also
    # the check that two runs of one model on one input label it identically.
    assert outcome(out) == outcome(reference)
    assert hidden_files(out) == []  # the temporaries of killed writers are gone


@pytest.mark.slow
def test_two_processes_give_the_output_of_one(tmp_path, tiny_model_dir, log):
    reference = tmp_path / "one"
    label(reference, tiny_model_dir, log)
    out = tmp_path / "two"
    proc = spawn(label_args(out, tiny_model_dir, log, "--devices", "2", "--strategy", "ddp"))
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr.decode()[-2000:]
    assert parts(out) == parts(reference)
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
    args = label_args(tmp_path / "o", log, log, "--max-reject-fraction", "1.5")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "TASK=P" in err and "max_reject_fraction" in err


def test_calibrated_cutoff_decides_dissatisfaction(tmp_path, tiny_model_dir, log):
    calibration = tmp_path / "calibration.json"
    calibration.write_text(json.dumps({"thresholds": {}, "cutoffs": {"dissatisfaction": 1e-6}}))
    manifest = label(tmp_path / "low", tiny_model_dir, log, "--calibration", str(calibration))
    assert manifest["dissatisfaction_cutoff"] == 1e-6
    rows = pq.read_table(tmp_path / "low").to_pylist()
    assert all(r["dissatisfied"] and r["satisfaction"] <= 2 for r in rows)
    # the command line wins over the file
    label(
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


def test_calibrated_rating_weights_choose_the_rating_within_the_side(tmp_path, tiny_model_dir, log):
    plain_manifest = label(tmp_path / "plain", tiny_model_dir, log)
    plain = pq.read_table(tmp_path / "plain").to_pylist()
    # weights that make 5 win on the satisfied side wherever it has any probability at all
    calibration = tmp_path / "calibration.json"
    weights = [1.0, 1.0, 1.0, 1.0, 1e9]
    calibration.write_text(json.dumps({"thresholds": {}, "rating_weights": weights}))
    manifest = label(tmp_path / "weighted", tiny_model_dir, log, "--calibration", str(calibration))
    assert manifest["rating_weights"] == weights and "rating_weights" in plain_manifest
    weighted = pq.read_table(tmp_path / "weighted").to_pylist()
    assert [r["dissatisfied"] for r in weighted] == [r["dissatisfied"] for r in plain]
    for before, after in zip(plain, weighted, strict=True):
        assert after["satisfaction_probs"] == before["satisfaction_probs"]
        expected = before["satisfaction"] if before["dissatisfied"] else 5
        assert after["satisfaction"] == expected
        assert after["satisfaction_confidence"] == after["satisfaction_probs"][expected - 1]
    assert any(r["satisfaction"] != 5 for r in plain if not r["dissatisfied"])
    calibration.write_text(json.dumps({"thresholds": {}, "rating_weights": [1, 2]}))
    args = label_args(tmp_path / "bad", tiny_model_dir, log, "--calibration", str(calibration))
    assert main(args) == 2


def test_bf16_mixed_labels_match_full_precision(tmp_path, tiny_model_dir, log):
    # what a GPU job runs with --precision bf16-mixed (CPU autocast here): every output must
    # leave the model as something Parquet can hold, with labels close to float32's
    label(tmp_path / "fp32", tiny_model_dir, log)
    manifest = label(tmp_path / "bf16", tiny_model_dir, log, "--precision", "bf16-mixed")
    full, low = pq.read_table(tmp_path / "fp32"), pq.read_table(tmp_path / "bf16")
    assert manifest["turns"] == full.num_rows == low.num_rows
    pairs = zip(full["intent"].to_pylist(), low["intent"].to_pylist(), strict=True)
    assert sum(a == b for a, b in pairs) >= 0.9 * full.num_rows
    confidences = zip(
        full["intent_confidence"].to_pylist(), low["intent_confidence"].to_pylist(), strict=True
    )
    diffs = [abs(a - b) for a, b in confidences]
    assert 0 < max(diffs) < 0.05  # bf16 did run (it rounds), and only rounds


def test_token_budgets_default_to_the_models_training_settings(tmp_path, tiny_model_dir, log):
    from labelgen.labeling.label import LabelJob, labeling_dataset, load_model

    module = load_model(str(tiny_model_dir))
    job = LabelJob(model=str(tiny_model_dir), input=str(log), output=str(tmp_path))
    assert labeling_dataset(module, job).featurizer.max_user_tokens == 48  # nothing recorded
    module.data_settings = {"max_user_tokens": 24, "max_system_tokens": 16}
    featurizer = labeling_dataset(module, job).featurizer
    assert (featurizer.max_user_tokens, featurizer.max_system_tokens) == (24, 16)
    job.max_user_tokens = 12  # an explicit budget wins
    assert labeling_dataset(module, job).featurizer.max_user_tokens == 12


def test_a_rerun_by_another_job_is_refused_before_anything_is_touched(
    tmp_path, tiny_model_dir, log, capsys
):
    out = tmp_path / "out"
    label(out, tiny_model_dir, log)
    (out / "_done" / "part-000003.json").unlink()  # as if killed before the last shard
    before = outcome(out)
    manifest = (out / "_manifest.json").read_bytes()
    capsys.readouterr()
    # another cutoff would label the remaining shard differently from the three done
    assert main(label_args(out, tiny_model_dir, log, "--dissatisfaction-cutoff", "0.3")) == 2
    error = capsys.readouterr().err
    assert "holds 3 shard(s) labeled by another job" in error
    assert "dissatisfaction_cutoff differ" in error
    assert outcome(out) == before and (out / "_manifest.json").read_bytes() == manifest
    # the input rewritten in place is another job too, even under the same name
    moved = tmp_path / "log.jsonl"
    moved.write_bytes(log.read_bytes())
    label(tmp_path / "copy", tiny_model_dir, moved)
    (tmp_path / "copy" / "_done" / "part-000003.json").unlink()
    moved.write_bytes(log.read_bytes().replace(b'"turns"', b'"turns" ', 1))
    assert main(label_args(tmp_path / "copy", tiny_model_dir, moved)) == 2
    assert "input_files differ" in capsys.readouterr().err
    # the same job resumes, and how the work is spread is not part of it
    manifest = label(out, tiny_model_dir, log, "--batch-size", "2")
    assert manifest["shards"] == 4
    done = {name: data for name, data in parts(out).items() if name != "part-000003.parquet"}
    assert done == {name: data for name, data in before["."].items() if name in done}
    assert len(done) == 3


def test_an_unreadable_job_record_refuses_a_resume(tmp_path, tiny_model_dir, log, capsys):
    out = tmp_path / "out"
    label(out, tiny_model_dir, log)
    (out / "_job.json").write_text("{not json")
    capsys.readouterr()
    assert main(label_args(out, tiny_model_dir, log)) == 2
    assert "_job.json cannot be read" in capsys.readouterr().err


def test_models_sharing_a_frozen_encoder_label_through_the_memo_as_without_it(tmp_path, log):
    # two models with the same frozen encoder and different heads (a benchmark's arms)
    dm = make_datamodule(tmp_path / "cache")
    models = []
    for k in range(2):
        L.seed_everything(0)
        module = make_module(dm, encoder=replace(TINY_ROBERTA, frozen=True))
        with torch.no_grad():
            for name, param in module.named_parameters():
                if not name.startswith("encoder.model."):
                    param.add_(torch.randn_like(param) * k)
        models.append(export_model(module, tmp_path / f"model{k}"))
    memos = turn_encoder._BATCH_MEMOS
    outputs = {}
    for memo_mb in (0, 64):
        for k, model in enumerate(models):
            hits = sum(m.hits for m in memos.values())
            out = tmp_path / f"labels{k}-{memo_mb}"
            job = LabelJob(
                model=str(model),
                input=str(log),
                output=str(out),
                accelerator="cpu",
                shard_size=16,
                batch_size=4,
                encoder_memo_mb=memo_mb,
            )
            assert run_label(job)["rejected"] == 2
            outputs[k, memo_mb] = parts(out)
            # the second model's batches all come from the memo the first one filled
            assert (sum(m.hits for m in memos.values()) > hits) == (memo_mb > 0 and k == 1)
    assert outputs[0, 0] != outputs[1, 0]  # the heads differ, so do the labels ...
    for k in range(2):
        assert outputs[k, 64] == outputs[k, 0]  # ... but not with the memo, byte for byte
    # as an ensemble through the command: with a memo, the second member reads the first's
    # states of each batch, and the labels are those without it
    for memo_mb in ("0", "64"):
        turn_encoder.clear_shared_caches()
        out = tmp_path / f"ensemble-{memo_mb}"
        label(out, models[0], log, "--ensemble", str(models[1]), "--encoder-memo-mb", memo_mb)
        outputs["ensemble", memo_mb] = parts(out)
        assert (sum(m.hits for m in memos.values()) > 0) == (memo_mb == "64")
    assert outputs["ensemble", "64"] == outputs["ensemble", "0"]


def test_jobs_labeling_an_input_alike_read_and_featurize_it_once(tmp_path, log, monkeypatch):
    # two models with the same features and different heads (a benchmark's arms)
    dm = make_datamodule(tmp_path / "cache")
    models = []
    for k in range(2):
        L.seed_everything(k)
        models.append(export_model(make_module(dm), tmp_path / f"model{k}"))
    reads: list[str] = []
    read = shards.iter_shards
    monkeypatch.setattr(shards, "iter_shards", lambda *a: reads.append(a[0]) or read(*a))
    monkeypatch.setattr(shards, "_BATCH_MEMO", type(shards._BATCH_MEMO)())

    def run(model: Path, out: str, memo: int, **more) -> Path:
        reads.clear()
        job = LabelJob(
            model=str(model),
            input=str(more.pop("input", log)),
            output=str(tmp_path / out),
            accelerator="cpu",
            shard_size=16,
            batch_size=4,
            batch_memo=memo,
            **more,
        )
        assert run_label(job)["rejected"] == 2  # a memo's batches carry their shards' rejects
        return tmp_path / out

    def written(out: Path) -> dict[str, bytes]:
        rejects = {p.name: p.read_bytes() for p in sorted((out / "_rejects").glob("*"))}
        return {**parts(out), **rejects}

    outputs = {}
    for memo in (0, 2):
        for k, model in enumerate(models):
            outputs[k, memo] = written(run(model, f"labels{k}-{memo}", memo))
            # without a memo every job reads the input; with one, the second reads nothing
            assert reads == ([] if memo and k == 1 else [str(log)])
    assert outputs[0, 0] != outputs[1, 0]  # the heads differ, so do the labels ...
    for k in range(2):
        assert outputs[k, 2] == outputs[k, 0]  # ... but not with the memo, byte for byte
    # other token budgets are another featurization; the first one's batches are still kept
    run(models[1], "budget", 2, max_user_tokens=8)
    assert reads == [str(log)]
    run(models[1], "again", 2)
    assert reads == []
    # an input rewritten in place is read again
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(log.read_bytes())
    run(models[0], "copy", 2, input=copy)
    os.utime(copy, ns=(copy.stat().st_atime_ns, copy.stat().st_mtime_ns + 10**9))
    run(models[1], "copy-rewritten", 2, input=copy)
    assert reads == [str(copy)]
    # a job stopped early keeps nothing: the next one reads the input whole
    shards._BATCH_MEMO.clear()
    with pytest.raises(shards.RejectLimitExceeded):
        run(models[0], "stopped", 2, max_reject_fraction=0.0)
    run(models[1], "after-stop", 2)
    assert reads == [str(log)]


def test_an_ensemble_labels_with_its_members_mean_probabilities(
    tmp_path, tiny_model_dir, log, capsys
):
    single = tmp_path / "single"
    label(single, tiny_model_dir, log)
    # a model with itself: the mean of two equal numbers is the number, bit for bit
    twice = tmp_path / "twice"
    manifest = label(twice, tiny_model_dir, log, "--ensemble", str(tiny_model_dir))
    assert manifest["ensemble"] == [str(tiny_model_dir)]
    assert parts(twice) == parts(single)
    # with another model of the same features: each turn's probabilities are the mean
    dm = make_datamodule(tmp_path / "cache")
    L.seed_everything(3)
    other = export_model(make_module(dm), tmp_path / "other")
    label(tmp_path / "other-labels", other, log)
    mixed = tmp_path / "mixed"
    label(mixed, tiny_model_dir, log, "--ensemble", str(other))
    rows = {}
    for out in (single, tmp_path / "other-labels", mixed):
        table = pq.read_table(out, columns=["turn_id", "satisfaction_probs"]).to_pylist()
        rows[out.name] = {r["turn_id"]: torch.tensor(r["satisfaction_probs"]) for r in table}
    assert rows["mixed"].keys() == rows["single"].keys()
    for turn, probs in rows["mixed"].items():
        torch.testing.assert_close(probs, (rows["single"][turn] + rows["other-labels"][turn]) / 2)
    assert any(not torch.equal(rows["mixed"][t], rows["single"][t]) for t in rows["mixed"])
    # resuming that output with one model less would mix two jobs' labels
    capsys.readouterr()
    assert main(label_args(mixed, tiny_model_dir, log)) == 2
    assert "ensemble" in capsys.readouterr().err
    # a model of other features cannot read the same batches: refused before labeling
    other_dm = make_datamodule(tmp_path / "cache2", train="synth:24:7")
    assert other_dm.feature_space != dm.feature_space
    stranger = export_model(make_module(other_dm), tmp_path / "stranger")
    refused = label_args(tmp_path / "refused", tiny_model_dir, log, "--ensemble", str(stranger))
    assert main(refused) == 2
    assert "feature space" in capsys.readouterr().err
    assert not list((tmp_path / "refused").glob("part-*.parquet"))
