from __future__ import annotations

import itertools
import string
from collections.abc import Iterator
from statistics import mean

import pytest
from pydantic import BaseModel

from labelgen.data import synth_domains
from labelgen.data.canonical import read_canonical
from labelgen.data.schema import (
    Dialogue,
    DialogueAnnotation,
    Goal,
    GoalAnnotation,
    SlotSpan,
    Turn,
    TurnAnnotation,
)
from labelgen.data.synth import SynthConfig, generate, synth_to_file

N = 200


@pytest.fixture(scope="module")
def dialogues() -> list[Dialogue]:
    return list(generate(N, seed=7))


@pytest.fixture(scope="module")
def turns(dialogues: list[Dialogue]) -> list[Turn]:
    return [t for d in dialogues for t in d.turns]


def _json(dialogues) -> list[dict]:
    return [d.to_json_dict() for d in dialogues]


def test_same_seed_same_dialogues_other_seed_other_dialogues():
    assert _json(generate(20, 3)) == _json(generate(20, 3))

    def texts(seed: int) -> list[list[str]]:
        return [[t.user_text for t in d.turns] for d in generate(20, seed)]

    assert sum(a != b for a, b in zip(texts(3), texts(4), strict=True)) > 15
    assert next(generate(1, 4)).dialogue_id == "synth-4-0000000"


def test_dialogue_i_depends_only_on_seed_and_i():
    assert _json(generate(12, 5))[7:] == _json(itertools.islice(generate(10**6, 5), 7, 12))


def test_annotator_settings_leave_the_dialogues_alone():
    def references(config):
        out = _json(generate(30, 1, config))
        for d in out:
            del d["annotations"]
            for item in d["turns"] + d["goals"]:
                del item["annotations"]
        return out

    noisy = SynthConfig(annotators=5, annotator_noise=0.4)
    assert references(SynthConfig(annotator_noise=0.0)) == references(noisy)


def test_generate_streams_without_materializing():
    stream = generate(10**9, 0)
    assert isinstance(stream, Iterator)
    assert next(stream).dialogue_id == "synth-0-0000000"
    assert next(stream).dialogue_id == "synth-0-0000001"


@pytest.mark.parametrize(
    "model", [Dialogue, Turn, Goal, SlotSpan, TurnAnnotation, GoalAnnotation, DialogueAnnotation]
)
def test_every_field_is_set_somewhere(dialogues, model: type[BaseModel]):
    def instances(obj):
        if isinstance(obj, model):
            yield obj
        if isinstance(obj, BaseModel):
            for name in type(obj).model_fields:
                yield from instances(getattr(obj, name))
        elif isinstance(obj, list):
            for item in obj:
                yield from instances(item)

    found = [x for d in dialogues for x in instances(d)]
    unset = {
        name
        for name in model.model_fields
        if name != "audio_path" and all(getattr(x, name) is None for x in found)
    }
    assert found and not unset


def test_slot_spans_are_exact(turns):
    spans = [(t, s) for t in turns for s in t.slots]
    spans += [(t, s) for t in turns for a in t.annotations for s in a.slots]
    assert len({s.slot for _, s in spans}) > 10
    for turn, span in spans:
        assert turn.user_text[span.start : span.end] == span.value


def test_goals_are_contiguous_runs_that_succeed_and_fail(dialogues):
    outcomes = {g.success for d in dialogues for g in d.goals}
    assert outcomes == {True, False}
    for d in dialogues:
        ids = [t.goal_id for t in d.turns]
        assert {g.goal_id for g in d.goals} == set(ids) - {None}
        runs = [key for key, _ in itertools.groupby(ids) if key is not None]
        assert len(runs) == len(set(runs)) == len(d.goals)
    assert max(len(d.goals) for d in dialogues) == 3
    assert len({t.domain for d in dialogues for t in d.turns}) >= 5
    assert any(t.goal_id is None for d in dialogues for t in d.turns)


def test_feedback_is_observable_false_and_unknown_only_at_the_end(dialogues):
    for d in dialogues:
        *inner, last = d.turns
        assert last.rephrase is None and last.rejection is None
        assert all(t.rephrase is not None and t.rejection is not None for t in inner)
        assert all(t.barge_in is not None for t in d.turns)


def test_feedback_matches_the_next_utterance_and_goal_outcome(dialogues):
    for d in dialogues:
        success = {g.goal_id: g.success for g in d.goals}
        for turn, after in itertools.pairwise(d.turns):
            if turn.rejection:
                assert {"NEGATE", "REQUEST_ALTS"} & set(after.user_acts)
            if turn.rephrase:
                assert after.intent == turn.intent and after.goal_id == turn.goal_id
            if turn.explicit_feedback is not None:
                assert turn.explicit_feedback == success[turn.goal_id]
                assert after.user_acts[0] == ("AFFIRM" if turn.explicit_feedback else "NEGATE")


def test_errors_show_in_confidences_intents_and_satisfaction(turns):
    reacted = [t for t in turns if t.rephrase or t.rejection]
    calm = [t for t in turns if not (t.rephrase or t.rejection)]
    assert mean(t.asr_confidence for t in reacted) < mean(t.asr_confidence for t in calm) - 0.1
    misread = [t for t in turns if t.logged_intent != t.intent]
    assert misread and mean(t.asr_confidence for t in misread) < 0.7
    assert mean(t.satisfaction for t in reacted) < mean(t.satisfaction for t in calm)
    by_act = {
        act: mean(t.satisfaction for t in turns if act in t.system_acts)
        for act in ("NOTIFY_SUCCESS", "NOTIFY_FAILURE")
    }
    assert by_act["NOTIFY_FAILURE"] < 2.5 < 4 < by_act["NOTIFY_SUCCESS"]


def test_rating_follows_goal_outcomes(dialogues):
    def rating(outcome: bool) -> float:
        return mean(d.rating for d in dialogues if all(g.success == outcome for g in d.goals))

    assert rating(False) < 2 < 4 < rating(True)


def _labels(dialogues) -> dict[str, list[tuple[object, object]]]:
    """(reference, annotator label) pairs per kind of label, segment tags from the goal runs."""
    pairs: dict[str, list] = {k: [] for k in ("intent", "slots", "sat", "seg", "goal", "rating")}
    for d in dialogues:
        previous = None
        for t in d.turns:
            tag = "O" if t.goal_id is None else "I" if t.goal_id == previous else "B"
            previous = t.goal_id
            for a in t.annotations:
                pairs["intent"].append((t.intent, a.intent))
                pairs["slots"].append((t.slots, a.slots))
                pairs["sat"].append((t.satisfaction, a.satisfaction))
                pairs["seg"].append((tag, a.segment))
        pairs["goal"] += [(g.success, a.success) for g in d.goals for a in g.annotations]
        pairs["rating"] += [(d.rating, a.rating) for a in d.annotations]
    return pairs


def test_annotators_depart_from_the_reference_at_the_configured_rate():
    dialogues = list(generate(300, 11, SynthConfig(annotator_noise=0.2)))
    for kind, pairs in _labels(dialogues).items():
        rate = mean(truth != label for truth, label in pairs)
        assert 0.12 < rate < 0.28, (kind, rate)


def test_without_noise_annotators_agree_with_the_reference():
    dialogues = list(generate(50, 11, SynthConfig(annotators=4, annotator_noise=0.0)))
    for pairs in _labels(dialogues).values():
        assert all(truth == label for truth, label in pairs)
    assert all(len(d.annotations) == 4 for d in dialogues)


def test_every_label_has_at_least_three_annotators(dialogues):
    for d in dialogues:
        groups = [d.annotations] + [g.annotations for g in d.goals]
        groups += [t.annotations for t in d.turns]
        for group in groups:
            assert [a.annotator for a in group] == ["a0", "a1", "a2"]


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".parquet"])
def test_synthetic_logs_round_trip_through_the_canonical_files(tmp_path, suffix):
    path = tmp_path / f"log{suffix}"
    assert synth_to_file(path, 300, seed=2) == 300
    assert _json(read_canonical(path)) == _json(generate(300, seed=2))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"annotators": 2}, "annotators"),
        ({"annotator_noise": 1.5}, "annotator_noise"),
        ({"failure_rate": -0.1}, "failure_rate"),
        ({"barge_in_rate": 2.0}, "barge_in_rate"),
        ({"max_goals": 0}, "max_goals"),
    ],
)
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SynthConfig(**kwargs)


def test_negative_count_is_rejected_at_the_call():
    with pytest.raises(ValueError, match="n must be"):
        generate(-1, 0)


def test_domain_tables_only_name_their_own_slots():
    assert len(synth_domains.DOMAINS) >= 4
    for domain in synth_domains.DOMAINS:
        assert 2 <= len(domain.intents) <= 3
        for intent in domain.intents:
            assert set(intent.required) <= set(domain.slots)
            assert len(intent.openers) >= 3
            if intent.offer:
                assert len(intent.results) >= 2
            for template in intent.openers:
                fields = {f for _, f, _, _ in string.Formatter().parse(template) if f}
                assert fields <= set(domain.slots), (intent.name, template)
        for slot in domain.slots.values():
            assert all("{v}" in answer for answer in slot.answers)
