from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from labelgen.cli import main
from tests.conftest import full_dialogue, intent_labels


def _run(capsys, *argv) -> tuple[int, dict | None, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    last = out.strip().splitlines()[-1] if out.strip() else ""
    return code, json.loads(last) if code == 0 else None, err


def test_inspect_real_sgd_and_uss(capsys, shared_data):
    code, summary, _ = _run(capsys, "inspect", "--format", "sgd", shared_data / "sgd" / "dev")
    assert code == 0
    assert (summary["dialogues"], summary["rejected"]) == (2098, 0)
    assert summary["labels"]["intent"] == summary["turns"] > 2098
    assert summary["labels"]["slot_spans"] > 0 and summary["labels"]["goal_success"] > 0
    for name, n in (("SGD.txt", 1000), ("CCPE.txt", 500)):
        code, summary, _ = _run(capsys, "inspect", "--format", "uss", shared_data / "uss" / name)
        assert (code, summary["dialogues"], summary["rejected"]) == (0, n, 0)
        assert summary["annotator_labels"]["satisfaction"] > 3 * n


def test_unreadable_path_is_one_line_and_exit_2(tmp_path):
    # The console script installed beside this interpreter, as a user would run it.
    labelgen = Path(sys.executable).parent / "labelgen"
    assert labelgen.exists(), "the console script is installed with the package"
    result = subprocess.run(
        [labelgen, "inspect", str(tmp_path / "missing.jsonl")], capture_output=True, text=True
    )
    assert result.returncode == 2
    missing = tmp_path / "missing.jsonl"
    assert result.stderr.strip() == f"labelgen inspect: error: {missing} does not exist"
    assert "Traceback" not in result.stderr


def test_convert_keeps_every_record(capsys, tmp_path):
    log = tmp_path / "in.jsonl"
    lines = [json.dumps(full_dialogue(f"d{i}")) for i in range(5)]
    lines[2] = lines[2].replace('"user_text": "thanks"', '"user_text": 7')
    lines.insert(4, "{not json")
    lines.append(json.dumps(full_dialogue("d0")))
    log.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.parquet"
    code, summary, _ = _run(capsys, "convert", log, "--out", out)
    assert code == 0
    assert summary["dialogues"] == 4 and summary["rejected"] == 3
    rejects = [json.loads(x) for x in (tmp_path / "out.parquet.rejects.jsonl").open()]
    assert [r["source"] for r in rejects] == [f"{log}:3", f"{log}:5", f"{log}:7"]
    assert "duplicate dialogue_id 'd0'" in rejects[2]["reason"]
    assert all(r["reason"] and r["record"] for r in rejects)
    back = tmp_path / "back.jsonl"
    code, summary, _ = _run(capsys, "convert", out, "--out", back, "--rejects", tmp_path / "r2")
    assert (code, summary["dialogues"], summary["rejected"]) == (0, 4, 0)
    kept = [lines[i] for i in (0, 1, 3, 5)]
    assert [json.loads(x) for x in back.open()] == [json.loads(x) for x in kept]


def test_convert_to_an_unwritable_place_is_exit_2(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = _run(
        capsys, "convert", blocker, "--format", "canonical", "--out", blocker / "sub" / "x.jsonl"
    )
    assert code == 2 and err.startswith("labelgen convert: error:")


def test_synth_is_deterministic_per_seed(capsys, tmp_path):
    paths = [tmp_path / n for n in ("a.jsonl", "b.jsonl", "c.jsonl")]
    for path, seed in zip(paths, (3, 3, 4), strict=True):
        code, summary, _ = _run(capsys, "synth", "--dialogues", 50, "--seed", seed, "--out", path)
        assert (code, summary["dialogues"]) == (0, 50)
    assert paths[0].read_bytes() == paths[1].read_bytes() != paths[2].read_bytes()
    code, summary, _ = _run(capsys, "inspect", paths[0])
    assert (summary["dialogues"], summary["rejected"], summary["max_annotators"]) == (50, 0, 3)
    code, _, err = _run(capsys, "synth", "--annotators", 2, "--out", tmp_path / "x.jsonl")
    assert code == 2 and "at least 3" in err


def test_evaluate_without_predictions_is_the_human_baseline(capsys, shared_data):
    code = main(
        ["evaluate", "--reference", str(shared_data / "uss" / "SGD.txt"), "--format", "uss"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert json.loads(out.strip().splitlines()[-1])["reference"]["dialogues"] == 1000
    human = [line.split() for line in out.splitlines() if line.startswith("dissatisfaction")]
    scores = {row[-4]: float(row[-3]) for row in human}
    assert abs(scores["accuracy"] - 0.92) < 0.02 and abs(scores["f1"] - 0.30) < 0.05


def test_evaluate_predictions_with_dawid_skene_and_wandb(tmp_path, monkeypatch, capsys):
    log, labels = intent_labels(tmp_path)
    logged = []
    monkeypatch.setattr(
        "labelgen.evaluation.wandb_log.log_report",
        lambda report, out: logged.append(out) or str(out),
    )
    code = main(
        [
            "evaluate",
            "--predictions",
            str(labels),
            "--reference",
            str(log),
            "--out",
            str(tmp_path / "eval"),
            "--consensus",
            "dawid-skene",
            "--cutoff-rule",
            "f1-at-annotator-accuracy",
            "--wandb",
        ]
    )
    assert code == 0 and logged == [tmp_path / "eval"]
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["consensus"] == "dawid-skene"
    calibration = json.loads((tmp_path / "eval" / "calibration.json").read_text())
    assert calibration["cutoff_rule"] == {"rule": "f1-at-annotator-accuracy"}  # no ratings here
    intent = metrics["tasks"]["intent"]
    # the reference intents are the annotators' truth: the model beats a noisy annotator
    assert intent["model"]["accuracy"]["value"] > intent["human"]["accuracy"]["value"]
    assert "intent" in capsys.readouterr().out


def test_the_cli_offers_the_cutoff_rules_evaluate_knows():
    # the CLI lists them itself, so that `labelgen --help` imports nothing heavy
    from labelgen.cli import build_parser
    from labelgen.evaluation.dissatisfaction import CUTOFF_RULES
    from labelgen.evaluation.rating_decision import RATING_RULES

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    rule = next(a for a in sub.choices["evaluate"]._actions if a.dest == "cutoff_rule")
    assert tuple(rule.choices) == CUTOFF_RULES
    rating = next(a for a in sub.choices["evaluate"]._actions if a.dest == "rating_rule")
    assert tuple(rating.choices) == RATING_RULES and rating.default == RATING_RULES[0]
