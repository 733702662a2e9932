"""MultiWOZ 2.2's dialogue acts, read from its separate `dialog_acts.json`, and what they say about
a goal's outcome in the terms the SGD reader decides goal success with.

MultiWOZ 2.2 is published in SGD's format, but its dialogue files carry no acts: they sit in
`dialog_acts.json` beside `schema.json`, above the train/dev/test folders, as
`{dialogue_id: {turn_id: {"dialog_act": {"Domain-Act": [[slot, value], ...]}, "span_info": [...]}}}`
(`turn_id` being each utterance's `turn_id`, "0" for the first; the dataset's README spells
"dialog_act" as "dialogue_acts", which is also taken). An act without slots holds
`[["none", "none"]]`.

What a system act says about the goal it answers (the SGD act it stands for):
- `Booking-Book` and `Train-OfferBooked`: a booking made (NOTIFY_SUCCESS); `Booking-NoBook`: a
  booking refused (NOTIFY_FAILURE). `Booking` names no domain: it is the goal at hand's.
- `Taxi-Inform` with a car (`car`, or the schema's `type`) or a phone: the taxi booked
  (NOTIFY_SUCCESS). MultiWOZ has no booking act for taxis, whose car and number are made up
  when one is booked: "Booked car type: ..., contact number: ..." is how one is confirmed.
- `<Domain>-NoOffer`: nothing matches (NOTIFY_FAILURE); for a search, a result offered later
  overrides it, as for SGD's "no other events" notices.
- `<Domain>-Recommend`, `<Domain>-Select`, `Train-OfferBook`, and `<Domain>-Inform` naming an
  entity (`name`, or a train's `id`): a result offered (OFFER).
- any other `<Domain>-Inform` but a bare count (`choice`): a result's details (INFORM).
- requests, `Booking-Inform` / `Booking-Request` (asking before booking), `general-*`: nothing.

Within one utterance a refusal comes before what else it says ("Tuesday is full; I booked you
for Wednesday": booked). The user's acts (`<Domain>-Inform`, `<Domain>-Request`, `general-*`)
hold no decline, so rejection stays unknown.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from labelgen.data.rejects import LogReadError

ACTS_FILE = "dialog_acts.json"

Acts = dict[str, list[tuple[str, str]]]
"""One utterance's acts: act type -> its (slot, value) pairs, in the file's order."""


def load_dialog_acts(path: Path) -> dict[str, Any]:
    """The acts file: every dialogue's entry by id (each checked when its dialogue is read, so
    a malformed entry rejects its dialogue alone)."""
    try:
        acts = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise LogReadError(f"{path} is not a MultiWOZ dialog_acts.json: {err}") from err
    if not isinstance(acts, dict):
        raise LogReadError(
            f"{path} is not a MultiWOZ dialog_acts.json: expected an object of dialogues, "
            f"got {type(acts).__name__}"
        )
    return acts


def utterance_acts(entry: Any, turn_id: str) -> Acts:
    """The acts of one utterance of a dialogue's entry; ValueError says what is malformed."""
    if not isinstance(entry, dict):
        raise ValueError(f"the dialogue's entry is a {type(entry).__name__}, not an object")
    turn = entry.get(turn_id, {})
    if not isinstance(turn, dict):
        raise ValueError(f"turn {turn_id} is a {type(turn).__name__}, not an object")
    # the file (and the `datasets` loader reading it) says "dialog_act"; the dataset's README
    # shows "dialogue_acts": either is taken
    key = "dialog_act" if "dialog_act" in turn else "dialogue_acts"
    acts = turn.get(key, {})
    if not isinstance(acts, dict):
        raise ValueError(f"turn {turn_id}'s '{key}' is not an object")
    out: Acts = {}
    for name, pairs in acts.items():
        if not (
            isinstance(pairs, list)
            and all(isinstance(p, list) and len(p) == 2 for p in pairs)
            and all(isinstance(x, str) for p in pairs for x in p)
        ):
            raise ValueError(f"turn {turn_id}'s act {name!r} is not a list of [slot, value]")
        out[name] = [(slot, value) for slot, value in pairs]
    return out


def outcome_acts(acts: Acts) -> list[tuple[str | None, str]]:
    """What a system utterance's acts say about outcomes: (domain, SGD act) pairs, the domain
    lower-case, None for `Booking` (the goal at hand's); refusals first."""
    out: list[tuple[str | None, str]] = []
    for name, pairs in acts.items():
        domain, _, act = name.lower().partition("-")
        slots = {slot.lower() for slot, _ in pairs} - {"none"}
        outcome = _outcome(domain, act, slots)
        if outcome is not None:
            out.append((None if domain == "booking" else domain, outcome))
    return sorted(out, key=lambda pair: pair[1] != "NOTIFY_FAILURE")  # stable: file order


def _outcome(domain: str, act: str, slots: set[str]) -> str | None:
    if domain == "booking":
        return {"book": "NOTIFY_SUCCESS", "nobook": "NOTIFY_FAILURE"}.get(act)
    if (domain, act) == ("train", "offerbooked"):
        return "NOTIFY_SUCCESS"
    if (domain, act) == ("taxi", "inform") and slots & {"car", "type", "phone"}:
        return "NOTIFY_SUCCESS"
    if act == "nooffer":
        return "NOTIFY_FAILURE"
    if act in ("recommend", "select") or (domain, act) == ("train", "offerbook"):
        return "OFFER"
    if act == "inform" and slots & {"name", "id"}:
        return "OFFER"
    if act == "inform" and slots - {"choice"}:
        return "INFORM"
    return None
