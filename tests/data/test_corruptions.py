from __future__ import annotations

import copy
import math
import random
from typing import Any

import pytest

from labelgen.data.corruptions import CorruptionConfig, corrupt_batch, defect_rate

OFF = {"swap_system": 0.0, "swap_user": 0.0, "duplicate": 0.0, "reorder": 0.0}


def config(**overrides: float) -> CorruptionConfig:
    return CorruptionConfig(**{**OFF, "max_fraction": 1.0, **overrides})


def dialogue(d: int, n: int = 6, empty_responses: tuple[int, ...] = ()) -> dict[str, Any]:
    """Token ids unique per dialogue and turn, so every cell says where it came from."""
    user = [[1000 * d + 10 * t + k for k in range(1 + t % 3)] for t in range(n)]
    system = [[] if t in empty_responses else [1000 * d + 500 + 10 * t, 7] for t in range(n)]
    return {
        "dialogue_id": f"d{d}",
        "n_turns": n,
        "user_ids": user,
        "system_ids": system,
        "intent": [100 * d + t for t in range(n)],
        "slot_tags": [[t] * len(ids) for t, ids in enumerate(user)],
        "numerical": [[float(t), 0.5] for t in range(n)],
        "audio": [{"path": f"d{d}/t{t}.wav"} for t in range(n)],
        "goals": ["g0", "g1"],  # dialogue-level, not a per-turn column
    }


def batch(size: int = 3, n: int = 6, **kwargs: Any) -> list[dict[str, Any]]:
    return [dialogue(d, n, **kwargs) for d in range(size)]


def turn_columns(out: dict[str, Any]) -> list[str]:
    return [k for k, v in out.items() if isinstance(v, list) and k != "goals"]


def test_rates_zero_is_identity_and_never_mutates_inputs():
    inputs = batch(empty_responses=(2,))
    before = copy.deepcopy(inputs)
    out = corrupt_batch(inputs, config(), random.Random(0))
    assert inputs == before
    assert out == [{**d, "defect": [0] * d["n_turns"]} for d in before]
    out[0]["user_ids"][0].append(-1)
    out[0]["audio"][0]["path"] = "changed"
    out[0]["goals"].append("g2")
    assert inputs == before


def test_swap_system_takes_a_response_from_another_dialogue():
    inputs = batch(empty_responses=(1, 4))
    before = copy.deepcopy(inputs)
    out = corrupt_batch(inputs, config(swap_system=1.0), random.Random(0))
    assert inputs == before
    for d, (original, corrupted) in enumerate(zip(before, out, strict=True)):
        others = [ids for o in before if o is not original for ids in o["system_ids"]]
        for t in range(original["n_turns"]):
            assert corrupted["user_ids"][t] == original["user_ids"][t]
            assert corrupted["slot_tags"][t] == original["slot_tags"][t]
            assert corrupted["intent"][t] == original["intent"][t]
            if not original["system_ids"][t]:
                assert corrupted["defect"][t] == 0, "there was no response to replace"
                assert corrupted["system_ids"][t] == []
                continue
            assert corrupted["defect"][t] == 1, (d, t)
            assert corrupted["system_ids"][t] in others
            assert corrupted["system_ids"][t] not in original["system_ids"]


def test_swap_user_carries_the_user_side_columns_along():
    inputs = batch()
    out = corrupt_batch(inputs, config(swap_user=1.0), random.Random(0))
    for original, corrupted in zip(inputs, out, strict=True):
        assert corrupted["defect"] == [1] * original["n_turns"]
        assert corrupted["system_ids"] == original["system_ids"]
        assert corrupted["numerical"] == original["numerical"]
        for t in range(original["n_turns"]):
            donor_d, rest = divmod(corrupted["user_ids"][t][0], 1000)
            donor_t = rest // 10
            assert donor_d != int(original["dialogue_id"][1:])
            assert corrupted["slot_tags"][t] == [donor_t] * len(corrupted["user_ids"][t])
            assert corrupted["intent"][t] == 100 * donor_d + donor_t
            assert corrupted["audio"][t] == {"path": f"d{donor_d}/t{donor_t}.wav"}


@pytest.mark.parametrize("max_fraction", [0.0, 0.3, 0.5])
def test_max_fraction_caps_the_defects_of_each_dialogue(max_fraction):
    rates = {"swap_system": 1.0, "swap_user": 1.0, "duplicate": 1.0, "reorder": 1.0}
    inputs = batch(size=4, n=7)
    out = corrupt_batch(inputs, config(**rates, max_fraction=max_fraction), random.Random(1))
    for original, corrupted in zip(inputs, out, strict=True):
        cap = math.floor(max_fraction * original["n_turns"])
        assert sum(corrupted["defect"]) <= cap
        assert sum(corrupted["defect"]) >= cap - 1  # a reorder may not fit the last slot
        assert defect_rate([corrupted]) <= max_fraction


def test_the_cap_spares_no_position_of_the_dialogue():
    inputs = [dialogue(d, n=10) for d in range(200)]
    out = corrupt_batch(inputs, config(swap_system=1.0, max_fraction=0.5), random.Random(0))
    for t in range(10):
        rate = sum(d["defect"][t] for d in out) / len(out)
        assert 0.35 < rate < 0.65, (t, rate)


def test_duplicate_repeats_a_turn_and_marks_only_the_copy():
    inputs = batch()
    out = corrupt_batch(inputs, config(duplicate=1.0), random.Random(0))
    for original, corrupted in zip(inputs, out, strict=True):
        n = original["n_turns"]
        assert corrupted["n_turns"] == 2 * n
        assert corrupted["defect"] == [0, 1] * n
        assert corrupted["goals"] == original["goals"]
        for key in turn_columns(corrupted):
            assert len(corrupted[key]) == 2 * n, key
            if key != "defect":
                assert corrupted[key][0::2] == original[key] == corrupted[key][1::2], key
        assert corrupted["user_ids"][0] is not corrupted["user_ids"][1]


def test_reorder_swaps_adjacent_turns_and_marks_both():
    inputs = batch(size=2, n=9)
    out = corrupt_batch(inputs, config(reorder=1.0), random.Random(3))
    for original, corrupted in zip(inputs, out, strict=True):
        n = original["n_turns"]
        assert corrupted["n_turns"] == n
        for key in turn_columns(corrupted):
            assert len(corrupted[key]) == n, key
        source = [original["intent"].index(intent) for intent in corrupted["intent"]]
        assert sorted(source) == list(range(n))
        assert sum(corrupted["defect"]) >= 2
        for j in range(n):
            if not corrupted["defect"][j]:
                assert source[j] == j
            elif source[j] == j + 1:
                assert source[j + 1] == j and corrupted["defect"][j + 1] == 1
            else:
                assert source[j] == j - 1 and corrupted["defect"][j - 1] == 1
        # every column followed the same permutation
        for key in turn_columns(original):
            assert corrupted[key] == [original[key][s] for s in source], key


def test_identical_turns_and_responses_are_not_counted_as_defects():
    same = dialogue(0)
    for key in ("user_ids", "system_ids"):
        same[key] = [[1, 2]] * same["n_turns"]
    twin = {**copy.deepcopy(same), "dialogue_id": "twin"}
    rates = {"swap_system": 1.0, "swap_user": 1.0, "reorder": 1.0}
    out = corrupt_batch([same, twin], config(**rates), random.Random(0))
    assert defect_rate(out) == 0.0


@pytest.mark.parametrize(
    ("op", "rate"), [("swap_system", 0.25), ("swap_user", 0.05), ("duplicate", 0.1)]
)
def test_observed_rate_is_near_the_configured_rate(op, rate):
    rng = random.Random(0)
    defects = turns = 0
    for start in range(0, 400, 8):
        inputs = [dialogue(d, n=10) for d in range(start, start + 8)]
        out = corrupt_batch(inputs, config(**{op: rate}, max_fraction=0.5), rng)
        defects += sum(sum(d["defect"]) for d in out)
        turns += sum(d["n_turns"] for d in inputs)
    assert rate * 0.8 < defects / turns < rate * 1.2


def test_reorder_rate_counts_both_turns():
    rng = random.Random(0)
    inputs = [dialogue(d, n=10) for d in range(400)]
    out = corrupt_batch(inputs, config(reorder=0.05, max_fraction=0.5), rng)
    # each accepted pair marks two turns; the last turn has no successor to swap with
    assert 0.07 < defect_rate(out) < 0.11


def test_same_seed_same_output_different_seed_different_output():
    cfg = CorruptionConfig(swap_system=0.4, swap_user=0.2, duplicate=0.2, reorder=0.2)
    inputs = batch(size=4, n=8)
    first = corrupt_batch(inputs, cfg, random.Random(7))
    assert corrupt_batch(inputs, cfg, random.Random(7)) == first
    assert corrupt_batch(inputs, cfg, random.Random(8)) != first


def test_a_batch_of_one_gets_no_swaps():
    inputs = [dialogue(0)]
    out = corrupt_batch(inputs, config(swap_system=1.0, swap_user=1.0), random.Random(0))
    assert out == [{**inputs[0], "defect": [0] * inputs[0]["n_turns"]}]


def test_empty_batch_and_empty_dialogue():
    assert corrupt_batch([], CorruptionConfig(), random.Random(0)) == []
    out = corrupt_batch([dialogue(0, n=0), dialogue(1)], CorruptionConfig(), random.Random(0))
    assert out[0]["n_turns"] == 0 and out[0]["defect"] == []


def test_malformed_or_already_corrupted_dialogues_are_rejected():
    short = dialogue(0)
    short["system_ids"].pop()
    with pytest.raises(ValueError, match="system_ids has 5 turns"):
        corrupt_batch([short], CorruptionConfig(), random.Random(0))
    (done,) = corrupt_batch([dialogue(0)], CorruptionConfig(), random.Random(0))
    with pytest.raises(ValueError, match="already corrupted"):
        corrupt_batch([done], CorruptionConfig(), random.Random(0))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"swap_system": 1.5}, "swap_system must be in"),
        ({"swap_user": -0.1}, "swap_user must be in"),
        ({"duplicate": float("nan")}, "duplicate must be in"),
        ({"reorder": 2}, "reorder must be in"),
        ({"max_fraction": -1.0}, "max_fraction must be in"),
        ({"user_columns": ("slot_tags",)}, "must include 'user_ids'"),
        ({"system_columns": ("system_ids", "defect")}, "names"),
        ({"system_columns": ("system_ids", "intent")}, "both user and system"),
    ],
)
def test_config_validation(overrides, message):
    with pytest.raises(ValueError, match=message):
        CorruptionConfig(**overrides)


def test_defect_rate():
    assert defect_rate([]) == 0.0
    assert defect_rate([{"defect": [1, 0]}, {"defect": [1, 1, 0, 0]}]) == 0.5
