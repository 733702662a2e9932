"""MultiWOZ 2.2's acts file: what each act says of an outcome, and that any entry in it reads its
dialogue or rejects it with the reason."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelgen.data.canonical import validate
from labelgen.data.multiwoz_acts import outcome_acts, utterance_acts
from labelgen.data.schema import Dialogue
from labelgen.data.sgd import SgdFormatError, convert_dialogue
from tests.data.fuzzing import FUZZ
from tests.data.test_sgd import MWOZ_SCHEMA, _mwoz_dialogue

MWOZ_TRANSACTIONAL = {
    (service["service_name"], intent["name"]): intent["is_transactional"]
    for service in MWOZ_SCHEMA
    for intent in service["intents"]
}

NONE = [("none", "none")]


@pytest.mark.parametrize(
    ("acts", "expected"),
    [
        # bookings: Booking names no domain, it is the goal at hand's
        ({"Booking-Book": [("ref", "8XQ2J1")]}, [(None, "NOTIFY_SUCCESS")]),
        ({"Booking-NoBook": [("day", "tuesday")]}, [(None, "NOTIFY_FAILURE")]),
        ({"Booking-Inform": NONE, "Booking-Request": [("people", "?")]}, []),
        ({"Train-OfferBooked": [("ref", "A1"), ("id", "TR4")]}, [("train", "NOTIFY_SUCCESS")]),
        ({"Train-OfferBook": [("id", "TR4")]}, [("train", "OFFER")]),
        # a taxi is booked when its car or its phone is given, not when its route is repeated
        ({"Taxi-Inform": [("car", "grey volvo"), ("phone", "0778")]}, [("taxi", "NOTIFY_SUCCESS")]),
        ({"Taxi-Inform": [("Phone", "0778")]}, [("taxi", "NOTIFY_SUCCESS")]),
        ({"Taxi-Inform": [("type", "white tesla")]}, [("taxi", "NOTIFY_SUCCESS")]),
        ({"Taxi-Inform": [("departure", "the gallery")]}, [("taxi", "INFORM")]),
        # searches: nothing found, a result named, its details, a bare count
        ({"Hotel-NoOffer": [("stars", "5")]}, [("hotel", "NOTIFY_FAILURE")]),
        ({"Restaurant-Recommend": [("name", "bedouin")]}, [("restaurant", "OFFER")]),
        ({"Attraction-Select": [("type", "museum")]}, [("attraction", "OFFER")]),
        ({"Hotel-Inform": [("Name", "acorn guest house")]}, [("hotel", "OFFER")]),
        ({"Train-Inform": [("id", "TR1234")]}, [("train", "OFFER")]),
        ({"Hospital-Inform": [("phone", "01223245151")]}, [("hospital", "INFORM")]),
        ({"Hotel-Inform": [("choice", "5")]}, []),
        ({"Hotel-Request": [("area", "?")], "general-reqmore": NONE, "general-bye": NONE}, []),
        # a refusal comes before what else the reply says, whatever the file's order
        (
            {"Booking-Book": [("ref", "7GAWK763")], "Booking-NoBook": [("day", "tuesday")]},
            [(None, "NOTIFY_FAILURE"), (None, "NOTIFY_SUCCESS")],
        ),
        (
            {"Hotel-Recommend": [("name", "a")], "Train-NoOffer": NONE, "Hotel-NoOffer": NONE},
            [("train", "NOTIFY_FAILURE"), ("hotel", "NOTIFY_FAILURE"), ("hotel", "OFFER")],
        ),
    ],
)
def test_outcome_acts(acts, expected):
    assert outcome_acts(acts) == expected


def test_utterance_acts_reads_an_entry_and_says_what_is_malformed():
    entry = {
        "0": {"dialog_act": {"Hotel-Inform": [["area", "east"]]}, "span_info": []},
        "1": {"dialog_act": {}, "span_info": []},
    }
    assert utterance_acts(entry, "0") == {"Hotel-Inform": [("area", "east")]}
    assert utterance_acts(entry, "1") == {}
    assert utterance_acts(entry, "7") == {}  # an utterance the entry does not list: no act
    # the key as the dataset's README spells it
    readme = {"0": {"dialogue_acts": {"Booking-Book": [["ref", "X1"]]}}}
    assert utterance_acts(readme, "0") == {"Booking-Book": [("ref", "X1")]}
    for bad, why in [
        ([], "not an object"),
        ({"0": None}, "turn 0 is a NoneType"),
        ({"0": {"dialogue_acts": []}}, "'dialogue_acts' is not an object"),
        ({"0": {"dialog_act": [["Hotel-Inform"]]}}, "'dialog_act' is not an object"),
        ({"0": {"dialog_act": {"Hotel-Inform": [["area"]]}}}, "'Hotel-Inform'"),
        ({"0": {"dialog_act": {"Hotel-Inform": [["area", 3]]}}}, "[slot, value]"),
    ]:
        with pytest.raises(ValueError, match=re.escape(why)):
            utterance_acts(bad, "0")


_scalar = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
_json = st.recursive(
    _scalar,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
_act_names = st.sampled_from(
    [
        "Booking-Book",
        "Booking-NoBook",
        "Hotel-NoOffer",
        "Hotel-Inform",
        "Taxi-Inform",
        "Train-OfferBooked",
        "Restaurant-Recommend",
        "general-bye",
        "Hotel",
        "-",
        "x-y-z",
    ]
)
_slots = st.lists(
    st.tuples(
        st.sampled_from(["name", "car", "choice", "none", "Id", ""]), st.text(max_size=4)
    ).map(list),
    max_size=3,
)
_turn_ids = st.sampled_from([str(k) for k in range(12)])


def _entries(acts: st.SearchStrategy) -> st.SearchStrategy:
    """Entries whose utterances' `dialog_act` is drawn from `acts`."""
    return st.dictionaries(_turn_ids, st.fixed_dictionaries({"dialog_act": acts}))


# broken at every level: the entry, a turn, its acts, an act's pairs; and well formed
_any_entry = st.one_of(
    _json,
    st.dictionaries(_turn_ids, _json),
    _entries(_json),
    _entries(st.dictionaries(_act_names, _json, max_size=3)),
    _entries(st.dictionaries(_act_names, st.lists(st.lists(_scalar, max_size=3), max_size=3))),
    _entries(st.dictionaries(_act_names, st.lists(st.lists(_scalar, min_size=2, max_size=2)))),
    _entries(st.dictionaries(_act_names, _slots, max_size=3)),
)


@settings(FUZZ, max_examples=200)  # seven shapes, each broken at its own level: more draws
@given(entry=_any_entry)
def test_any_entry_reads_or_rejects_the_dialogue(entry):
    # whatever the file holds for a dialogue: its dialogue reads, or is rejected with a reason
    try:
        converted = convert_dialogue(_mwoz_dialogue(), MWOZ_TRANSACTIONAL, {"PMUL0001.json": entry})
    except SgdFormatError as err:
        assert str(err).startswith("malformed dialog_acts.json entry: "), err
        return
    assert {g["success"] for g in converted["goals"]} <= {True, False, None}
    assert {t.get("rejection") for t in converted["turns"]} == {None}
    assert isinstance(validate(converted, "fuzz"), Dialogue)  # the contract takes it
