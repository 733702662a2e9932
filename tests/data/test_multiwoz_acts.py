from __future__ import annotations

import re

import pytest

from labelgen.data.multiwoz_acts import outcome_acts, utterance_acts

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
