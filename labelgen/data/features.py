"""From a `Dialogue` to model inputs and targets: vocabularies, normalization, tokenization.

`FeatureSpace` is everything learned from the training data that the model depends on (label
and feature vocabularies, numerical statistics); it is saved with the model as JSON. A
`Featurizer` turns one dialogue into a columnar record, one list entry per turn, that the
collator pads into tensors. Absent labels become `IGNORE` so that losses mask them.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from labelgen.data.atomic import committed
from labelgen.data.schema import Dialogue, SlotSpan, Turn

IGNORE = -100
# Features are split by the side of the turn they describe, so that a pretraining corruption
# that swaps one side's text swaps its features along with it.
USER_CATEGORICAL = ("domain", "logged_intent")
SYSTEM_CATEGORICAL = ("dialogue_status",)
CATEGORICAL = USER_CATEGORICAL + SYSTEM_CATEGORICAL
USER_NUMERICAL = ("user_tokens", "asr_confidence", "nlu_confidence")
SYSTEM_NUMERICAL = ("system_tokens",)
NUMERICAL = USER_NUMERICAL + SYSTEM_NUMERICAL
FEEDBACK = ("barge_in", "rephrase", "rejection", "explicit_feedback")
SEGMENT_TAGS = ("B", "I", "O")
SATISFACTION_CLASSES = 5
MISSING, UNKNOWN = 0, 1
"""Reserved categorical ids: the feature is absent / its value was not seen in training."""
RESERVED = 2
"""Categorical ids below this are reserved; a feature's i-th value has id i + RESERVED."""


@dataclass
class FeatureSpace:
    intents: list[str] = field(default_factory=list)
    slots: list[str] = field(default_factory=list)
    categorical: dict[str, list[str]] = field(default_factory=dict)
    """Per feature, the values seen in training; value i has id i + 2."""
    numerical: dict[str, list[float]] = field(default_factory=dict)
    """Per feature, [mean, std] of the (log-scaled for counts) training values."""
    goal_outcomes: list[int] = field(default_factory=lambda: [0, 0])
    """Training goals that [failed, succeeded] (reference labels and annotator votes), for
    class-balanced goal-success losses."""
    domain_intents: dict[str, list[str]] = field(default_factory=dict)
    """Per domain, the intents its training turns carry (a domain with none is absent or
    empty, and then unconstrained): labeling keeps a turn of a known domain to them
    (`TaskConfig.within_domain`)."""
    domain_slots: dict[str, list[str]] = field(default_factory=dict)
    """Per domain whose training turns had their slots annotated (even as none), the slots
    they carry, from every frame of the turn."""

    @property
    def slot_tags(self) -> list[str]:
        return ["O"] + [f"{p}-{s}" for s in self.slots for p in ("B", "I")]

    def categorical_sizes(self) -> list[int]:
        return [len(self.categorical.get(name, [])) + RESERVED for name in CATEGORICAL]

    @classmethod
    def build(cls, dialogues: Iterable[Dialogue], min_count: int = 1) -> FeatureSpace:
        intents: Counter[str] = Counter()
        slots: Counter[str] = Counter()
        cats: dict[str, Counter[str]] = {name: Counter() for name in CATEGORICAL}
        sums = {name: [0, 0.0, 0.0] for name in NUMERICAL}
        outcomes = [0, 0]
        by_domain: dict[str, tuple[set[str], set[str] | None]] = {}
        for dialogue in dialogues:
            for goal in dialogue.goals or []:
                votes = [goal.success] + [a.success for a in goal.annotations or []]
                for success in votes:
                    if success is not None:
                        outcomes[int(success)] += 1
            for turn in dialogue.turns:
                if turn.intent is not None:
                    intents[turn.intent] += 1
                for span in _all_spans(turn):
                    slots[span.slot] += 1
                for ann in turn.annotations or []:
                    if ann.intent is not None:
                        intents[ann.intent] += 1
                if turn.domain is not None:
                    _domain_labels(turn, by_domain)
                for name in CATEGORICAL:
                    if (value := getattr(turn, name)) is not None:
                        cats[name][value] += 1
                for name, value in numerical_values(turn).items():
                    if value is not None:
                        acc = sums[name]
                        acc[0] += 1
                        acc[1] += value
                        acc[2] += value * value
        stats = {}
        for name, (n, total, squares) in sums.items():
            mean = total / n if n else 0.0
            var = squares / n - mean * mean if n else 1.0
            stats[name] = [mean, math.sqrt(var) if var > 1e-12 else 1.0]
        kept_intents = sorted(k for k, v in intents.items() if v >= min_count)
        kept_slots = sorted(k for k, v in slots.items() if v >= min_count)
        return cls(
            intents=kept_intents,
            slots=kept_slots,
            categorical={
                n: sorted(k for k, v in c.items() if v >= min_count) for n, c in cats.items()
            },
            numerical=stats,
            goal_outcomes=outcomes,
            domain_intents={
                d: sorted(i & set(kept_intents)) for d, (i, _) in sorted(by_domain.items()) if i
            },
            domain_slots={
                d: sorted(s & set(kept_slots))
                for d, (_, s) in sorted(by_domain.items())
                if s is not None
            },
        )

    def save(self, path: str | Path) -> None:
        """Whole or not at all: processes waiting to read it may open it at any moment."""
        with committed(path) as handle:
            handle.write(json.dumps(asdict(self), indent=1, sort_keys=True))

    @classmethod
    def load(cls, path: str | Path) -> FeatureSpace:
        return cls(**json.loads(Path(path).read_text()))


def _domain_labels(turn: Turn, by_domain: dict[str, tuple[set[str], set[str] | None]]) -> None:
    """Adds the turn's intents and slots to its domain's; the slots stay None while no turn
    of the domain had them annotated (None: nobody looked, not "this domain has none")."""
    intents, slots = by_domain.get(turn.domain, (set(), None))
    intents.update(i for i in [turn.intent, *(a.intent for a in turn.annotations or [])] if i)
    if turn.slots is not None or any(a.slots is not None for a in turn.annotations or []):
        slots = (slots or set()) | {span.slot for span in _all_spans(turn)}
    by_domain[turn.domain] = (intents, slots)


def _all_spans(turn: Turn) -> list[SlotSpan]:
    spans = list(turn.slots or [])
    for ann in turn.annotations or []:
        spans.extend(ann.slots or [])
    return spans


def numerical_values(turn: Turn) -> dict[str, float | None]:
    """Raw numerical features; token counts fall back to whitespace counts of the texts."""
    user_tokens = turn.user_tokens if turn.user_tokens is not None else len(turn.user_text.split())
    system_tokens = turn.system_tokens
    if system_tokens is None and turn.system_text is not None:
        system_tokens = len(turn.system_text.split())
    return {
        # Counts are heavy-tailed; log scale keeps a 300-word turn from dominating the batch.
        "user_tokens": math.log1p(user_tokens),
        "system_tokens": None if system_tokens is None else math.log1p(system_tokens),
        "asr_confidence": turn.asr_confidence,
        "nlu_confidence": turn.nlu_confidence,
    }


def _flag(value: bool | None) -> int:
    return IGNORE if value is None else int(value)


CHARS_PER_TOKEN = 100
"""Texts are cut at `max_*_tokens * CHARS_PER_TOKEN` characters before tokenizing: tokenizers
work through the whole text before they truncate (a 100,000-character utterance took 30-250 ms
for 48 tokens). Only an unknown-word token spans more than 100 characters (WordPiece's word
limit), so the cut leaves the kept tokens of real text as they were; like the truncation to
`max_*_tokens` itself, it is not counted."""

TOKEN_SHAPES = 11
"""Shape ids of a user token: 0 padding, then (lower, Capitalized, UPPER, has a digit, other)
x (starts a word, continues one)."""


def token_shape(text: str, start: int, end: int) -> int:
    """What an uncased encoder cannot see: the token's case and digits, and whether it opens
    a word (a value's B-tag falls on a word start; a word's pieces share its tag)."""
    piece = text[start:end]
    # most pieces are letters only, which holds no digit (no character is both): one call
    if not piece.isalpha() and any(c.isdigit() for c in piece):
        kind = 3
    elif piece[:1].isupper():
        kind = 2 if len(piece) > 1 and piece.isupper() else 1
    elif piece[:1].islower():
        kind = 0
    else:
        kind = 4
    opens = start == 0 or not text[start - 1].isalnum() or not piece[:1].isalnum()
    return 1 + 2 * kind + (0 if opens else 1)


ECHO_TAGS = ("O", "B", "I")
"""Tags of the echo task (stage 1): a run of user words that the turn's system response says
again, B on its first token, I on the rest."""

_STOP_WORDS = (
    "a about an and any are as at be but by can could did do does for from get have he her him "
    "his how i if in is it its just like me my need no not now of on one or our please she so "
    "some than that the their them then there they this to too up us want was we what when "
    "where which who will with would yes you your"
)
STOP_WORDS = frozenset(_STOP_WORDS.split())
"""English function words, never an echo: that a response repeats "the" or "for" says nothing
about which words carry the request."""

_WORD = re.compile(r"\w+")


def echo_tags(user: str, system: str, offsets: list) -> list[int]:
    """Each user token's `ECHO_TAGS` id: which of the user's words the system response repeats.

    No label is needed: an assistant confirms what it understood ("a table for 2 at Sushi Ko
    in San Jose?"), so an echoed word is far likelier than another to be one of the request's
    values, which the slot tagger must find (it may also be a slot's name: "the address is").
    Stage 1 tags them from unlabeled logs (`TaskConfig.weights["echo"]`), training the slot
    tagger's layers for the few labeled dialogues that follow. Words are compared lowercased,
    function words (`STOP_WORDS`) never count, and adjacent echoed words form one run."""
    said = {w.lower() for w in _WORD.findall(system)} - STOP_WORDS
    if not said:
        return [0] * len(offsets)
    # (start, end, tag of its first token) of each echoed word; I where a run goes on
    words, run = [], False
    for word in _WORD.finditer(user):
        echoed = word.group().lower() in said
        if echoed:
            words.append((word.start(), word.end(), 2 if run else 1))
        run = echoed
    tags, w, opened = [0] * len(offsets), 0, -1
    for i, (s, e) in enumerate(offsets):  # tokens and words both in text order
        while w < len(words) and words[w][1] <= s:
            w += 1
        if w == len(words):
            break
        start, end, first = words[w]
        if s < end and e > start:
            tags[i] = first if opened != w else 2
            opened = w
    return tags


def _head(text: str, max_tokens: int) -> str:
    return text[: max_tokens * CHARS_PER_TOKEN]


def direct_tokenizer(tokenizer: Any, max_tokens: int) -> Any | None:
    """A copy of a fast tokenizer's Rust backend, set up as `tokenizer(texts,
    add_special_tokens=False, truncation=True, max_length=max_tokens)` sets it up before every
    call: the same ids and offsets (tests/data/test_features.py compares them), without
    transformers converting each encoding to a dict of lists: the featurizer takes 0.79 of the
    time it took through transformers (scripts/benchmark_featurize.py, SGD dev). None for a
    tokenizer without one (a slow, Python tokenizer is called as it is)."""
    fast = getattr(tokenizer, "is_fast", False)
    backend = getattr(tokenizer, "backend_tokenizer", None) if fast else None
    if backend is None:
        return None
    from tokenizers import Tokenizer

    # a copy: the tokenizer sets its backend's truncation again at each call of its own
    direct = Tokenizer.from_str(backend.to_str())
    direct.no_padding()
    direct.enable_truncation(
        max_tokens, stride=0, strategy="longest_first", direction=tokenizer.truncation_side
    )
    direct.encode_special_tokens = getattr(tokenizer, "split_special_tokens", False)
    return direct


class Featurizer:
    """One `Dialogue` -> one columnar record of token ids, features and targets."""

    def __init__(
        self,
        tokenizer: Any,
        space: FeatureSpace,
        max_user_tokens: int = 48,
        max_system_tokens: int = 48,
        direct: bool = True,
    ) -> None:
        """`direct`: tokenize through the fast tokenizer's Rust backend (`direct_tokenizer`);
        False calls the tokenizer itself, as before (the same records, slower: kept to
        measure against)."""
        self.tokenizer = tokenizer
        self.space = space
        self.max_user_tokens = max_user_tokens
        self.max_system_tokens = max_system_tokens
        self._users = direct_tokenizer(tokenizer, max_user_tokens) if direct else None
        self._systems = direct_tokenizer(tokenizer, max_system_tokens) if direct else None
        self._intent = {name: i for i, name in enumerate(space.intents)}
        self._tag = {name: i for i, name in enumerate(space.slot_tags)}
        self._cat = {
            name: {v: i + RESERVED for i, v in enumerate(space.categorical.get(name, []))}
            for name in CATEGORICAL
        }

    def __call__(self, dialogue: Dialogue) -> dict[str, Any]:
        turns = dialogue.turns
        user_ids, user_offsets = self._tokenize(
            [_head(t.user_text, self.max_user_tokens) for t in turns],
            self._users,
            self.max_user_tokens,
            offsets=True,
        )
        systems = self._tokenize(
            [_head(t.system_text or "", self.max_system_tokens) for t in turns],
            self._systems,
            self.max_system_tokens,
        )[0]
        goal_index = {g.goal_id: i for i, g in enumerate(dialogue.goals or [])}
        record: dict[str, Any] = {
            "dialogue_id": dialogue.dialogue_id,
            "n_turns": len(turns),
            "user_ids": user_ids,
            "user_offsets": [[list(o) for o in offs] for offs in user_offsets],
            "user_shapes": [
                [token_shape(t.user_text, s, e) for s, e in offs]
                for t, offs in zip(turns, user_offsets, strict=True)
            ],
            "system_ids": systems,
            "echo_tags": [
                echo_tags(t.user_text, t.system_text or "", offs)
                for t, offs in zip(turns, user_offsets, strict=True)
            ],
            "categorical_user": [self._categorical(t, USER_CATEGORICAL) for t in turns],
            "categorical_system": [self._categorical(t, SYSTEM_CATEGORICAL) for t in turns],
            "audio_path": [t.audio_path for t in turns],
            "intent": [self._intent.get(t.intent, IGNORE) for t in turns],
            "intent_votes": [self._votes(t, "intent", self._intent) for t in turns],
            "slot_tags": [
                self._slot_tags(t.slots, offs) for t, offs in zip(turns, user_offsets, strict=True)
            ],
            "segment": self._segments(dialogue),
            "segment_votes": [
                [SEGMENT_TAGS.index(a.segment) for a in t.annotations or [] if a.segment]
                for t in turns
            ],
            "goal": [goal_index.get(t.goal_id, -1) for t in turns],
            "satisfaction": [
                IGNORE if t.satisfaction is None else t.satisfaction - 1 for t in turns
            ],
            "satisfaction_votes": [
                [a.satisfaction - 1 for a in t.annotations or [] if a.satisfaction is not None]
                for t in turns
            ],
            "goals": {
                "success": [_flag(g.success) for g in dialogue.goals or []],
                "votes": [
                    [int(a.success) for a in g.annotations or [] if a.success is not None]
                    for g in dialogue.goals or []
                ],
            },
        }
        for name in FEEDBACK:
            record[name] = [_flag(getattr(t, name)) for t in turns]
        for side, names in (("user", USER_NUMERICAL), ("system", SYSTEM_NUMERICAL)):
            columns = [self._numerical(t, names) for t in turns]
            record[f"numerical_{side}"] = [values for values, _ in columns]
            record[f"numerical_{side}_mask"] = [mask for _, mask in columns]
        return record

    def _tokenize(
        self, texts: list[str], direct: Any, max_tokens: int, offsets: bool = False
    ) -> tuple[list[list[int]], list[list[tuple[int, int]]] | None]:
        """Each text's token ids (no special tokens, at most `max_tokens`), and with `offsets`
        each token's character span."""
        if direct is not None:
            encodings = direct.encode_batch(texts, add_special_tokens=False)
            return [e.ids for e in encodings], [e.offsets for e in encodings] if offsets else None
        out = self.tokenizer(
            texts,
            add_special_tokens=False,
            return_offsets_mapping=offsets,
            truncation=True,
            max_length=max_tokens,
        )
        return out["input_ids"], out["offset_mapping"] if offsets else None

    def _categorical(self, turn: Turn, names: tuple[str, ...]) -> list[int]:
        ids = []
        for name in names:
            value = getattr(turn, name)
            ids.append(MISSING if value is None else self._cat[name].get(value, UNKNOWN))
        return ids

    def _numerical(self, turn: Turn, names: tuple[str, ...]) -> tuple[list[float], list[int]]:
        values, mask = [], []
        raw = numerical_values(turn)
        for name in names:
            value = raw[name]
            mean, std = self.space.numerical.get(name, (0.0, 1.0))
            values.append(0.0 if value is None else (value - mean) / std)
            mask.append(int(value is not None))
        return values, mask

    @staticmethod
    def _votes(turn: Turn, name: str, vocab: dict[str, int]) -> list[int]:
        votes = (getattr(a, name) for a in turn.annotations or [])
        return [vocab[v] for v in votes if v in vocab]

    def _slot_tags(self, slots: list[SlotSpan] | None, offsets: list) -> list[int]:
        if slots is None:
            return [IGNORE] * len(offsets)
        tags = [0] * len(offsets)
        for span in slots:
            inside = [i for i, (s, e) in enumerate(offsets) if s < span.end and e > span.start]
            for k, i in enumerate(inside):
                prefix = "B" if k == 0 else "I"
                tags[i] = self._tag.get(f"{prefix}-{span.slot}", 0)
        return tags

    @staticmethod
    def _segments(dialogue: Dialogue) -> list[int]:
        if dialogue.goals is None:
            return [IGNORE] * len(dialogue.turns)
        tags, previous = [], None
        for turn in dialogue.turns:
            if turn.goal_id is None:
                tags.append(SEGMENT_TAGS.index("O"))
            else:
                tags.append(SEGMENT_TAGS.index("I" if turn.goal_id == previous else "B"))
            previous = turn.goal_id
        return tags
