from __future__ import annotations

import json

import pytest

from labelgen.evaluation.evaluate import GATED_TASKS, evaluate, human_baseline, render
from labelgen.evaluation.thresholds import read_calibration
from tests.evaluation.conftest import (
    base_rows,
    corrupt,
    gold_rows,
    reference_rows,
    write_predictions,
)

FAST = {"n_resamples": 100, "make_plots": False}
PRIMARY = {
    "intent": "accuracy",
    "slots": "f1",
    "segment": "boundary_f1",
    "goal_success": "macro_f1",
    "satisfaction": "accuracy",
    "dissatisfaction": "f1",
}


def _value(section, side, metric):
    return section[side][metric]["value"]


def test_perfect_predictions_score_one_and_the_noisy_human_less(
    tmp_path, synth_log, synth_dialogues
):
    preds = write_predictions(tmp_path / "preds", gold_rows(synth_dialogues))
    out = tmp_path / "eval"
    report = evaluate(preds, synth_log, out_dir=out, n_resamples=100)
    tasks = report["tasks"]
    for task, metric in PRIMARY.items():
        section = tasks[task]
        assert section["gold"] == "leave_one_out_consensus"
        assert section["missing_predictions"] == 0
        assert all(
            m["value"] == 1.0
            for name, m in section["model"].items()
            if name not in ("pk", "window_diff")
        ), task
        assert _value(section, "human", metric) < 1.0, task
    assert _value(tasks["segment"], "model", "pk") == 0.0
    assert _value(tasks["segment"], "human", "pk") > 0.0
    assert report["headline"]["model_beats_human"] == {"accuracy": True, "f1": True}
    # ... by more than resampling noise: the paired difference's interval lies above 0
    assert report["headline"]["beyond_resampling_noise"] == {"accuracy": True, "f1": True}
    lead = tasks["dissatisfaction"]["model_minus_human"]["f1"]
    assert lead["value"] == pytest.approx(1 - _value(tasks["dissatisfaction"], "human", "f1"))
    assert 0 < lead["ci95"][0] <= lead["value"] <= lead["ci95"][1]
    assert report["reference"]["rejects"] == 1  # the broken record, counted and skipped
    assert report["predictions"]["unpredicted_turns"] == 0
    # written files: the report, the labeler's thresholds, and the figures
    assert json.loads((out / "metrics.json").read_text()) == report
    thresholds = read_calibration(out / "calibration.json")
    assert set(thresholds) == set(GATED_TASKS)
    assert all(t == 0.9 for t in thresholds.values())  # every label right: keep them all
    assert report["plots"] and all((out / f"{name}.png").is_file() for name in report["plots"])
    assert {"intent_confusion", "dissatisfaction_precision_coverage"} <= set(report["plots"])


def test_reference_labels_as_predictions_score_one_against_the_reference(
    tmp_path, synth_log, synth_dialogues
):
    preds = write_predictions(tmp_path / "preds", reference_rows(synth_dialogues))
    tasks = evaluate(preds, synth_log, out_dir=tmp_path / "eval", **FAST)["tasks"]
    for task, metric in PRIMARY.items():
        assert _value(tasks[task], "model_vs_reference", metric) == 1.0, task
        # the annotators' leave-one-out consensus is noisy, so even the truth misses it
        assert _value(tasks[task], "model", metric) < 1.0, task
    for flag in ("barge_in", "rephrase", "rejection", "explicit_feedback"):
        assert tasks[flag]["gold"] == "reference" and "human" not in tasks[flag]
        assert _value(tasks[flag], "model", "accuracy") == 1.0


def test_corrupted_predictions_score_lower_by_what_was_corrupted(
    tmp_path, synth_log, synth_dialogues
):
    rows = gold_rows(synth_dialogues)
    hit = corrupt(rows, 0.5, "intent", lambda _: "NotAnIntent")
    corrupt(rows, 0.25, "satisfaction", lambda r: 5 if r < 3 else 1)
    corrupt(rows, 0.25, "segment", lambda t: "I" if t == "B" else "B")
    for key in list(rows)[::4]:
        rows[key]["slots"] = []
    preds = write_predictions(tmp_path / "preds", rows, shards=3)
    report = evaluate(preds, synth_log, out_dir=tmp_path / "eval", **FAST)
    intent = report["tasks"]["intent"]
    n = intent["items"]
    assert _value(intent, "model", "accuracy") == pytest.approx(1 - len(hit) / n)
    # Wrong labels carry confidence 0.3, right ones 0.9: the model beats the human only on
    # what it is sure of, so the threshold is 0.9 and keeps the uncorrupted half.
    sweep = intent["thresholds"]
    assert sweep["human_precision"] > 1 - len(hit) / n
    assert sweep["threshold_at_human"] == 0.9
    assert sweep["coverage_at_human"] == pytest.approx(1 - len(hit) / n)
    assert read_calibration(tmp_path / "eval" / "calibration.json")["intent"] == 0.9
    tasks = report["tasks"]
    assert _value(tasks["satisfaction"], "model", "accuracy") < 0.8
    assert _value(tasks["segment"], "model", "boundary_f1") < 1.0
    assert _value(tasks["segment"], "model", "pk") > 0.0
    assert _value(tasks["slots"], "model", "recall") < 1.0
    assert _value(tasks["slots"], "model", "precision") == 1.0


@pytest.mark.parametrize("absent", ["dropped", "null"])
def test_tasks_without_model_labels_are_left_out(tmp_path, synth_log, synth_dialogues, absent):
    # The labeler writes every column, null throughout where the model has no such head;
    # other writers may leave the column out.
    columns = (
        "satisfaction",
        "satisfaction_probs",
        "satisfaction_confidence",
        "goal_id",
        "goal_success",
        "goal_success_confidence",
        "barge_in",
        "rephrase",
        "rejection",
        "explicit_feedback",
    )
    rows = gold_rows(synth_dialogues)
    if absent == "null":
        rows = {k: {c: v for c, v in r.items() if c not in columns} for k, r in rows.items()}
    drop = columns if absent == "dropped" else ()
    preds = write_predictions(tmp_path / "preds", rows, drop=drop)
    report = evaluate(preds, synth_log, out_dir=tmp_path / "eval", **FAST)
    assert set(report["tasks"]) == {"intent", "slots", "segment"}
    assert report["skipped"] == {}
    assert "headline" not in report
    assert set(read_calibration(tmp_path / "eval" / "calibration.json")) == {
        "intent",
        "slots",
        "segment",
    }


def test_unpredicted_turns_are_counted_and_dropped_for_model_and_human(
    tmp_path, synth_log, synth_dialogues
):
    rows = gold_rows(synth_dialogues)
    full = evaluate(
        write_predictions(tmp_path / "full", rows), synth_log, out_dir=tmp_path / "e1", **FAST
    )
    missing = sorted(rows)[:40]
    for key in missing:
        del rows[key]
    report = evaluate(
        write_predictions(tmp_path / "preds", rows), synth_log, out_dir=tmp_path / "e2", **FAST
    )
    assert report["predictions"]["unpredicted_turns"] == 40
    intent = report["tasks"]["intent"]
    assert intent["missing_predictions"] == 40
    assert intent["items"] == full["tasks"]["intent"]["items"] - 40
    assert intent["human"]["accuracy"]["n"] == intent["items"]
    # a dialogue with an unpredicted turn has no predicted segmentation
    assert report["tasks"]["segment"]["missing_predictions"] >= 1


def test_duplicate_and_mismatched_rows_are_reported(tmp_path, synth_log, synth_dialogues):
    rows = gold_rows(synth_dialogues)
    first = sorted(rows)[0]
    rows[first]["turn_id"] = "someone-else"
    preds = write_predictions(tmp_path / "preds", rows)
    extra = base_rows(synth_dialogues[:1])
    write_predictions(tmp_path / "extra", extra, shards=1)
    (tmp_path / "extra" / "part-00000.parquet").rename(preds / "part-00009.parquet")
    info = evaluate(preds, synth_log, out_dir=tmp_path / "eval", **FAST)["predictions"]
    assert info["shards"] == 3
    assert info["duplicate_rows"] == len(extra)
    assert info["turn_id_mismatches"] == 1


def _plain_log(tmp_path, dialogues):
    """The dialogues without their annotators: scored against the reference labels alone."""
    log = tmp_path / "plain.jsonl"
    lines = []
    for d in dialogues:
        record = d.to_json_dict()
        record.pop("annotations", None)
        for turn in record["turns"]:
            turn.pop("annotations", None)
        for goal in record["goals"]:
            goal.pop("annotations", None)
        lines.append(json.dumps(record))
    log.write_text("\n".join(lines) + "\n")
    return log


def test_a_log_without_annotators_is_scored_against_its_reference_labels(tmp_path, synth_dialogues):
    log = _plain_log(tmp_path, synth_dialogues)
    preds = write_predictions(tmp_path / "preds", reference_rows(synth_dialogues))
    report = evaluate(preds, log, out_dir=tmp_path / "eval", **FAST)
    for task, metric in PRIMARY.items():
        section = report["tasks"][task]
        assert section["gold"] == "reference" and "human" not in section
        assert _value(section, "model", metric) == 1.0
    assert "headline" not in report
    assert human_baseline(log)["tasks"] == {}


def test_a_goal_ended_a_turn_early_is_scored_on_its_outcome(tmp_path, synth_dialogues):
    """A reference goal whose last turn the model put in no goal is read on its latest turn
    in a predicted goal; the segmentation error stays boundary F1's, and the figure read on
    last turns only is reported beside it."""
    log = _plain_log(tmp_path, synth_dialogues)
    rows = reference_rows(synth_dialogues)
    goals = [
        [(d.dialogue_id, t) for t, turn in enumerate(d.turns) if turn.goal_id == g.goal_id]
        for d in synth_dialogues
        for g in d.goals or []
        if g.success is not None
    ]
    long = [turns for turns in goals if len(turns) >= 2]
    cut, flipped, lost = long[::3], long[1::9], long[2::9]
    for turns in cut + flipped:  # the model ends each of these goals one turn early
        rows[turns[-1]].update(goal_id=None, goal_success=None, segment="O")
    for turns in flipped:  # ... and says the opposite outcome on the turns it kept
        for key in turns[:-1]:
            rows[key]["goal_success"] = not rows[key]["goal_success"]
    for turns in lost:  # no turn of these in any predicted goal: "no goal", wrong
        for key in turns:
            rows[key].update(goal_id=None, goal_success=None, segment="O")
    preds = write_predictions(tmp_path / "preds", rows)
    report = evaluate(preds, log, out_dir=tmp_path / "eval", **FAST)
    section = report["tasks"]["goal_success"]
    assert section["items"] == len(goals)
    assert section["read_on_earlier_turn"] == len(cut) + len(flipped)
    wrong = len(flipped) + len(lost)
    assert _value(section, "model", "accuracy") == pytest.approx(1 - wrong / len(goals))
    last_turn_wrong = len(cut) + len(flipped) + len(lost)
    assert _value(section, "model_last_turn_only", "accuracy") == pytest.approx(
        1 - last_turn_wrong / len(goals)
    )
    assert _value(report["tasks"]["segment"], "model", "boundary_f1") < 1.0
    assert "model (last turn)" in render(report)


def test_human_baseline_alone_matches_the_human_beside_the_model(
    tmp_path, synth_log, synth_dialogues
):
    preds = write_predictions(tmp_path / "preds", gold_rows(synth_dialogues))
    report = evaluate(preds, synth_log, out_dir=tmp_path / "eval", **FAST)
    alone = human_baseline(synth_log, n_resamples=100)
    assert set(alone["tasks"]) == set(PRIMARY)
    for task in PRIMARY:
        assert alone["tasks"][task]["human"] == report["tasks"][task]["human"]
        assert "model" not in alone["tasks"][task]
    other_seed = human_baseline(synth_log, seed=1, n_resamples=100)
    assert other_seed["tasks"]["intent"]["human"] != alone["tasks"]["intent"]["human"]


def test_render_prints_one_line_per_score(synth_log):
    report = human_baseline(synth_log, n_resamples=20)
    text = render(report)
    assert "single annotator" in text and "dissatisfaction" in text
    n_scores = sum(len(s["human"]) for s in report["tasks"].values())
    assert len(text.splitlines()) == 1 + n_scores


def test_render_prints_the_models_lead_over_the_annotator(tmp_path, synth_log, synth_dialogues):
    preds = write_predictions(tmp_path / "p", gold_rows(synth_dialogues))
    report = evaluate(preds, synth_log, out_dir=tmp_path, **FAST)
    lines = render(report).splitlines()
    lead = [line for line in lines if "model - annotator" in line]
    assert len(lead) == 4 and all(line.startswith("dissatisfaction") for line in lead)
    assert "beyond resampling noise" in lines[-1]


def test_a_cutoff_chosen_on_one_set_decides_dissatisfaction(tmp_path, synth_log, synth_dialogues):
    # P(dissatisfied) 0.3 where the gold says dissatisfied, 0.1 elsewhere: 0.5 never fires
    rows = gold_rows(synth_dialogues)
    low, high = [0.05, 0.05, 0.3, 0.3, 0.3], [0.15, 0.15, 0.3, 0.2, 0.2]
    for row in rows.values():
        if row.get("satisfaction_probs"):
            row["satisfaction_probs"] = high if row["satisfaction_probs"][0] > 0.3 else low
    report = evaluate(
        write_predictions(tmp_path / "a", rows), synth_log, out_dir=tmp_path / "a", **FAST
    )
    section = report["tasks"]["dissatisfaction"]
    assert _value(section, "model", "f1") == 0.0
    # the cutoff fails but the ranking is perfect, and the report tells the two apart
    assert _value(section, "model", "average_precision") == 1.0
    assert _value(section, "model", "roc_auc") == 1.0
    assert 0.0 < section["positive_rate"]["value"] < 1.0
    cutoff = report["calibration"]["cutoffs"]["dissatisfaction"]
    assert cutoff == pytest.approx(0.2)
    payload = json.loads((tmp_path / "a" / "calibration.json").read_text())
    assert payload["cutoffs"] == {"dissatisfaction": cutoff}
    # with it, the weights of the 1-5 decision, chosen on the same items
    assert payload["rating_weights"] == report["calibration"]["rating_weights"]
    assert len(payload["rating_weights"]) == 5 and max(payload["rating_weights"]) == 1.0
    # and the record of their choice: by default one power for both sides of the cutoff
    assert payload["rating_rule"] == report["calibration"]["rating_rule"]
    assert payload["rating_rule"]["rule"] == "shared"
    assert len(set(payload["rating_rule"]["powers"].values())) == 1
    per_side = evaluate(
        tmp_path / "a",
        synth_log,
        out_dir=tmp_path / "per-side",
        rating_rule="per-side",
        **FAST,
    )["calibration"]["rating_rule"]
    assert per_side["rule"] == "per-side"
    assert set(per_side["powers"]) == {"dissatisfied", "satisfied"}
    with pytest.raises(ValueError, match="rating rule 'steep' is not one of"):
        evaluate(tmp_path / "a", synth_log, out_dir=tmp_path / "x", rating_rule="steep", **FAST)
    # the labeler's decision column, when present, is what gets scored
    for row in rows.values():
        if row.get("satisfaction_probs"):
            p = row["satisfaction_probs"][0] + row["satisfaction_probs"][1]
            row.update(dissatisfied=p > cutoff, dissatisfied_confidence=0.9)
    report = evaluate(
        write_predictions(tmp_path / "b", rows), synth_log, out_dir=tmp_path / "b", **FAST
    )
    assert _value(report["tasks"]["dissatisfaction"], "model", "f1") == 1.0


def test_a_reversed_ranking_scores_an_auc_of_zero(tmp_path, synth_log, synth_dialogues):
    rows = gold_rows(synth_dialogues)
    low, high = [0.05, 0.05, 0.3, 0.3, 0.3], [0.15, 0.15, 0.3, 0.2, 0.2]
    for row in rows.values():
        if row.get("satisfaction_probs"):  # the dissatisfied turns get the lower P
            row["satisfaction_probs"] = low if row["satisfaction_probs"][0] > 0.3 else high
    section = evaluate(
        write_predictions(tmp_path / "p", rows), synth_log, out_dir=tmp_path, **FAST
    )["tasks"]["dissatisfaction"]
    assert _value(section, "model", "roc_auc") == 0.0
    assert _value(section, "model", "average_precision") == pytest.approx(
        section["positive_rate"]["value"]  # positives ranked last: AP is the base rate
    )


def test_human_baseline_with_too_few_annotators_skips_the_task(tmp_path):
    # two annotators: leaving one out leaves one, so no item has a consensus to score against
    from labelgen.data.canonical import CanonicalWriter
    from labelgen.data.schema import Dialogue

    turn = {
        "user_text": "hi",
        "annotations": [
            {"annotator": "a", "satisfaction": 2},
            {"annotator": "b", "satisfaction": 4},
        ],
    }
    with CanonicalWriter(tmp_path / "two.jsonl") as writer:
        writer.write_all([Dialogue.model_validate({"dialogue_id": "d", "turns": [turn]})])
    report = human_baseline(tmp_path / "two.jsonl", n_resamples=10)
    assert report["tasks"] == {}
    assert "enough annotators" in report["skipped"]["satisfaction"]


def test_a_cutoff_at_least_as_accurate_as_the_single_annotator(
    tmp_path, synth_log, synth_dialogues
):
    import random

    rng = random.Random(0)
    rows = gold_rows(synth_dialogues)
    rated = [row for row in rows.values() if row.get("satisfaction_probs")]
    positive = [row for row in rated if row["satisfaction_probs"][0] > 0.3]
    negative = [row for row in rated if row["satisfaction_probs"][0] <= 0.3]
    # 70% of the dissatisfied turns ranked on top; below them a band of satisfied turns, then
    # the other dissatisfied ones: taking the whole band gains F1 (0.829 against 0.819) and
    # errs on 41% as many turns as there are dissatisfied ones, more than the single
    # annotator's 3.3% of the log (its dissatisfied rate is 8.8%), where the top alone does not
    top = round(0.7 * len(positive))
    band = negative[: round(0.41 * len(positive))]
    ranges = {id(row): (0.8, 1.0) for row in positive[:top]}
    ranges |= {id(row): (0.5, 0.6) for row in band} | {
        id(row): (0.4, 0.5) for row in positive[top:]
    }
    for row in rated:
        p = rng.uniform(*ranges.get(id(row), (0.0, 0.3)))
        row["satisfaction_probs"] = [p / 2, p / 2, (1 - p) / 3, (1 - p) / 3, (1 - p) / 3]
    preds = write_predictions(tmp_path / "p", rows)

    def decided(rule):
        report = evaluate(preds, synth_log, out_dir=tmp_path / rule, cutoff_rule=rule, **FAST)
        cutoff = report["calibration"]["cutoffs"]["dissatisfaction"]
        for row in rows.values():
            if row.get("satisfaction_probs"):
                p = row["satisfaction_probs"][0] + row["satisfaction_probs"][1]
                row.update(dissatisfied=p > cutoff, dissatisfied_confidence=0.9)
        again = evaluate(
            write_predictions(tmp_path / f"{rule}-decided", rows),
            synth_log,
            out_dir=tmp_path / f"{rule}-decided",
            **FAST,
        )
        section = again["tasks"]["dissatisfaction"]
        return report["calibration"]["cutoff_rule"], {
            who: (_value(section, who, "accuracy"), _value(section, who, "f1"))
            for who in ("model", "human")
        }

    rule, best_f1 = decided("f1")
    assert rule == {"rule": "f1"}
    assert best_f1["model"][0] < best_f1["human"][0]  # the case the rule is for
    rule, as_accurate = decided("f1-at-annotator-accuracy")
    assert rule["annotator_accuracy"] == pytest.approx(as_accurate["human"][0])
    payload = json.loads((tmp_path / "f1-at-annotator-accuracy" / "calibration.json").read_text())
    assert payload["cutoff_rule"] == rule  # the record of what chose the cutoff
    assert as_accurate["model"][0] >= as_accurate["human"][0]
    assert as_accurate["model"][1] <= best_f1["model"][1]  # the F1 it gave up for it
    # bagged: the median over dialogue resamples, recorded beside the cutoff it replaces
    bagged, _ = decided("f1-at-annotator-accuracy-bagged")
    assert bagged["unbagged"] == payload["cutoffs"]["dissatisfaction"]
    assert bagged["annotator_accuracy"] == rule["annotator_accuracy"] and bagged["bags"] > 0
    again = json.loads(
        (tmp_path / "f1-at-annotator-accuracy-bagged" / "calibration.json").read_text()
    )
    assert again["cutoff_rule"] == bagged
    assert bagged["spread"][0] <= again["cutoffs"]["dissatisfaction"] <= bagged["spread"][1]
    with pytest.raises(ValueError, match="cutoff rule 'best' is not one of"):
        evaluate(preds, synth_log, out_dir=tmp_path / "x", cutoff_rule="best", **FAST)


def test_intervals_resample_dialogues_not_turns(tmp_path, synth_log, synth_dialogues):
    # The same number of wrong intents, once spread over all dialogues and once filling whole
    # dialogues: only a bootstrap over dialogues tells the second, less certain case apart.
    widths = {}
    for layout in ("spread", "whole dialogues"):
        rows = gold_rows(synth_dialogues)
        keys = sorted(k for k in rows if rows[k].get("intent") is not None)
        if layout == "spread":
            hit = keys[::2]
        else:
            dialogues = sorted({d for d, _ in keys})[::2]
            hit = [k for k in keys if k[0] in dialogues]
        for key in hit:
            rows[key]["intent"] = "NotAnIntent"
        preds = write_predictions(tmp_path / layout, rows)
        report = evaluate(preds, synth_log, out_dir=tmp_path / f"eval {layout}", **FAST)
        assert report["resampling_unit"] == "dialogue"
        accuracy = report["tasks"]["intent"]["model"]["accuracy"]
        assert accuracy["value"] == pytest.approx(1 - len(hit) / len(keys), abs=0.05)
        widths[layout] = accuracy["ci95"][1] - accuracy["ci95"][0]
    assert widths["whole dialogues"] > 2 * widths["spread"]
