"""The single-annotator figures of DESIGN.md, measured again on the real USS-SGD file."""

from __future__ import annotations

import pytest

from labelgen.data.readers import read_log
from labelgen.data.schema import Dialogue
from labelgen.evaluation.evaluate import evaluate, human_baseline
from tests.evaluation.conftest import gold_rows, write_predictions

# DESIGN.md: single annotator vs leave-one-out consensus, binary dissatisfaction on USS-SGD
DESIGN_ACCURACY, DESIGN_F1 = 0.92, 0.30


@pytest.mark.parametrize("include_opening", [False, True])
def test_single_annotator_on_uss_sgd_matches_the_design_figures(shared_data, include_opening):
    report = human_baseline(
        shared_data / "uss" / "SGD.txt",
        "uss",
        seed=0,
        n_resamples=200,
        include_opening=include_opening,
    )
    section = report["tasks"]["dissatisfaction"]
    # 11,833 rated turns (the last turn of a dialogue is judged by no later line), plus one
    # first-line rating per dialogue when openings count
    assert section["items"] == 11_833 + (1_000 if include_opening else 0)
    human = section["human"]
    assert human["accuracy"]["value"] == pytest.approx(DESIGN_ACCURACY, abs=0.02)
    assert human["f1"]["value"] == pytest.approx(DESIGN_F1, abs=0.05)
    assert report["reference"]["rejects"] == 0


def test_uss_predictions_are_scored_on_turns_with_the_uss_protocol(shared_data, tmp_path):
    path = shared_data / "uss" / "SGD.txt"
    dialogues = [d for d in read_log(path, "uss") if isinstance(d, Dialogue)][:150]
    subset = tmp_path / "SGD.txt"
    # the first 150 blocks, as the USS file spells them (ids are block numbers, so they match)
    blocks = path.read_text(encoding="utf-8").strip("\n").split("\n\n")[:150]
    subset.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    rows = gold_rows(dialogues)
    for row in rows.values():
        row.update(intent="FindMovies", intent_confidence=0.5)
    preds = write_predictions(tmp_path / "preds", rows)
    report = evaluate(
        preds, subset, "uss", out_dir=tmp_path / "eval", n_resamples=100, make_plots=False
    )
    assert set(report["tasks"]) == {"satisfaction", "dissatisfaction"}
    assert set(report["skipped"]) == {"intent", "slots"}  # USS labels neither
    # items are rated turns only: the first user line's rating has no turn to predict on
    assert report["tasks"]["dissatisfaction"]["missing_predictions"] == 0
    assert report["headline"]["model"]["f1"] == 1.0
    assert report["headline"]["human"]["f1"] < 1.0
    protocol = report["tasks"]["satisfaction"]["model"]
    assert {"uar", "kappa", "spearman_rho", "dissatisfaction_f1"} <= set(protocol)
    assert protocol["uar"]["value"] == 1.0
