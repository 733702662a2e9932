"""The issue's targets read off a run's results (`quality.targets`, `scripts/quality_targets.py`):
each target flips where its figure crosses its bar, and says why where a run cannot measure it."""

from __future__ import annotations

import copy
import json
import math
import statistics

import pytest

from tests.conftest import ROOT, run_python

HEADLINES = ("intent_accuracy", "intent_macro_f1", "slot_span_f1", "boundary_f1")


def _scores(mean: float) -> dict[str, float]:
    return {key: mean for key in (*HEADLINES, "goal_success_macro_f1")}


def _results() -> dict:
    """A full run's results, every target met by a margin of its own."""
    seen = {"intent_accuracy": 0.97, "slot_span_f1": 0.93, "boundary_f1": 0.92}
    return {
        "regime": "full",
        "finished": True,
        "seconds": 41 * 60 + 5,
        "options": {"only": None},
        "sgd": {
            "model/seen": seen,
            "baseline/seen": {"intent_accuracy": 0.93, "slot_span_f1": 0.86, "boundary_f1": 0.84},
            "model/train-test": {"goal_success_macro_f1": 0.95},
            "arms_on_held_out_training": {
                "with_pretraining": _scores(0.970),
                "no_pretraining": _scores(0.960),
            },
            "seed_control_on_held_out_training": {"no_pretraining_next_seed": _scores(0.962)},
            "with_pretraining/train-test": _scores(0.950),
            "no_pretraining/train-test": _scores(0.940),
            "no_pretraining_next_seed/train-test": _scores(0.938),
        },
        "uss": {
            "model": {
                "model": {"accuracy": 0.926, "f1": 0.33},
                "human": {"accuracy": 0.916, "f1": 0.31},
                "model_minus_human": {
                    "accuracy": {"value": 0.010, "ci95": [0.004, 0.016]},
                    "f1": {"value": 0.020, "ci95": [-0.02, 0.06]},
                },
                "half_human_error": {
                    "threshold": 0.6,
                    "coverage": 0.91,
                    "model_error": 0.03,
                    "human_error": 0.06,
                },
                "uss_protocol": {"uar": 0.36, "kappa": 0.28},
            },
            "baseline": {"model": {"f1": 0.13}},
            "ratings_only": {
                "with_pretraining": {"average_precision": 0.19},
                "no_pretraining": {"average_precision": 0.17},
                "with_minus_without": {"average_precision": 0.02},
                "seed_spread": {"average_precision": 0.005},
                "rated_dialogues_per_fold_model": 160,
            },
        },
    }


def _rows(results):
    from quality.targets import targets

    return {row["target"]: row for row in targets(results)}


@pytest.fixture(autouse=True)
def _scripts_importable(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))


def test_every_target_met_with_its_margin():
    rows = _rows(_results())
    assert all(row["met"] for row in rows.values()), rows
    assert rows["sgd_seen_intent_accuracy"]["margin"] == pytest.approx(0.02)
    assert rows["beats_baseline"]["margin"] == pytest.approx(0.04)  # intent, the least lead
    assert rows["uss_protocol"]["margin"] == pytest.approx(0.01)  # UAR's, not kappa's 0.08
    assert rows["half_annotator_error"]["margin"] == pytest.approx(0.41)
    assert rows["run_time"]["margin"] == pytest.approx(45 - (41 + 5 / 60))
    assert rows["run_time"]["figure"] == "41:05"
    # the F1 lead's interval spans zero, the accuracy lead's does not
    assert rows["uss_f1_above_annotator"]["inside_noise"]
    assert not rows["uss_accuracy_above_annotator"]["inside_noise"]


@pytest.mark.parametrize(
    "target, path, bar",
    [
        ("sgd_seen_intent_accuracy", ("sgd", "model/seen", "intent_accuracy"), 0.95),
        ("sgd_seen_slot_f1", ("sgd", "model/seen", "slot_span_f1"), 0.90),
        ("sgd_seen_boundary_f1", ("sgd", "model/seen", "boundary_f1"), 0.90),
        ("goal_success_macro_f1", ("sgd", "model/train-test", "goal_success_macro_f1"), 0.90),
        ("half_annotator_error", ("uss", "model", "half_human_error", "coverage"), 0.5),
        ("uss_protocol", ("uss", "model", "uss_protocol", "uar"), 0.35),
        ("uss_protocol", ("uss", "model", "uss_protocol", "kappa"), 0.20),
        ("uss_f1_above_annotator", ("uss", "model", "model_minus_human", "f1", "value"), 0.0),
        ("beats_baseline", ("uss", "baseline", "model", "f1"), 0.33),  # the model's F1
        ("beats_baseline", ("sgd", "baseline/seen", "slot_span_f1"), 0.93),
        ("run_time", ("seconds",), 45 * 60),
        (
            "stage1_helps_on_ratings",
            ("uss", "ratings_only", "with_minus_without", "average_precision"),
            0.005,  # the seed's spread
        ),
    ],
)
def test_a_target_flips_where_its_figure_crosses_its_bar(target, path, bar):
    # the baseline and the run's time meet their targets below the bar, the others above
    below_meets = path[1:2] in (("baseline",), ("baseline/seen",)) or path == ("seconds",)
    step = 60 if path == ("seconds",) else 0.001
    for offset, met in ((step, not below_meets), (-step, below_meets)):
        results = _results()
        *parents, leaf = path
        holder = results
        for key in parents:
            holder = holder[key]
        holder[leaf] = bar + offset
        assert _rows(results)[target]["met"] is met, (offset, _rows(results)[target])


def test_a_bar_that_is_a_floor_is_met_on_it_and_a_lead_of_zero_is_not():
    results = _results()
    results["sgd"]["model/seen"]["intent_accuracy"] = 0.95
    results["uss"]["model"]["model_minus_human"]["accuracy"]["value"] = 0.0
    rows = _rows(results)
    assert rows["sgd_seen_intent_accuracy"]["met"] is True
    assert rows["uss_accuracy_above_annotator"]["met"] is False


def test_stage1_must_lead_by_more_than_a_seed_moves_on_both_logs():
    results = _results()
    rows = _rows(results)
    # held-out: +0.010 against a seed's 0.002; the test: +0.010 against 0.002
    assert rows["stage1_helps"]["met"] and rows["stage1_helps"]["margin"] == pytest.approx(0.008)
    # a lead on the held-out dialogues that a second seed matches is no measured help
    results["sgd"]["seed_control_on_held_out_training"]["no_pretraining_next_seed"] = _scores(0.971)
    assert _rows(results)["stage1_helps"]["met"] is False
    # nor is a lead on the held-out dialogues alone
    results = _results()
    results["sgd"]["with_pretraining/train-test"] = _scores(0.939)
    assert _rows(results)["stage1_helps"]["met"] is False
    # without the second seed there is no spread to measure against
    results = _results()
    del results["sgd"]["seed_control_on_held_out_training"]
    row = _rows(results)["stage1_helps"]
    assert row["met"] is None and "--second-seed" in row["why"]


def test_stage1_on_ratings_is_measured_only_with_its_seed_control():
    row = _rows(_results())["stage1_helps_on_ratings"]
    assert row["margin"] == pytest.approx(0.015)
    assert row["figure"].startswith("AP 0.190 vs 0.170: +0.0200 (a seed moves 0.0050)")
    assert row["figure"].endswith("160 rated dialogues per fold model")
    # a second stage 1: the two stage 1s' mean against the two seeds', beside the verdict
    two = _results()
    ratings = two["uss"]["ratings_only"]
    ratings["with_pretraining_2"] = {"average_precision": 0.16}
    ratings["stage1_mean_minus_fresh_mean"] = {"average_precision": -0.003}
    row = _rows(two)["stage1_helps_on_ratings"]
    assert row["figure"].endswith("per fold model; 2 stage 1s' mean vs the 2 seeds' mean -0.0030")
    assert row["margin"] == pytest.approx(0.015)  # judged as before
    # session 52's runs trained no next seed beside the fresh model
    older = _results()
    del older["uss"]["ratings_only"]["seed_spread"]
    row = _rows(older)["stage1_helps_on_ratings"]
    assert row["met"] is None and "no seed control" in row["why"]
    plain = _results()
    del plain["uss"]["ratings_only"]
    assert "--uss-ratings-only" in _rows(plain)["stage1_helps_on_ratings"]["why"]


def test_what_a_run_cannot_measure_is_not_measured_and_says_why():
    sgd_only = _results()
    del sgd_only["uss"]
    rows = _rows(sgd_only)
    assert rows["sgd_seen_slot_f1"]["met"] is True
    for key in ("uss_f1_above_annotator", "uss_protocol", "half_annotator_error"):
        assert rows[key]["met"] is None and rows[key]["why"] == "no USS half"
    assert rows["beats_baseline"]["met"] is None
    # `--only ratings`: the ratings' models alone, so nothing of the model's to score
    ratings_alone = {"uss": {"ratings_only": _results()["uss"]["ratings_only"]}}
    rows = _rows(ratings_alone)
    for key in ("uss_accuracy_above_annotator", "uss_protocol", "half_annotator_error"):
        assert rows[key]["met"] is None and "--only ratings" in rows[key]["why"]
    assert rows["beats_baseline"]["why"] == "needs both halves"
    assert rows["stage1_helps_on_ratings"]["met"] is not None
    rerun = copy.deepcopy(_results())
    rerun["options"]["only"] = "uss"
    assert _rows(rerun)["run_time"]["met"] is None
    smoke = _results() | {"regime": "smoke"}
    assert "no time target" in _rows(smoke)["run_time"]["why"]
    quick = _results() | {"regime": "quick"}
    assert _rows(quick)["run_time"]["met"] is False  # 41 minutes is over the quick run's 10
    no_test = _results()
    del no_test["sgd"]["model/train-test"]
    assert _rows(no_test)["goal_success_macro_f1"]["met"] is None
    # a half that wrote part of its figures (another version's results, a stub): every
    # target it cannot read goes unmeasured, naming what is missing, and nothing raises
    partial = _rows({"sgd": {"model_arm": "no_pretraining"}, "regime": "smoke"})
    assert all(row["met"] is None for row in partial.values())
    assert "arms_on_held_out_training" in partial["stage1_helps"]["why"]


def test_the_command_reads_several_runs_and_counts_them(tmp_path):
    met, missed = _results(), _results()
    missed["uss"]["model"]["model_minus_human"]["f1"]["value"] = -0.004
    for name, results in (("a", met), ("b", missed)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(results))
    script = str(ROOT / "scripts" / "quality_targets.py")
    paths = [str(tmp_path / name / "results.json") for name in "ab"]
    result = run_python([script, *paths], tmp_path)
    assert result.returncode == 0, result.stderr
    lines = {line.split(" | ")[0]: line for line in result.stdout.splitlines()}
    f1 = lines["| USS dissatisfaction F1 above the single annotator's"]
    # the mean margin over the two runs, with its t interval on one degree of freedom
    half = 12.7062 * statistics.stdev([0.02, -0.004]) / math.sqrt(2)
    interval = f"[{0.008 - half:+.4f}, {0.008 + half:+.4f}]"
    assert f1.endswith(f"| +0.0200 | -0.0040 * | 1 of 2 | +0.0080 {interval} |"), f1
    assert (
        "| 2 of 2 | +0.0300 [+0.0300, +0.0300] |" in lines["| SGD dev seen: slot span F1 >= 0.90"]
    )
    assert "only labels, over" not in result.stdout  # neither run measured the mean lead
    as_json = json.loads(run_python([script, "--json", *paths], tmp_path).stdout)
    assert [row["met"] for row in as_json["runs"][paths[1]]].count(False) == 1
    # the pooled rows say what the table says, for a program (t rounded to 4 places above)
    f1_pooled = next(row for row in as_json["pooled"] if row["target"] == "uss_f1_above_annotator")
    assert (f1_pooled["met"], f1_pooled["measured"]) == (1, 2)
    assert f1_pooled["mean_margin"]["mean"] == pytest.approx(0.008)
    assert f1_pooled["mean_margin"]["ci95"] == pytest.approx([0.008 - half, 0.008 + half], rel=1e-4)
    assert as_json["stage1_on_ratings"] == {
        "per_run": dict.fromkeys(paths),
        "pooled": None,
        "by_stage1": {},
    }
    # one run: the table with each figure
    single = run_python([script, paths[0]], tmp_path)
    assert "12 of 12 measured targets met." in single.stdout
    # a file that is no run is refused, naming it
    (tmp_path / "other.json").write_text(json.dumps({"command": "x"}))
    refused = run_python([script, str(tmp_path / "other.json")], tmp_path)
    assert refused.returncode == 2 and "other.json: not a benchmark_quality" in refused.stderr


def test_stage_1s_lead_on_ratings_is_pooled_over_the_runs_that_measured_it(tmp_path):
    script = str(ROOT / "scripts" / "quality_targets.py")
    paths = []
    for name, lead in (("a", 0.02), ("b", 0.01), ("c", 0.015), ("none", None)):
        results = _results()
        if lead is not None:
            ratings = results["uss"]["ratings_only"]
            ratings["stage1_mean_minus_fresh_mean"] = {"average_precision": lead}
        (tmp_path / name).mkdir()
        paths.append(tmp_path / name / "results.json")
        paths[-1].write_text(json.dumps(results))
    three = run_python([script, *map(str, paths)], tmp_path)
    assert three.returncode == 0, three.stderr
    pooled = three.stdout.splitlines()[-1]
    # the run that did not measure it is left out: three leads, t on two degrees of freedom
    half = 4.3027 * statistics.stdev([0.02, 0.01, 0.015]) / math.sqrt(3)
    assert "over the 3 runs that measured it" in pooled and "+0.0200, +0.0100, +0.0150" in pooled
    assert f"mean +0.0150 [{0.015 - half:+.4f}, {0.015 + half:+.4f}], above zero." in pooled
    # two of them: the same mean lead is too wide an interval to call
    two = run_python([script, *map(str, paths[:2])], tmp_path)
    assert two.stdout.splitlines()[-1].endswith("not shown above zero.")
    as_json = json.loads(run_python([script, "--json", *map(str, paths)], tmp_path).stdout)
    leads = as_json["stage1_on_ratings"]
    assert list(leads["per_run"].values()) == [0.02, 0.01, 0.015, None]
    assert leads["pooled"]["runs"] == 3
    assert leads["pooled"]["ci95"] == pytest.approx([0.015 - half, 0.015 + half], rel=1e-4)


def _draw_from_stage1s(stage1_ap: dict[str, float]) -> dict:
    """A ratings-only draw whose fresh arms read AP 0.17 and 0.19 (mean 0.18) and whose
    stage-1 arms, one per named checkpoint in order, read `stage1_ap`'s."""
    from quality.ratings import from_stage1, ratings_only_arms

    results = _results()
    ratings = results["uss"]["ratings_only"]
    ratings["no_pretraining"]["average_precision"] = 0.17
    ratings["no_pretraining_next_seed"] = {"average_precision": 0.19}
    arms = [arm for arm in ratings_only_arms(len(stage1_ap)) if from_stage1(arm)]
    for arm, ap in zip(arms, stage1_ap.values(), strict=True):
        ratings.setdefault(arm, {})["average_precision"] = ap
    results["options"]["uss_stage1"] = list(stage1_ap)
    return results


def test_each_stage_1_alone_is_pooled_by_the_checkpoint_it_started_from(tmp_path):
    from quality.targets import stage1_leads_by_checkpoint

    script = str(ROOT / "scripts" / "quality_targets.py")
    paths = []
    # the fresh arms' mean is 0.18 in every run; stage 1 A leads by 0.02, 0.015, 0.025 and
    # stage 1 B by 0.00, -0.01, 0.01
    for name, a, b in (("r1", 0.20, 0.18), ("r2", 0.195, 0.17), ("r3", 0.205, 0.19)):
        results = _draw_from_stage1s({"/ckpt/a": a, "/ckpt/b": b})
        ratings = results["uss"]["ratings_only"]
        ratings["stage1_mean_minus_fresh_mean"] = {"average_precision": (a + b) / 2 - 0.18}
        (tmp_path / name).mkdir()
        paths.append(tmp_path / name / "results.json")
        paths[-1].write_text(json.dumps(results))
    leads = stage1_leads_by_checkpoint(json.loads(paths[0].read_text()))
    assert leads == pytest.approx({"/ckpt/a": 0.02, "/ckpt/b": 0.0})
    # the SGD half rerun after the USS half: the USS half's own options name its stage 1s
    rerun = json.loads(paths[2].read_text())
    rerun["uss"]["provenance"] = {"options": dict(rerun["options"])}
    rerun["options"]["uss_stage1"] = None
    assert stage1_leads_by_checkpoint(rerun) == pytest.approx({"/ckpt/a": 0.025, "/ckpt/b": 0.01})
    # no checkpoint named: the SGD half's stage 1 in the run's own folder
    own = _results()
    own["uss"]["ratings_only"]["no_pretraining_next_seed"] = {"average_precision": 0.15}
    own["options"]["out"] = "/runs/x"
    assert stage1_leads_by_checkpoint(own) == pytest.approx(
        {"/runs/x/sgd/pretrain/best.ckpt": 0.03}
    )
    own["options"]["uss_stage1"] = "/ckpt/a"  # session 54's runs: one path, not a list
    assert stage1_leads_by_checkpoint(own) == pytest.approx({"/ckpt/a": 0.03})
    assert stage1_leads_by_checkpoint(_results()) == {}  # no next seed: no fresh mean
    out = run_python([script, *map(str, paths)], tmp_path)
    assert out.returncode == 0, out.stderr
    half_a = 4.3027 * statistics.stdev([0.02, 0.015, 0.025]) / math.sqrt(3)
    assert (
        f"- /ckpt/a, 3 runs: +0.0200 [{0.02 - half_a:+.4f}, {0.02 + half_a:+.4f}], above zero"
        in out.stdout
    )
    assert "- /ckpt/b, 3 runs: +0.0000 [" in out.stdout
    assert out.stdout.rstrip().endswith("not shown above zero")  # B's interval spans zero
    as_json = json.loads(run_python([script, "--json", *map(str, paths)], tmp_path).stdout)
    each = as_json["stage1_on_ratings"]["by_stage1"]
    assert list(each) == ["/ckpt/a", "/ckpt/b"]
    assert list(each["/ckpt/b"]["per_run"].values()) == pytest.approx([0.0, -0.01, 0.01])
    assert each["/ckpt/a"]["pooled"]["ci95"] == pytest.approx(
        [0.02 - half_a, 0.02 + half_a], rel=1e-4
    )


def test_a_checkpoint_trained_again_under_its_path_pools_apart(tmp_path):
    from quality.targets import stage1_leads_by_checkpoint

    script = str(ROOT / "scripts" / "quality_targets.py")
    paths = []
    # three draws from /ckpt/a as it was, two from the file trained again under its path
    for name, ap, digest in (
        ("r1", 0.20, "1" * 32),
        ("r2", 0.19, "1" * 32),
        ("r3", 0.21, "1" * 32),
        ("r4", 0.17, "2" * 32),
        ("r5", 0.16, "2" * 32),
    ):
        results = _draw_from_stage1s({"/ckpt/a": ap})
        results["uss"]["ratings_only"]["stage1_digests"] = {"/ckpt/a": digest}
        (tmp_path / name).mkdir()
        paths.append(tmp_path / name / "results.json")
        paths[-1].write_text(json.dumps(results))
    first = json.loads(paths[0].read_text())
    assert stage1_leads_by_checkpoint(first) == pytest.approx({"/ckpt/a (111111111111)": 0.02})
    as_json = json.loads(run_python([script, "--json", *map(str, paths)], tmp_path).stdout)
    each = as_json["stage1_on_ratings"]["by_stage1"]
    assert list(each) == ["/ckpt/a (111111111111)", "/ckpt/a (222222222222)"]
    assert each["/ckpt/a (111111111111)"]["pooled"]["runs"] == 3
    assert list(each["/ckpt/a (222222222222)"]["per_run"].values()) == pytest.approx([-0.01, -0.02])
