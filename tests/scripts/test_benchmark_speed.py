"""The window, training, train-jobs, optimizer, recalibrate, featurize, stage-1 cycle, scale
and checkpoint benchmarks on tiny inputs: they run, count what they measured, and their ratios are
the ratios of their own figures."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
import torch

from tests.conftest import ROOT, run_python

ONE_THREAD = ("--threads", "1")
"""The scripts' default is the 2 threads they are measured with; beside the other test worker
a second thread only waits (tests/conftest.py)."""


def _run(tmp_path, script: str, *args: str) -> dict:
    result = run_python([str(ROOT / "scripts" / script), "--out", str(tmp_path), *args], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    assert printed == json.loads((tmp_path / "result.json").read_text())
    return printed


@pytest.mark.slow
def test_window_benchmark_grows_the_window_with_the_history(tmp_path, shared_data):
    out = _run(
        tmp_path,
        "benchmark_window.py",
        *ONE_THREAD,
        "--log",
        str(shared_data / "sgd" / "dev"),
        "--per-bucket",
        "2",
    )
    assert out["dialogues"] == sum(b["dialogues"] for b in out["buckets"]) == 8
    assert out["turns"] == sum(b["turns"] for b in out["buckets"])
    tokens = [b["window_tokens_per_turn"] for b in out["buckets"]]
    assert tokens == sorted(tokens) and tokens[-1] > tokens[0]  # longer dialogues, longer windows
    assert out["speedup"] == pytest.approx(
        out["label_turns_per_s"] / out["window_turns_per_s"], rel=0.05, abs=0.01
    )


@pytest.mark.slow
def test_training_benchmark_counts_real_tokens_and_padding(tmp_path, shared_data):
    out = _run(
        tmp_path,
        "benchmark_training.py",
        *ONE_THREAD,
        "--log",
        str(shared_data / "sgd" / "dev"),
        "--steps",
        "2",
        "--batch-size",
        "2",
    )
    assert out["steps"] == 2 and out["real_tokens"] > 0
    assert out["ratio"] == pytest.approx(
        out["fit_tokens_per_s"] / out["bare_tokens_per_s"], rel=0.01
    )
    assert 0 <= out["padding_share_chunked"] < 0.10 < out["padding_share_whole_batch"]


@pytest.mark.slow
def test_slot_tagger_benchmark_times_both_ways_on_the_same_batches(tmp_path, shared_data):
    out = _run(
        tmp_path,
        "benchmark_slot_tagger.py",
        *ONE_THREAD,
        "--log",
        str(shared_data / "sgd" / "dev"),
        "--batches",
        "2",
        "--batch-size",
        "2",
    )
    assert out["batches"] == 2 and out["user_tokens"] > 0
    assert out["speedup"] == pytest.approx(out["packed_seconds"] / out["grouped_seconds"], rel=0.01)
    assert out["largest_output_difference"] < 1e-5  # the same outputs, to float rounding
    assert 0 <= out["padding_share_grouped"] <= out["padding_share_whole_batch"] < 1


@pytest.mark.slow
def test_train_jobs_benchmark_trains_every_model_both_ways(tmp_path, shared_data):
    out = _run(
        tmp_path,
        "benchmark_train_jobs.py",
        *ONE_THREAD,
        *("--log", str(shared_data / "sgd" / "dev")),
        *("--dialogues", "8", "--models", "2", "--epochs", "1", "--rounds", "1"),
        *("--label-logs", "2"),
    )
    assert out["training_dialogues"] == 8 and out["held_out_dialogues"] == 2
    assert out["models_per_way"] == 2
    for way in ("one_after_another", "side_by_side"):
        checkpoints = sorted(tmp_path.glob(f"{way}/round0/seed*/best.ckpt"))
        assert len(checkpoints) == 2, way
    assert out["speedup"] == pytest.approx(
        out["one_after_another_seconds"] / out["side_by_side_seconds"], rel=0.01
    )
    # the last round's models labeled and scored both ways (2 models, 2 logs)
    assert out["label_calls_per_way"] == 2 * 2
    assert out["label_speedup"] == pytest.approx(
        out["label_one_after_another_seconds"] / out["label_side_by_side_seconds"], rel=0.01
    )
    for way in ("one_after_another", "side_by_side"):
        assert len(list(tmp_path.glob(f"labels/{way}/labels-s*-*"))) == 4, way


@pytest.mark.slow
def test_optimizer_benchmark_trains_the_model_fused_and_with_the_loop(tmp_path, shared_data):
    out = _run(
        tmp_path,
        "benchmark_optimizer.py",
        *ONE_THREAD,
        *("--log", str(shared_data / "sgd" / "dev")),
        *("--dialogues", "8", "--epochs", "1", "--rounds", "1"),
    )
    assert out["training_dialogues"] == 8 and out["held_out_dialogues"] == 2
    assert out["fused_over_loop"] == pytest.approx(
        out["fused_seconds"] / out["loop_seconds"], rel=0.01
    )
    for way, flag in (("fused", True), ("loop", None)):
        checkpoint = torch.load(
            tmp_path / way / "round0" / "best.ckpt", map_location="cpu", weights_only=False
        )
        groups = checkpoint["optimizer_states"][0]["param_groups"]
        assert {group["fused"] for group in groups} == {flag}, way
        assert out["best_epoch_and_val_loss"][way][0] == checkpoint["epoch"]
    # the same update rounded otherwise: the models stay close after one epoch
    assert 0.0 <= out["max_weight_difference"] < 0.05


@pytest.mark.slow
def test_recalibrate_benchmark_gives_the_labels_of_labeling_again(tmp_path, shared_data):
    blocks = (shared_data / "uss" / "CCPE.txt").read_text().strip().split("\n\n")[:16]
    (tmp_path / "ccpe-16.txt").write_text("\n\n".join(blocks) + "\n")
    out = _run(
        tmp_path,
        "benchmark_recalibrate.py",
        *ONE_THREAD,
        *("--log", str(shared_data / "uss" / "SGD.txt")),
        *("--label-log", str(tmp_path / "ccpe-16.txt")),
        *("--dialogues", "12", "--epochs", "1", "--rounds", "1"),
    )
    assert out["training_dialogues"] == 12 and out["same_bytes"] is True
    labels = pq.read_table(tmp_path / "recalibrate").to_pylist()
    assert out["turns"] == len(labels) > 16 and len({r["dialogue_id"] for r in labels}) == 16
    # the calibration chosen on the file's ratings is the one applied, turn by turn
    cutoff = out["cutoff"] or 0.5
    assert all(r["dissatisfied"] == (sum(r["satisfaction_probs"][:2]) > cutoff) for r in labels)
    assert 0 <= out["turns_moved_by_the_calibration"] <= out["turns"]
    # the ratio is printed to 4 decimals, and at about 0.0026 that rounding alone is over 1%
    assert out["recalibrate_over_label"] == pytest.approx(
        out["recalibrate_seconds"] / out["label_seconds"], rel=0.01, abs=5e-5
    )


def test_featurize_benchmark_gives_the_same_records_both_ways(tmp_path, shared_data):
    out = _run(
        tmp_path,
        "benchmark_featurize.py",
        *("--log", str(shared_data / "sgd" / "dev")),
        *("--dialogues", "30", "--rounds", "2"),
    )
    assert out["dialogues"] == 30 and out["turns"] > 30 and out["same_records"] is True
    assert out["direct_over_transformers"] == pytest.approx(
        out["direct_seconds"] / out["transformers_seconds"], rel=0.01
    )
    assert out["dialogues_per_second_direct"] == pytest.approx(
        2 * 30 / out["direct_seconds"], rel=0.01
    )


@pytest.mark.slow
def test_stage1_cycle_benchmark_encodes_fewer_turns_when_the_swaps_repeat(tmp_path, sgd_file):
    out = _run(
        tmp_path,
        "benchmark_stage1_cycle.py",
        *ONE_THREAD,
        # batches of 16: with a batch or two, every epoch would hold the same batches anyway
        *("--log", str(sgd_file), "--dialogues", "40", "--epochs", "3", "--cycle", "1"),
    )
    assert out["training_dialogues"] == 40 and out["held_out_dialogues"] == 13
    plain, cycled = out["every_epoch"], out["cycled"]
    assert (plain["order_cycle"], cycled["order_cycle"]) == (0, 1)
    # three epochs of new swaps against one epoch's, read from the cache twice more
    assert 0 < cycled["turns_encoded"] < plain["turns_encoded"]
    assert plain["val_loss"] > 0 and cycled["val_loss"] > 0
    assert out["speedup"] == pytest.approx(plain["seconds"] / cycled["seconds"], rel=0.01)
    for way in ("every_epoch", "cycled"):
        settings = json.loads((tmp_path / way / "settings.json").read_text())
        assert settings["corrupt"] and settings.get("order_cycle", 0) == out[way]["order_cycle"]


@pytest.mark.slow
def test_scale_benchmark_labels_every_dialogue_of_each_size(tmp_path):
    out = _run(tmp_path, "benchmark_scale.py", "--sizes", "10", "20", "40")
    assert [r["dialogues"] for r in out["runs"]] == [10, 20, 40]
    assert all(r["turns"] > r["dialogues"] and r["peak_rss_mb"] > 0 for r in out["runs"])
    small, middle, large = out["runs"]
    assert out["memory_ratio"] == pytest.approx(
        large["peak_rss_mb"] / middle["peak_rss_mb"], abs=2e-3
    )
    assert out["time_ratio"] == pytest.approx(
        large["seconds_per_1000"] / small["seconds_per_1000"], rel=0.01
    )


def test_window_holds_the_history_the_turn_and_the_next_turn(tmp_path, monkeypatch):
    """What the published baselines encode per turn (and what labelgen is compared with): the
    dialogue so far, cut from the left, then the user's reaction in the next turn."""
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    from benchmark_window import window_batches

    from labelgen.data.readers import read_log
    from labelgen.data.synth import synth_to_file
    from labelgen.data.tokenization import load_tokenizer
    from tests.models.conftest import make_datamodule, make_module

    module = make_module(make_datamodule(tmp_path))
    synth_to_file(tmp_path / "log.jsonl", 3, seed=2)
    dialogues = list(read_log(str(tmp_path / "log.jsonl")))
    [batch] = window_batches(module, dialogues, batch_size=8)
    turns = [t for d in dialogues for t in d.turns]
    assert batch["input_ids"].shape[0] == len(turns)
    tokenizer = load_tokenizer(module.hparams["tokenizer"])
    assert batch["input_ids"].shape[1] <= module.encoder.model.config.max_position_embeddings

    def normalized(text: str) -> str:  # as the tokenizer gives it back
        return tokenizer.decode(tokenizer(text)["input_ids"][1:-1])

    row = 0
    for d in dialogues:
        texts = [normalized(f"{t.user_text} {t.system_text}") for t in d.turns]
        for i, turn in enumerate(texts):
            window = tokenizer.decode(batch["input_ids"][row], skip_special_tokens=True)
            row += 1
            if i + 1 < len(texts):  # the turn, then the reaction after it, kept whole
                assert window.endswith(f"{turn} {texts[i + 1]}")
            else:  # the last turn, then "." for the reaction it never got
                assert window.endswith(f"{turn}.")
            assert window.startswith(texts[0])  # short dialogues: the whole history


@pytest.mark.slow
def test_checkpoint_benchmark_names_the_frozen_encoder_and_loads_it_back(tmp_path):
    out = _run(tmp_path, "benchmark_checkpoints.py", *ONE_THREAD, "--rounds", "1")
    assert out["same_weights"]  # every load gave the trained weights, bit for bit
    size = out["bytes"]
    assert size["copied"] - size["named"] > 80e6  # MiniLM's 90 MB of weights, not copied
    assert out["named_over_copied"]["bytes"] == pytest.approx(size["named"] / size["copied"], 0.01)
    medians = out["median_seconds"]
    for step in ("save", "load", "first_load"):
        ratio = medians[step]["named"] / medians[step]["copied"]
        assert out["named_over_copied"][step] == pytest.approx(ratio, rel=0.05, abs=0.01)
    hashing = out["fingerprint_median_seconds"]
    assert set(hashing) == {"xxh3_128", "blake2b"} and all(s > 0 for s in hashing.values())
    ratio = hashing["xxh3_128"] / hashing["blake2b"]
    assert out["fingerprint_over_blake2b"] == pytest.approx(ratio, rel=0.05, abs=0.01)
