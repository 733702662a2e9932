from __future__ import annotations

import copy

import pytest
from pydantic import ValidationError

from labelgen.data.schema import Dialogue, explain
from tests.conftest import full_dialogue


def _reason(raw: dict) -> str:
    with pytest.raises(ValidationError) as info:
        Dialogue.model_validate(raw)
    return explain(info.value)


def test_full_dialogue_round_trips_through_json_dict():
    raw = full_dialogue()
    dialogue = Dialogue.model_validate(raw)
    assert dialogue.to_json_dict() == raw
    assert Dialogue.model_validate(dialogue.to_json_dict()) == dialogue


def test_only_ids_and_user_text_are_required():
    dialogue = Dialogue.model_validate({"dialogue_id": "x", "turns": [{"user_text": "hi"}]})
    assert dialogue.turns[0].turn_id == "x:0"
    assert dialogue.to_json_dict() == {
        "dialogue_id": "x",
        "turns": [{"turn_id": "x:0", "user_text": "hi"}],
    }


def test_slot_value_is_filled_from_offsets_and_checked():
    raw = {
        "dialogue_id": "x",
        "turns": [
            {"user_text": "wake me at 7 am", "slots": [{"slot": "time", "start": 11, "end": 15}]}
        ],
    }
    assert Dialogue.model_validate(raw).turns[0].slots[0].value == "7 am"
    raw["turns"][0]["slots"][0]["value"] = "8 am"
    assert "differs from the text at its span" in _reason(raw)


def test_empty_slots_and_absent_slots_stay_distinct():
    raw = {"dialogue_id": "x", "turns": [{"user_text": "a", "slots": []}, {"user_text": "b"}]}
    out = Dialogue.model_validate(raw).to_json_dict()
    assert out["turns"][0]["slots"] == []
    assert "slots" not in out["turns"][1]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d.pop("dialogue_id"), "dialogue_id: Field required"),
        (lambda d: d.update(dialogue_id=""), "dialogue_id: String should have at least 1"),
        (lambda d: d.update(turns=[]), "turns: List should have at least 1 item"),
        (lambda d: d["turns"][2].update(user_text=None), "turns.2.user_text"),
        (lambda d: d["turns"][2].update(user_text="   "), "turns.2: user_text is empty"),
        (lambda d: d["turns"][0].update(asr_confidence=float("nan")), "finite number"),
        (lambda d: d["turns"][0].update(asr_confidence=1.5), "less than or equal to 1"),
        (lambda d: d["turns"][0].update(user_tokens=-1), "greater than or equal to 0"),
        (lambda d: d["turns"][0].update(satisfaction="3"), "turns.0.satisfaction"),
        (lambda d: d["turns"][0].update(barge_in=1), "turns.0.barge_in"),
        (lambda d: d["turns"][0].update(colour="red"), "turns.0.colour: Extra inputs"),
        (lambda d: d["turns"][0]["slots"][0].update(end=99), "outside the user text"),
        (lambda d: d["turns"][0]["slots"][0].update(start=16, end=5), "outside the user text"),
        (lambda d: d["turns"][0]["annotations"][0]["slots"][0].update(end=99), "outside"),
        (lambda d: d["turns"][0]["annotations"][0].update(segment="X"), "segment"),
        (lambda d: d["turns"][1].update(turn_id="t0"), "duplicate turn_id"),
        (lambda d: d["turns"][1].update(goal_id="g9"), "turns.1.goal_id 'g9' is not one"),
        (lambda d: d["goals"].append({"goal_id": "g0"}), "duplicate goal_id"),
        (lambda d: d.update(rating=6), "rating: Input should be less than or equal to 5"),
    ],
)
def test_contract_violations_name_the_field_and_reason(mutate, expected):
    raw = copy.deepcopy(full_dialogue())
    mutate(raw)
    assert expected in _reason(raw)


def test_explain_caps_the_number_of_errors():
    raw = {"dialogue_id": 1, "turns": [{"user_text": 1, "domain": 2, "intent": 3, "rating": 4}]}
    reason = _reason(raw)
    assert reason.count(";") == 2
    assert "more)" in reason
