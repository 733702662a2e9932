from __future__ import annotations

import copy
import gzip
import json

import pytest

from labelgen.data.readers import read_log
from labelgen.data.rejects import LogReadError, Reject
from labelgen.data.schema import Dialogue
from labelgen.data.sgd import _load_transactional, convert_dialogue, read_sgd


def _utt(speaker, text, acts=(), service="Music_1", intent=None, slots=()):
    frame = {
        "service": service,
        "actions": [{"act": a, "slot": "", "values": []} for a in acts],
        "slots": [{"slot": s, "start": b, "exclusive_end": e} for s, b, e in slots],
    }
    if speaker == "USER":
        frame["state"] = {"active_intent": intent, "requested_slots": [], "slot_values": {}}
    return {"speaker": speaker, "utterance": text, "frames": [frame]}


SCHEMA = [
    {
        "service_name": "Music_1",
        "intents": [
            {"name": "PlaySong", "is_transactional": True},
            {"name": "LookupSong", "is_transactional": False},
        ],
    },
    {"service_name": "Weather_1", "intents": [{"name": "GetWeather", "is_transactional": False}]},
]


def _dialogue(dialogue_id="1_00000"):
    return {
        "dialogue_id": dialogue_id,
        "services": ["Music_1", "Weather_1"],
        "turns": [
            _utt(
                "USER",
                "find songs by Adele",
                ["INFORM_INTENT"],
                intent="LookupSong",
                slots=[("artist", 14, 19)],
            ),
            _utt("SYSTEM", "How about Hello?", ["OFFER"]),
            _utt("USER", "something else", ["REQUEST_ALTS"], intent="LookupSong"),
            _utt("SYSTEM", "How about Skyfall?", ["OFFER"]),
            _utt("USER", "play it", ["INFORM_INTENT"], intent="PlaySong"),
            _utt("SYSTEM", "Play Skyfall on the TV?", ["CONFIRM"]),
            _utt("USER", "no, on the kitchen speaker", ["NEGATE"], intent="PlaySong"),
            _utt("SYSTEM", "Sorry, that failed.", ["NOTIFY_FAILURE", "REQ_MORE"]),
            _utt("USER", "no thanks", ["NEGATE"], intent="NONE"),
            _utt("SYSTEM", "Anything else?", ["REQ_MORE"]),
            _utt(
                "USER",
                "what's the weather",
                ["INFORM_INTENT"],
                service="Weather_1",
                intent="GetWeather",
            ),
            _utt("SYSTEM", "Sunny.", ["INFORM"]),
            _utt("USER", "and play Hello", ["INFORM_INTENT"], intent="PlaySong"),
            _utt("SYSTEM", "Anything else?", ["REQ_MORE"]),
            _utt("USER", "no", ["NEGATE"], intent="PlaySong"),
        ],
    }


def _write_dir(tmp_path, files: dict[str, bytes]):
    (tmp_path / "schema.json").write_text(json.dumps(SCHEMA))
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return tmp_path


def test_mapping_of_turns_goals_success_and_feedback(tmp_path):
    path = _write_dir(tmp_path, {"dialogues_001.json": json.dumps([_dialogue()]).encode()})
    [dialogue] = list(read_sgd(path))
    assert isinstance(dialogue, Dialogue), dialogue
    turns = dialogue.turns
    assert len(turns) == 8 and turns[-1].system_text is None
    assert turns[0].slots[0].value == "Adele" and turns[0].domain == "Music_1"
    assert [t.intent for t in turns][:5] == [
        "LookupSong",
        "LookupSong",
        "PlaySong",
        "PlaySong",
        "NONE",
    ]
    assert [t.goal_id for t in turns] == ["g0", "g0", "g1", "g1", None, "g2", "g3", "g3"]
    # search goal with an offer: success; transactional goal notified failure: failure;
    # search with an inform: success; transactional goal never notified: failure.
    assert [(g.intent, g.success) for g in dialogue.goals] == [
        ("LookupSong", True),
        ("PlaySong", False),
        ("GetWeather", True),
        ("PlaySong", False),
    ]
    # REQUEST_ALTS after an offer and NEGATE after a confirm reject; NEGATE after
    # "anything else?" does not; the last turn has no reaction to judge.
    assert [t.rejection for t in turns] == [True, False, True, False, False, False, False, None]
    assert turns[3].system_acts == ["NOTIFY_FAILURE", "REQ_MORE"]


@pytest.mark.parametrize(
    ("intent", "acts", "success"),
    [
        # a search that found nothing more, then results under other constraints: success
        ("LookupSong", ["OFFER", "NOTIFY_FAILURE", "OFFER"], True),
        ("LookupSong", ["NOTIFY_FAILURE", "INFORM", "OFFER"], True),
        # ... and one that ends on finding nothing: failure, whatever it offered before
        ("LookupSong", ["OFFER", "NOTIFY_FAILURE"], False),
        ("LookupSong", ["NOTIFY_SUCCESS", "OFFER"], True),
        # a transaction's offers are not its outcome: the last notification decides
        ("PlaySong", ["NOTIFY_FAILURE", "OFFER"], False),
        ("PlaySong", ["NOTIFY_FAILURE", "NOTIFY_SUCCESS"], True),
        ("PlaySong", ["OFFER"], False),
    ],
)
def test_goal_outcome_is_the_last_thing_the_goal_got(tmp_path, intent, acts, success):
    turns = []
    for k, act in enumerate(acts):
        turns += [
            _utt("USER", f"request {k}", ["INFORM"], intent=intent),
            _utt("SYSTEM", f"answer {k}", [act]),
        ]
    raw = {"dialogue_id": "1_00001", "services": ["Music_1"], "turns": turns}
    path = _write_dir(tmp_path, {"dialogues_001.json": json.dumps([raw]).encode()})
    [dialogue] = list(read_sgd(path))
    assert [g.success for g in dialogue.goals] == [success]


def test_real_dev_split_reads_completely(shared_data):
    items = list(read_log(shared_data / "sgd" / "dev", "sgd"))
    assert not [i for i in items if isinstance(i, Reject)]
    assert len(items) == 2098
    raw_users = 0
    for file in sorted((shared_data / "sgd" / "dev").glob("dialogues_*.json")):
        for d in json.loads(file.read_text()):
            raw_users += sum(u["speaker"] == "USER" for u in d["turns"])
    assert sum(len(d.turns) for d in items) == raw_users
    assert all(t.intent is not None for d in items for t in d.turns)
    # Goal success is known for almost every goal, and both outcomes occur.
    outcomes = [g.success for d in items for g in d.goals]
    assert outcomes.count(None) < 0.05 * len(outcomes)
    assert outcomes.count(False) > 50
    # every search goal of dev notified a failure got results later: none failed
    schema = json.loads((shared_data / "sgd" / "dev" / "schema.json").read_text())
    search = {i["name"] for s in schema for i in s["intents"] if not i["is_transactional"]}
    assert not [g for d in items for g in d.goals if g.intent in search and g.success is False]


def test_real_compressed_train_files_read(shared_data, tmp_path):
    source = sorted((shared_data / "sgd" / "train").glob("dialogues_*.json.gz"))[0]
    (tmp_path / source.name).write_bytes(source.read_bytes())
    items = list(read_sgd(tmp_path))
    assert len(items) == len(json.loads(gzip.decompress(source.read_bytes())))
    assert all(isinstance(i, Dialogue) for i in items)


def _mwoz_frame(service, intent, values=None, asked=(), slots=()):
    state = {"active_intent": intent, "requested_slots": list(asked), "slot_values": values or {}}
    return {"actions": [], "service": service, "slots": list(slots), "state": state}


def _mwoz_dialogue():
    """A dialogue in MultiWOZ 2.2's layout: no acts, every service's frame repeated."""
    area = {"restaurant-area": ["centre"]}
    hotel = {"hotel-type": ["hotel"]}
    named = {**hotel, "hotel-name": ["university arms hotel"]}
    copied = {"slot": "taxi-departure", "copy_from": "hotel-name", "value": ["university arms"]}
    food = {"slot": "restaurant-food", "start": 10, "exclusive_end": 17, "value": "african"}
    restaurant = ("restaurant", "find_restaurant", area)
    exchanges = [
        ("i want an african place in the centre", [(*restaurant, (), [food])], "Bedouin is one."),
        # the hotel's frame opens, active, before the hotel is discussed; the user adds a
        # request about the restaurant
        (
            "its phone number please?",
            [(*restaurant, ["restaurant-phone"]), ("hotel", "find_hotel")],
            "It is 01223367660.",
        ),
        # the restaurant's request answered (dropped), still active; the hotel news
        ("and an expensive hotel", [restaurant, ("hotel", "find_hotel", hotel)], "Uni Arms."),
        (
            "book it, and a taxi from there",
            [("restaurant", "NONE", area), ("hotel", "book_hotel", named, (), [copied])],
            "Booked.",
        ),
        # nothing changes: the user is still where they were
        ("great", [("restaurant", "NONE", area), ("hotel", "book_hotel", named)], "More?"),
        ("no, bye", [("restaurant", "NONE", area), ("hotel", "NONE", named)], None),
    ]
    turns = []
    for text, frames, reply in exchanges:
        turns.append({"speaker": "USER", "utterance": text, "frames": []})
        turns[-1]["frames"] = [_mwoz_frame(*frame) for frame in frames]
        if reply is not None:
            turns.append({"speaker": "SYSTEM", "utterance": reply, "frames": []})
    return {"dialogue_id": "PMUL0001.json", "services": ["restaurant", "hotel"], "turns": turns}


def test_multiwoz_22_layout_reads_its_intents_and_claims_no_outcome(tmp_path):
    # MultiWOZ 2.2 keeps schema.json above its split folders; book_hotel is transactional
    schema = [
        {
            "service_name": "hotel",
            "intents": [
                {"name": "find_hotel", "is_transactional": False},
                {"name": "book_hotel", "is_transactional": True},
            ],
        }
    ]
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "dialogues_001.json").write_text(json.dumps([_mwoz_dialogue()]))
    [dialogue] = list(read_sgd(tmp_path / "test"))
    assert isinstance(dialogue, Dialogue), dialogue
    turns = dialogue.turns
    assert [(t.domain, t.intent) for t in turns] == [
        ("restaurant", "find_restaurant"),
        ("restaurant", "find_restaurant"),
        ("hotel", "find_hotel"),
        ("hotel", "book_hotel"),
        ("hotel", "book_hotel"),
        ("hotel", "NONE"),
    ]
    assert [t.goal_id for t in turns] == ["g0", "g0", "g1", "g2", "g2", None]
    # the span is a slot; the value copied from another slot names no text and is skipped
    assert [(s.slot, s.value) for t in turns for s in t.slots] == [("restaurant-food", "african")]
    # no acts annotated: no act lists, no rejection, and no outcome, not a failed booking
    assert {(t.user_acts, t.system_acts, t.rejection) for t in turns} == {(None, None, None)}
    assert [(g.intent, g.success) for g in dialogue.goals] == [
        ("find_restaurant", None),
        ("find_hotel", None),
        ("book_hotel", None),
    ]
    # the schema is read: a copy with acts makes the booking without a notification fail
    acted = _mwoz_dialogue()
    acted["turns"][7]["frames"] = [{"service": "hotel", "actions": [{"act": "REQ_MORE"}]}]
    (tmp_path / "test" / "dialogues_001.json").write_text(json.dumps([acted]))
    [dialogue] = list(read_sgd(tmp_path / "test"))
    assert [g.success for g in dialogue.goals] == [None, None, False]
    assert turns[0].system_text == "Bedouin is one." and dialogue.turns[3].system_acts == [
        "REQ_MORE"
    ]


def _in_multiwoz_layout(raw: dict) -> dict:
    """An SGD dialogue rewritten as MultiWOZ 2.2 lays dialogues out: no acts, and every user
    turn repeating the frame of each service mentioned so far, its last state carried."""
    raw = copy.deepcopy(raw)
    last: dict[str, dict] = {}
    for utt in raw["turns"]:
        for frame in utt["frames"]:
            frame["actions"] = []
        if utt["speaker"] == "USER":
            here = {f["service"]: f for f in utt["frames"]}
            last.update({s: f["state"] for s, f in here.items()})
            utt["frames"] = [
                here.get(s, {"service": s, "actions": [], "slots": [], "state": last[s]})
                for s in raw["services"]
                if s in last
            ]
    return raw


# SGD's system acts under the MultiWOZ act names that say the same of an outcome
_AS_MULTIWOZ = {
    "NOTIFY_SUCCESS": lambda service, slot: ("Booking-Book", "ref"),
    "NOTIFY_FAILURE": lambda service, slot: ("Booking-NoBook", "none"),
    "OFFER": lambda service, slot: (f"{service}-Recommend", slot),
    "INFORM": lambda service, slot: (f"{service}-Inform", slot),
    "INFORM_COUNT": lambda service, slot: (f"{service}-Inform", "choice"),
}


def _multiwoz_acts(raw: dict) -> dict:
    """An SGD dialogue's acts as a MultiWOZ 2.2 dialog_acts.json entry: the outcome acts by
    their MultiWOZ names, every other act as a request (which says nothing of an outcome)."""
    entry = {}
    for k, utt in enumerate(raw["turns"]):
        acts: dict[str, list[list[str]]] = {}
        for frame in utt["frames"]:
            for action in frame["actions"]:
                rename = _AS_MULTIWOZ.get(
                    action["act"], lambda service, slot: (f"{service}-Request", slot)
                )
                name, slot = rename(frame["service"], action["slot"] or "none")
                acts.setdefault(name, []).append([slot, "?"])
        entry[str(k)] = {"dialog_act": acts, "span_info": []}
    return entry


def test_real_dev_split_in_multiwoz_layout_keeps_its_intents(shared_data):
    # Without acts to point at the frame the user addressed, the reader follows what changed.
    # Taking the first frame instead agreed on 68% of these turns.
    dev = shared_data / "sgd" / "dev"
    schema = _load_transactional(dev / "schema.json")
    agree = turns = 0
    outcomes: dict[str, int] = {"same": 0, "other": 0, "other goals": 0}
    for file in sorted(dev.glob("dialogues_*.json")):
        for raw in json.loads(file.read_text()):
            sgd = convert_dialogue(raw, schema)
            mwoz = convert_dialogue(_in_multiwoz_layout(raw), schema)
            pairs = zip(sgd["turns"], mwoz["turns"], strict=True)
            agree += sum((a["domain"], a["intent"]) == (b["domain"], b["intent"]) for a, b in pairs)
            turns += len(sgd["turns"])
            for a, b in zip(sgd["turns"], mwoz["turns"], strict=True):
                assert sorted(b["slots"], key=str) == sorted(a["slots"], key=str)
            assert {g["success"] for g in mwoz["goals"]} <= {None}
            # with its acts in a dialog_acts.json, goal success reads as SGD's own acts say
            acts = {raw["dialogue_id"]: _multiwoz_acts(raw)}
            acted = convert_dialogue(_in_multiwoz_layout(raw), schema, acts)
            if [g["intent"] for g in acted["goals"]] != [g["intent"] for g in sgd["goals"]]:
                outcomes["other goals"] += 1
                continue
            for a, b in zip(sgd["goals"], acted["goals"], strict=True):
                outcomes["same" if a["success"] == b["success"] else "other"] += 1
    assert turns == 19384 and agree / turns > 0.96
    # the goals that differ are those whose turns the layout gives to a neighbouring goal
    # (measured: 4,870 of 4,935 goals the same; 68 of 2,098 dialogues segmented otherwise)
    assert outcomes["same"] / (outcomes["same"] + outcomes["other"]) > 0.98
    assert outcomes["other goals"] < 0.05 * 2098


def test_good_and_broken_records_across_files(tmp_path):
    good = [_dialogue(f"1_{i:05d}") for i in range(4)]
    bad_speakers = _dialogue("2_00000")
    bad_speakers["turns"][1]["speaker"] = "USER"
    bad_span = _dialogue("2_00001")
    bad_span["turns"][0]["frames"][0]["slots"][0]["exclusive_end"] = 99
    no_text = _dialogue("2_00002")
    del no_text["turns"][2]["utterance"]
    whole = json.dumps(good[:2]).encode()
    cut = json.dumps(good[2:]).encode()
    cut = cut[: len(cut) * 3 // 4]  # the first dialogue survives, the second is cut
    path = _write_dir(
        tmp_path,
        {
            "dialogues_001.json": json.dumps([good[0], bad_speakers, bad_span, "x"]).encode(),
            "dialogues_002.json.gz": gzip.compress(whole),
            "dialogues_003.json": cut,
            "dialogues_004.json.gz": gzip.compress(json.dumps([no_text]).encode())[:-12],
            "dialogues_005.json": json.dumps([no_text]).encode(),
        },
    )
    items = list(read_log(path, "sgd"))
    ids = [i.dialogue_id for i in items if isinstance(i, Dialogue)]
    rejects = {r.source.split("/")[-1]: r.reason for r in items if isinstance(r, Reject)}
    # dialogue 1_00000 appears twice (files 1 and 2): the second copy is a duplicate
    assert ids == ["1_00000", "1_00001", "1_00002"]
    assert "both USER" in rejects["dialogues_001.json#1"]
    assert "outside the user text" in rejects["dialogues_001.json#2"]
    assert "expected an object" in rejects["dialogues_001.json#3"]
    assert "duplicate dialogue_id '1_00000'" in rejects["dialogues_002.json.gz#0"]
    assert "invalid JSON from dialogue 1" in rejects["dialogues_003.json#1"]
    # the cut gzip stream is read up to its damage: dialogue 0 is incomplete there
    assert "the file is cut off" in rejects["dialogues_004.json.gz#0"]
    assert "turns.1.user_text" in rejects["dialogues_005.json#0"]
    assert len(items) == 3 + 7


def test_missing_directory_and_empty_directory(tmp_path):
    with pytest.raises(LogReadError, match="does not exist"):
        list(read_log(tmp_path / "nope", "sgd"))
    with pytest.raises(LogReadError, match="no dialogues_"):
        list(read_log(tmp_path, "sgd"))


def _mwoz_acts() -> dict:
    """`_mwoz_dialogue`'s entry in MultiWOZ 2.2's dialog_acts.json, by utterance turn_id."""
    none = [["none", "none"]]
    by_turn = [
        {"Restaurant-Inform": [["food", "african"], ["area", "centre"]]},
        # the search fails, and no result follows: the search goal failed
        {"Restaurant-NoOffer": [["food", "african"], ["area", "centre"]]},
        {"Restaurant-Request": [["phone", "?"]]},
        {"general-reqmore": none},
        {"Hotel-Inform": [["pricerange", "expensive"]]},
        # a result and a refusal in one reply, the result first in the file: found
        {"Hotel-Recommend": [["name", "university arms hotel"]], "Hotel-NoOffer": [["stars", "5"]]},
        {"Hotel-Inform": [["name", "university arms hotel"]]},
        {"Booking-Book": [["ref", "8XQ2J1"]]},
        {"general-thank": none},
        # another service's refusal in the booking goal's last reply: not the booking's
        {"Train-NoOffer": [["day", "sunday"]], "general-reqmore": none},
        {"general-bye": none},
    ]
    return {str(k): {"dialog_act": acts, "span_info": []} for k, acts in enumerate(by_turn)}


def _mwoz_split(tmp_path, dialogues, acts):
    (tmp_path / "schema.json").write_text(json.dumps(MWOZ_SCHEMA))
    (tmp_path / "dialog_acts.json").write_text(json.dumps(acts))
    (tmp_path / "test").mkdir(exist_ok=True)
    (tmp_path / "test" / "dialogues_001.json").write_text(json.dumps(dialogues))
    return list(read_sgd(tmp_path / "test"))


MWOZ_SCHEMA = [
    {
        "service_name": service,
        "intents": [
            {"name": f"find_{service}", "is_transactional": False},
            {"name": f"book_{service}", "is_transactional": True},
        ],
    }
    for service in ("restaurant", "hotel")
]


def test_multiwoz_22_acts_file_gives_acts_and_goal_outcomes(tmp_path):
    # dialog_acts.json sits above the split folders, beside schema.json, keyed by dialogue id
    # and each utterance's turn_id (its place in the dialogue: this copy has no turn_id)
    [dialogue] = _mwoz_split(tmp_path, [_mwoz_dialogue()], {"PMUL0001.json": _mwoz_acts()})
    assert isinstance(dialogue, Dialogue), dialogue
    turns = dialogue.turns
    assert turns[0].user_acts == ["Restaurant-Inform"]
    assert turns[0].system_acts == ["Restaurant-NoOffer"]
    assert turns[2].system_acts == ["Hotel-Recommend", "Hotel-NoOffer"]
    assert turns[5].user_acts == ["general-bye"] and turns[5].system_acts is None
    # MultiWOZ's user acts hold no decline: rejection is not known, not "never"
    assert {t.rejection for t in turns} == {None}
    assert [(g.intent, g.success) for g in dialogue.goals] == [
        ("find_restaurant", False),
        ("find_hotel", True),
        ("book_hotel", True),
    ]
    # the same acts under the utterances' own turn_ids, as MultiWOZ writes them, read alike
    numbered = _mwoz_dialogue()
    for k, utt in enumerate(numbered["turns"]):
        utt["turn_id"] = str(k)
    [again] = _mwoz_split(tmp_path, [numbered], {"PMUL0001.json": _mwoz_acts()})
    assert again.goals == dialogue.goals and again.turns == dialogue.turns


def test_multiwoz_22_booking_without_a_booking_act_failed(tmp_path):
    acts = _mwoz_acts()
    acts["7"]["dialog_act"] = {"Booking-Inform": [["none", "none"]]}  # "shall I book it?"
    [dialogue] = _mwoz_split(tmp_path, [_mwoz_dialogue()], {"PMUL0001.json": acts})
    assert [g.success for g in dialogue.goals] == [False, True, False]
    # refused, then booked on another day: the last outcome decides
    acts["7"]["dialog_act"] = {"Booking-NoBook": [["day", "tuesday"]]}
    acts["9"]["dialog_act"] = {"Booking-Book": [["ref", "7GAWK763"]]}
    [dialogue] = _mwoz_split(tmp_path, [_mwoz_dialogue()], {"PMUL0001.json": acts})
    assert [g.success for g in dialogue.goals] == [False, True, True]


def test_multiwoz_22_acts_file_bad_entry_rejects_its_dialogue_alone(tmp_path):
    other = _mwoz_dialogue()
    other["dialogue_id"] = "PMUL0002.json"
    absent = _mwoz_dialogue()
    absent["dialogue_id"] = "PMUL0003.json"
    broken = _mwoz_acts()
    broken["3"]["dialog_act"] = {"general-reqmore": ["none"]}
    entries = {"PMUL0001.json": _mwoz_acts(), "PMUL0002.json": broken}
    good, reject, unknown = _mwoz_split(tmp_path, [_mwoz_dialogue(), other, absent], entries)
    assert isinstance(good, Dialogue) and [g.success for g in good.goals] == [False, True, True]
    assert isinstance(reject, Reject) and reject.source.endswith("dialogues_001.json#1")
    assert "dialog_acts.json" in reject.reason and "general-reqmore" in reject.reason
    # a dialogue the file does not hold keeps no acts and no outcome
    assert isinstance(unknown, Dialogue) and {g.success for g in unknown.goals} == {None}
    assert {t.system_acts for t in unknown.turns} == {None}
    # a file that is not an object of dialogues stops the read, saying which file
    (tmp_path / "dialog_acts.json").write_text("[]")
    with pytest.raises(LogReadError, match=r"dialog_acts\.json"):
        list(read_sgd(tmp_path / "test"))
