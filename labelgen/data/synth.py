"""Synthetic task-oriented dialogue logs: the built-in default data.

A simulated user pursues one to a few goals with a system whose NLU sometimes misunderstands.
Each misunderstanding leaves the traces a real log shows: low confidences, a wrong logged
intent, a rephrase or a rejection in the next utterance, more barge-ins, lower satisfaction and
more failed goals. Simulated annotators then label every dialogue, each with their own noise.

Dialogue i is a pure function of (seed, i, config), so `generate` streams any number of
dialogues in constant memory and any slice of a corpus can be regenerated alone.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from functools import partial
from pathlib import Path
from typing import Any

from labelgen.data import synth_domains as lang
from labelgen.data.canonical import CanonicalWriter
from labelgen.data.schema import Dialogue
from labelgen.data.synth_domains import Domain, Intent

_FORMATTER = string.Formatter()
_WORD = re.compile(r"\w[\w']*")
_ERROR_PENALTY = 0.15
"""Added to a goal's failure probability per misunderstanding in it."""
_MAX_ERRORS = 3
"""Misunderstandings per goal, so that even a rate of 1 ends."""
# (alpha, beta) of the ASR and NLU confidences for a turn understood right, misheard into a
# wrong interpretation, or not understood at all (the system says so).
_CONFIDENCE = {None: ((9, 1.5), (8, 1.5)), "wrong": ((3, 3), (5, 3)), "unsure": ((2.5, 3), (2, 5))}
_INTENTS = [(d, i) for d in lang.DOMAINS for i in d.intents]
_INTENT_NAMES = [i.name for _, i in _INTENTS] + [lang.NO_INTENT]
_SIBLINGS = {i.name: [j.name for j in d.intents if j is not i] for d, i in _INTENTS}
_SLOT_NAMES = sorted({s for d in lang.DOMAINS for s in d.slots})


@dataclass
class SynthConfig:
    annotators: int = 3
    """Annotators per dialogue, with ids a0, a1, ...; at least 3, so that a majority exists."""
    annotator_noise: float = 0.15
    """Mean probability that an annotator's label departs from the reference label."""
    annotator_spread: float = 0.5
    """Annotators' noise levels spread evenly over annotator_noise * (1 +- spread)."""
    max_goals: int = 3
    """Each dialogue pursues 1..max_goals goals, in one domain or several."""
    misunderstanding_rate: float = 0.12
    """Probability that the system misunderstands a user request or answer."""
    failure_rate: float = 0.15
    """Probability that a goal fails without misunderstandings; each one adds 0.15."""
    barge_in_rate: float = 0.05
    """Probability of interrupting a short correct response; wrong or long ones get more."""
    explicit_feedback_rate: float = 0.3
    """Probability that the system asks "Did I answer your question?" after a goal."""
    closing_rate: float = 0.85
    """Probability that the user says goodbye instead of just leaving."""

    def __post_init__(self) -> None:
        if self.annotators < 3:
            raise ValueError(f"annotators must be at least 3 for a majority, got {self.annotators}")
        if self.max_goals < 1:
            raise ValueError(f"max_goals must be at least 1, got {self.max_goals}")
        for field in fields(self):
            value = getattr(self, field.name)
            if field.type == "float" and not 0.0 <= value <= 1.0:
                raise ValueError(f"{field.name} must be a probability in [0, 1], got {value}")


def generate(n: int, seed: int, config: SynthConfig | None = None) -> Iterator[Dialogue]:
    """`n` validated dialogues, made one at a time; the i-th depends only on (seed, i, config)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    config = config or SynthConfig()
    return _stream(n, seed, config, _annotator_noise(seed, config))


def synth_to_file(path: str | Path, n: int, seed: int, config: SynthConfig | None = None) -> int:
    """Writes `generate(n, seed, config)` as a canonical log (.jsonl, .jsonl.gz, .parquet)."""
    with CanonicalWriter(path) as writer:
        writer.write_all(generate(n, seed, config))
    return writer.count


def _stream(n: int, seed: int, config: SynthConfig, noise: list[float]) -> Iterator[Dialogue]:
    for i in range(n):
        dialogue_id = f"synth-{seed}-{i:07d}"
        record = _Simulator(random.Random(f"{seed}:{i}"), config, dialogue_id).run()
        # A stream of its own, so that the annotator settings never change the dialogues.
        _annotate(record, random.Random(f"{seed}:{i}:annotators"), noise)
        yield Dialogue.model_validate(record)


def _annotator_noise(seed: int, config: SynthConfig) -> list[float]:
    # Evenly spread levels average exactly annotator_noise; the shuffle keeps a0 from always
    # being the best annotator.
    k = config.annotators
    levels = [
        config.annotator_noise * (1 + config.annotator_spread * (2 * j / (k - 1) - 1))
        for j in range(k)
    ]
    random.Random(f"{seed}:annotators").shuffle(levels)
    return [min(1.0, level) for level in levels]


@dataclass
class _Utterance:
    text: str
    spans: list[dict[str, Any]]
    acts: list[str]
    template: str


def _fill(
    template: str, values: dict[str, str], prefix: str = ""
) -> tuple[str, list[dict[str, Any]]]:
    """`prefix` + `template` filled from `values`, with the exact span of every slot it names."""
    parts, spans, pos = [prefix], [], len(prefix)
    for literal, slot, _, _ in _FORMATTER.parse(template):
        parts.append(literal)
        pos += len(literal)
        if slot is not None:
            value = values[slot]
            spans.append({"slot": slot, "start": pos, "end": pos + len(value), "value": value})
            parts.append(value)
            pos += len(value)
    text = "".join(parts)
    if not any(span["start"] == 0 for span in spans):
        text = text[0].upper() + text[1:]
    return text, spans


def _plain(text: str, acts: list[str]) -> _Utterance:
    return _Utterance(text[0].upper() + text[1:], [], list(acts), text)


def _pick_values(rng: random.Random, domain: Domain) -> dict[str, str]:
    # Distinct values, so a flight never goes from Paris to Paris.
    values: dict[str, str] = {}
    for name, slot in domain.slots.items():
        choices = [v for v in slot.values if v not in values.values()]
        values[name] = rng.choice(choices)
    return values


class _Simulator:
    """One dialogue: a user with goals talking to a system that sometimes misunderstands."""

    def __init__(self, rng: random.Random, config: SynthConfig, dialogue_id: str) -> None:
        self.rng, self.config, self.dialogue_id = rng, config, dialogue_id
        self.turns: list[dict[str, Any]] = []
        self.goals: list[dict[str, Any]] = []
        self.goal: tuple[str, Domain, Intent] | None = None
        self.errors = 0

    def run(self) -> dict[str, Any]:
        rng = self.rng
        opening = rng.choice(lang.OPENINGS) if rng.random() < 0.8 else None
        prefixes = lang.FIRST_GOAL_PREFIXES
        if rng.random() < 0.1:
            text, reply = rng.choice(lang.SMALL_TALK)
            self._emit(_plain(text, ["GREETING"]), reply, ["GREETING", "REQ_MORE"], "idle", 4)
            prefixes = ("",)
        domain = rng.choice(lang.DOMAINS)
        for k in range(rng.randint(1, self.config.max_goals)):
            # Follow-up goals often stay in the domain (find a restaurant, then book it).
            if k and rng.random() < 0.6:
                domain = rng.choice(lang.DOMAINS)
            self._goal(f"g{k}", domain, rng.choice(domain.intents), rng.choice(prefixes))
            prefixes = lang.NEXT_GOAL_PREFIXES
        if rng.random() < self.config.closing_rate:
            text, acts = rng.choice(lang.CLOSINGS)
            happy = all(goal["success"] for goal in self.goals)
            self._emit(
                _plain(text, acts),
                "You're welcome, goodbye!",
                ["GOODBYE"],
                "ended",
                4 if happy else 3,
            )
        for turn in self.turns[:-1]:
            turn.setdefault("rephrase", False)
            turn.setdefault("rejection", False)
        return {
            "dialogue_id": self.dialogue_id,
            "system_opening": opening,
            "turns": self.turns,
            "goals": self.goals,
            "rating": self._rating(),
        }

    def _rating(self) -> int:
        success = sum(goal["success"] for goal in self.goals) / len(self.goals)
        return max(1, min(5, 1 + round(4 * success) - (self.errors >= 2)))

    def _goal(self, goal_id: str, domain: Domain, intent: Intent, prefix: str) -> None:
        rng = self.rng
        self.goal = (goal_id, domain, intent)
        values = _pick_values(rng, domain)
        utt = self._opener(intent, values, prefix)
        filled: set[str] = set()
        errors = 0
        while True:
            filled.update(span["slot"] for span in utt.spans)
            if errors < _MAX_ERRORS and rng.random() < self.config.misunderstanding_rate:
                errors += 1
                utt = self._misunderstand(utt, values, errors)
                continue
            missing = [slot for slot in intent.required if slot not in filled]
            if not missing:
                break
            self._emit(utt, domain.slots[missing[0]].ask, ["REQUEST"], "in_progress", 4)
            utt = self._inform(domain, missing[0], values, "")
        self.errors += errors
        fail = min(0.95, self.config.failure_rate + _ERROR_PENALTY * errors)
        success = rng.random() >= fail
        values["result"] = rng.choice(intent.results) if intent.results else ""
        if intent.confirm:
            task = intent.task.format_map(values)
            self._emit(utt, f"Should I {task}?", ["CONFIRM"], "confirming", 4)
            utt = _plain(rng.choice(lang.AFFIRMS), ["AFFIRM"])
        elif intent.offer and success:
            utt = self._offer(utt, intent, values)
        self._conclude(utt, intent, values, success, errors)

    def _opener(
        self, intent: Intent, values: dict[str, str], prefix: str, avoid: str = ""
    ) -> _Utterance:
        template = self.rng.choice([t for t in intent.openers if t != avoid])
        text, spans = _fill(template, values, prefix)
        acts = ["NEGATE"] if prefix in lang.NEGATE_PREFIXES else []
        acts += ["INFORM_INTENT", "INFORM"] if spans else ["INFORM_INTENT"]
        return _Utterance(text, spans, acts, template)

    def _inform(
        self, domain: Domain, slot: str, values: dict[str, str], prefix: str, avoid: str = ""
    ) -> _Utterance:
        answers = domain.slots[slot].answers
        template = self.rng.choice([a for a in answers if a != avoid] or answers)
        text, spans = _fill(template.replace("{v}", "{" + slot + "}"), values, prefix)
        return _Utterance(text, spans, ["INFORM"], template)

    def _misunderstand(self, utt: _Utterance, values: dict[str, str], errors: int) -> _Utterance:
        """Emits the misunderstood turn and returns the user's reaction to it."""
        rng = self.rng
        _, domain, intent = self.goal
        request = "INFORM_INTENT" in utt.acts
        if rng.random() < 0.35:
            # The NLU knows it is lost: the system asks again and the user says it differently.
            logged = rng.choice(_INTENTS)
            self._emit(
                utt,
                rng.choice(lang.REPEAT_REQUESTS),
                ["REQUEST_REPEAT"],
                "in_progress",
                max(1, 4 - errors),
                error="unsure",
                logged=logged,
            )
            self.turns[-1]["rephrase"] = True
            if request:
                return self._opener(
                    intent, values, rng.choice(lang.REPHRASE_PREFIXES), avoid=utt.template
                )
            slot = utt.spans[0]["slot"]
            prefix = rng.choice(lang.INFORM_REPEAT_PREFIXES)
            return self._inform(domain, slot, values, prefix, avoid=utt.template)
        if request:
            # Heard as another intent: the system pursues it, the user restates the request.
            logged = rng.choice([(d, i) for d, i in _INTENTS if i is not intent])
            text, acts = self._pursue(*logged)
            self._emit(
                utt, text, acts, "in_progress", max(1, 3 - errors), error="wrong", logged=logged
            )
            negate = rng.random() < 0.5
            self.turns[-1].update(rephrase=True, rejection=negate)
            prefixes = lang.NEGATE_PREFIXES if negate else lang.REPHRASE_PREFIXES
            return self._opener(intent, values, rng.choice(prefixes), avoid=utt.template)
        # A misheard value: the system checks it and the user corrects it.
        slot = utt.spans[0]["slot"]
        wrong = rng.choice([v for v in domain.slots[slot].values if v != values[slot]])
        self._emit(
            utt,
            f"Did you say {wrong}?",
            ["CONFIRM"],
            "confirming",
            max(1, 3 - errors),
            error="wrong",
        )
        self.turns[-1]["rejection"] = True
        text, spans = _fill(rng.choice(lang.CORRECTIONS).replace("{v}", "{" + slot + "}"), values)
        return _Utterance(text, spans, ["NEGATE", "INFORM"], text)

    def _pursue(self, domain: Domain, intent: Intent) -> tuple[str, list[str]]:
        """What the system says when it takes the user to mean `intent`."""
        if intent.required:
            return domain.slots[intent.required[0]].ask, ["REQUEST"]
        values = {**_pick_values(self.rng, domain), "result": self.rng.choice(intent.results)}
        return intent.done.format_map(values), ["NOTIFY_SUCCESS"]

    def _offer(self, utt: _Utterance, intent: Intent, values: dict[str, str]) -> _Utterance:
        """Offers results until the user takes one; returns the user's acceptance."""
        results = self.rng.sample(intent.results, len(intent.results))
        for k, result in enumerate(results):
            values["result"] = result
            self._emit(utt, f"How about {result}?", ["OFFER"], "in_progress", 4)
            if k == len(results) - 1 or self.rng.random() >= 0.3:
                break
            self.turns[-1].update(rejection=True, satisfaction=3)
            utt = _plain(self.rng.choice(lang.REQUEST_ALTS), ["REQUEST_ALTS"])
        return _plain(self.rng.choice(lang.ACCEPTS), ["AFFIRM"])

    def _conclude(
        self, utt: _Utterance, intent: Intent, values: dict[str, str], success: bool, errors: int
    ) -> None:
        rng = self.rng
        goal_id = self.goal[0]
        if success:
            text, acts = intent.done.format_map(values), ["NOTIFY_SUCCESS"]
            status, satisfaction = "completed", 5 if errors == 0 else 4
        else:
            text = f"Sorry, I could not {intent.task.format_map(values)}."
            acts, status, satisfaction = ["NOTIFY_FAILURE"], "failed", 1 if errors else 2
        ask = rng.random() < self.config.explicit_feedback_rate
        question = rng.choice(lang.FEEDBACK_QUESTIONS) if ask else "Anything else?"
        text, acts = f"{text} {question}", [*acts, "REQUEST_FEEDBACK" if ask else "REQ_MORE"]
        self._emit(utt, text, acts, status, satisfaction)
        self.goals.append({"goal_id": goal_id, "intent": intent.name, "success": success})
        self.goal = None
        if ask:
            self.turns[-1]["explicit_feedback"] = success
            answer, answer_acts = rng.choice(lang.FEEDBACK_YES if success else lang.FEEDBACK_NO)
            reply = "Glad I could help." if success else "Sorry about that."
            self._emit(
                _plain(answer, answer_acts),
                f"{reply} Anything else?",
                ["REQ_MORE"],
                "idle",
                4 if success else 3,
            )

    def _emit(
        self,
        utt: _Utterance,
        system_text: str,
        system_acts: list[str],
        status: str,
        satisfaction: int,
        error: str | None = None,
        logged: tuple[Domain, Intent] | None = None,
    ) -> None:
        """Appends the turn of `utt` and the system's response to it."""
        rng = self.rng
        goal_id, domain, intent = self.goal or (None, None, None)
        if logged is None and intent is not None:
            logged = (domain, intent)
        (asr_a, asr_b), (nlu_a, nlu_b) = _CONFIDENCE[error]
        system_tokens = len(system_text.split())
        barge_in = self.config.barge_in_rate * (4 if error else 1) * (1 + system_tokens / 15)
        self.turns.append(
            {
                "turn_id": f"{self.dialogue_id}:{len(self.turns)}",
                "user_text": utt.text,
                "system_text": system_text,
                "domain": logged[0].name if logged else lang.NO_DOMAIN,
                "logged_intent": logged[1].name if logged else lang.NO_INTENT,
                "dialogue_status": status,
                "user_tokens": len(utt.text.split()),
                "system_tokens": system_tokens,
                "asr_confidence": round(rng.betavariate(asr_a, asr_b), 3),
                "nlu_confidence": round(rng.betavariate(nlu_a, nlu_b), 3),
                "barge_in": rng.random() < barge_in,
                "intent": intent.name if intent else lang.NO_INTENT,
                "slots": utt.spans,
                "goal_id": goal_id,
                "user_acts": utt.acts,
                "system_acts": system_acts,
                "satisfaction": satisfaction,
            }
        )


def _annotate(record: dict[str, Any], rng: random.Random, noise: list[float]) -> None:
    """Adds each annotator's labels: the reference, departed from with their noise level."""
    annotators = [(f"a{j}", q) for j, q in enumerate(noise)]
    turns = record["turns"]
    tags = _segments(turns)
    for k, turn in enumerate(turns):
        wrong_slots = partial(_noisy_slots, text=turn["user_text"])
        wrong_segment = partial(_noisy_segment, after_goal=k > 0 and tags[k - 1] != "O")
        turn["annotations"] = [
            {
                "annotator": name,
                "intent": _label(rng, q, turn["intent"], _noisy_intent),
                "slots": _label(rng, q, turn["slots"], wrong_slots),
                "satisfaction": _label(rng, q, turn["satisfaction"], _nudge),
                "segment": _label(rng, q, tags[k], wrong_segment),
            }
            for name, q in annotators
        ]
    for goal in record["goals"]:
        goal["annotations"] = [
            {"annotator": name, "success": _label(rng, q, goal["success"], _flip)}
            for name, q in annotators
        ]
    # The first impression judges no turn, so it has no reference label; only annotators see it.
    opening = rng.choice((3, 4, 4, 5)) if record["system_opening"] else 3
    record["annotations"] = [
        {
            "annotator": name,
            "rating": _label(rng, q, record["rating"], _nudge),
            "opening_satisfaction": _label(rng, q, opening, _nudge),
        }
        for name, q in annotators
    ]
    # Low ratings come with a reason, as JDDC's annotators give; fixed text, so that the
    # random stream (and every log generated before explanations existed) stays the same.
    for annotation in record["annotations"]:
        if annotation["rating"] <= 2:
            annotation["explanation"] = "the system did not get the user what they asked for"


def _label(rng: random.Random, noise: float, truth: Any, depart: Callable[..., Any]) -> Any:
    """`truth`, or with probability `noise` `depart(truth, rng)`, which always differs from it."""
    return depart(truth, rng) if rng.random() < noise else truth


def _segments(turns: list[dict[str, Any]]) -> list[str]:
    tags, previous = [], None
    for turn in turns:
        goal_id = turn["goal_id"]
        tags.append("O" if goal_id is None else "I" if goal_id == previous else "B")
        previous = goal_id
    return tags


def _noisy_segment(tag: str, rng: random.Random, after_goal: bool) -> str:
    # Annotators misplace goal boundaries (split a goal, merge two, or attach a closing turn to
    # the goal before it) rather than write impossible tag sequences.
    if tag == "I":
        return "B"
    return "I" if after_goal else "O" if tag == "B" else "B"


def _noisy_intent(intent: str, rng: random.Random) -> str:
    # Most confusions are between sibling intents of one domain.
    siblings = _SIBLINGS.get(intent)
    if siblings and rng.random() < 0.6:
        return rng.choice(siblings)
    return rng.choice([name for name in _INTENT_NAMES if name != intent])


def _noisy_slots(
    spans: list[dict[str, Any]], rng: random.Random, text: str
) -> list[dict[str, Any]]:
    spans = [dict(span) for span in spans]
    if spans and rng.random() < 0.5:
        spans.pop(rng.randrange(len(spans)))
    elif spans:
        span = rng.choice(spans)
        span["slot"] = rng.choice([s for s in _SLOT_NAMES if s != span["slot"]])
    else:
        word = rng.choice(list(_WORD.finditer(text)))
        spans.append(
            {
                "slot": rng.choice(_SLOT_NAMES),
                "start": word.start(),
                "end": word.end(),
                "value": word.group(),
            }
        )
    return spans


def _flip(success: bool, rng: random.Random) -> bool:
    return not success


def _nudge(rating: int, rng: random.Random) -> int:
    if rating in (1, 5):
        return 2 if rating == 1 else 4
    return rating + rng.choice((-1, 1))
