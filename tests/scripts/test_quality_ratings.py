"""Stage 1 where ratings are a log's only labels (`quality.ratings`): each arm's start and
options, the scarce slice every arm of a draw shares, and stage 1's lead beside a seed's
spread. The models themselves train in the smoke run (`test_benchmark_quality`)."""

from __future__ import annotations

import argparse

import pytest

from labelgen.data.schema import Dialogue, Turn
from tests.conftest import ROOT


@pytest.fixture(autouse=True)
def _scripts_importable(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))


def _figures(f1, ap, uar):
    return {
        "model": {"accuracy": 0.9, "f1": f1, "average_precision": ap, "roc_auc": None},
        "uss_protocol": {"uar": uar, "kappa": 0.2},
        "fold_cutoffs": [0.3],
        "fold_rating_powers": [None],
    }


def test_the_arms_start_from_a_stage_1_or_from_nothing_and_need_it(tmp_path):
    from quality.names import NEXT_SEED
    from quality.ratings import RATINGS_ONLY, ratings_only_options, ratings_only_starts

    with pytest.raises(SystemExit, match=r"run the SGD half in .* or name one"):
        ratings_only_starts(tmp_path)
    stage1 = tmp_path / "sgd" / "pretrain" / "best.ckpt"
    stage1.parent.mkdir(parents=True)
    stage1.write_bytes(b"weights")
    assert ratings_only_starts(tmp_path) == {
        RATINGS_ONLY["no_pretraining"]: None,
        RATINGS_ONLY["with_pretraining"]: str(stage1),
        RATINGS_ONLY[NEXT_SEED]: None,
    }
    # a stage 1 named by path, which must be there
    named = tmp_path / "big.ckpt"
    with pytest.raises(SystemExit, match=r"big\.ckpt is missing$"):
        ratings_only_starts(tmp_path, [named])
    named.write_bytes(b"other weights")
    assert ratings_only_starts(tmp_path, [named])[RATINGS_ONLY["with_pretraining"]] == str(named)
    # stage 1 from a second seed: one more arm, from it; every checkpoint must be there
    second = tmp_path / "big-seed1.ckpt"
    with pytest.raises(SystemExit, match=r"big-seed1\.ckpt is missing$"):
        ratings_only_starts(tmp_path, [named, second])
    second.write_bytes(b"a third set of weights")
    assert ratings_only_starts(tmp_path, [named, second]) == {
        RATINGS_ONLY["no_pretraining"]: None,
        RATINGS_ONLY["with_pretraining"]: str(named),
        RATINGS_ONLY[NEXT_SEED]: None,
        "stage1-2-then-ratings": str(second),
    }

    args = argparse.Namespace(seed=3, stage1_shrink=1.0, uss_stage1=None)
    assert ratings_only_options(args) == {
        RATINGS_ONLY["with_pretraining"]: {},  # whole: session 52's settings, reusable
        RATINGS_ONLY[NEXT_SEED]: {"seed": 4},
    }
    args.stage1_shrink, args.uss_stage1 = 0.25, [named, second]
    assert ratings_only_options(args) == {
        RATINGS_ONLY["with_pretraining"]: {"init_shrink": 0.25},
        "stage1-2-then-ratings": {"init_shrink": 0.25},  # shrunk alike, on the draw's seed
        RATINGS_ONLY[NEXT_SEED]: {"seed": 4},
    }


def test_a_scarce_slice_is_the_draws_and_the_folds_and_keeps_the_order():
    from quality.ratings import scarce_slice

    train = [
        Dialogue(dialogue_id=f"d{i}", turns=[Turn(turn_id=f"d{i}:0", user_text="hi")])
        for i in range(40)
    ]
    sliced = scarce_slice(train, 10, seed=0, fold=1)
    assert len(sliced) == 10 and len({d.dialogue_id for d in sliced}) == 10
    positions = [train.index(d) for d in sliced]
    assert positions == sorted(positions)
    assert scarce_slice(train, 10, seed=0, fold=1) == sliced  # the same for every arm
    assert scarce_slice(train, 10, seed=0, fold=2) != sliced
    assert scarce_slice(train, 10, seed=1, fold=1) != sliced
    assert scarce_slice(train, None, seed=0, fold=1) == train
    assert scarce_slice(train, 99, seed=0, fold=1) == train


def _verdict(ratings: dict) -> bool | None:
    """The run's verdict on stage 1's lead over a seed's spread, as its target row reads it."""
    from quality.targets import targets

    rows = targets({"uss": {"ratings_only": ratings}})
    return next(row["met"] for row in rows if row["target"] == "stage1_helps_on_ratings")


def test_stage_1s_lead_is_set_beside_a_seeds_spread():
    from quality.names import NEXT_SEED
    from quality.ratings import stage1_on_ratings

    arms = {
        "with_pretraining": _figures(0.35, 0.25, 0.4),
        "no_pretraining": _figures(0.3, 0.2, 0.5),
    }
    both = stage1_on_ratings(arms)
    lead = both["with_minus_without"]
    assert lead["f1"] == pytest.approx(0.05) and lead["average_precision"] == pytest.approx(0.05)
    assert lead["uar"] == pytest.approx(-0.1) and lead["accuracy"] == pytest.approx(0.0)
    assert lead["kappa"] == pytest.approx(0.0)
    assert lead["roc_auc"] is None  # not measured on one side: no difference made up
    assert both["with_pretraining"]["f1"] == 0.35
    assert both["no_pretraining"]["uss_protocol"]["uar"] == 0.5
    assert "seed_spread" not in both  # no control
    assert _verdict(both) is None  # ... so no verdict
    assert both["rated_dialogues_per_fold_model"] is None

    # the next seed moves AP by 0.03 (below): the lead of 0.05 is beyond it
    with_seed = stage1_on_ratings({**arms, NEXT_SEED: _figures(0.28, 0.17, 0.45)}, rated=160)
    assert with_seed["seed_spread"]["average_precision"] == pytest.approx(0.03)
    assert with_seed["seed_spread"]["f1"] == pytest.approx(0.02)  # a distance, not signed
    assert _verdict(with_seed) is True
    assert "beyond_a_seed" not in with_seed  # the row's verdict, not kept twice
    assert with_seed["rated_dialogues_per_fold_model"] == 160
    # ... by 0.06 (above): not
    wider = stage1_on_ratings({**arms, NEXT_SEED: _figures(0.28, 0.26, 0.45)})
    assert _verdict(wider) is False
    assert "stage1_mean_minus_fresh_mean" not in both  # one fresh arm: no mean of two
    # the stage-1 arm against the two fresh arms' mean (0.2 and 0.17)
    mean_lead = with_seed["stage1_mean_minus_fresh_mean"]
    assert mean_lead["average_precision"] == pytest.approx(0.25 - 0.185)
    assert mean_lead["uar"] == pytest.approx(0.4 - 0.475)
    assert mean_lead["roc_auc"] is None


def test_stage_1_from_two_seeds_is_averaged_against_the_two_fresh_seeds():
    from quality.names import NEXT_SEED
    from quality.ratings import stage1_on_ratings

    arms = {
        "no_pretraining": _figures(0.3, 0.20, 0.5),
        "with_pretraining": _figures(0.35, 0.25, 0.4),
        NEXT_SEED: _figures(0.28, 0.17, 0.45),
        "with_pretraining_2": _figures(0.31, 0.16, 0.44),
    }
    result = stage1_on_ratings(arms, rated=160)
    assert result["with_pretraining_2"]["average_precision"] == 0.16
    mean_lead = result["stage1_mean_minus_fresh_mean"]
    assert mean_lead["average_precision"] == pytest.approx((0.25 + 0.16) / 2 - (0.20 + 0.17) / 2)
    assert mean_lead["f1"] == pytest.approx((0.35 + 0.31) / 2 - (0.3 + 0.28) / 2)
    # the run's own row still reads the first stage 1 against the first seed and its spread
    assert result["with_minus_without"]["average_precision"] == pytest.approx(0.05)
    assert _verdict(result) is True


def test_each_stage_1_checkpoint_is_named_by_its_bits(tmp_path):
    from quality.ratings import stage1_digests

    first, again, other = (tmp_path / name for name in ("a.ckpt", "b.ckpt", "c.ckpt"))
    first.write_bytes(b"stage 1, seed 0")
    again.write_bytes(b"stage 1, seed 0")
    other.write_bytes(b"stage 1, seed 0, trained again")
    starts = {"ratings-only": None, "stage1-then-ratings": str(first)}
    digests = stage1_digests({**starts, "stage1-2-then-ratings": str(again), "x": str(other)})
    assert set(digests) == {str(first), str(again), str(other)}  # the fresh arms start nowhere
    assert digests[str(first)] == digests[str(again)] != digests[str(other)]
    assert len(digests[str(first)]) == 32
    first.unlink()
    with pytest.raises(FileNotFoundError):
        stage1_digests(starts)
