"""The dialogue-log data contract: one `Dialogue` holds ordered `Turn`s.

One turn is a user utterance plus the system response to it. Every field but the ids and the
user text is optional, and `None` always means "not in this log", never "false" or "empty":
`slots=[]` says the turn was annotated and has no slots, `slots=None` says nobody looked.

Where a label judges a system response it sits on the turn that holds that response: feedback
(`barge_in`, `rephrase`, `rejection`, `explicit_feedback`) and satisfaction on turn k are the
user's reaction to turn k's system response, even when the reaction is seen in turn k+1.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

NonEmptyStr = Annotated[str, Field(min_length=1)]
Rating = Annotated[int, Field(ge=1, le=5)]
Confidence = Annotated[float, Field(ge=0.0, le=1.0)]
# Parquet stores counts as int64: a larger one would read fine and then fail every writer.
Count = Annotated[int, Field(ge=0, le=2**63 - 1)]
SegmentTag = Literal["B", "I", "O"]


class _Record(BaseModel):
    # strict: a log that says "3" where a rating belongs is broken, not something to guess at.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class SlotSpan(_Record):
    """A typed span of the user text: `user_text[start:end] == value`."""

    slot: NonEmptyStr
    start: Count
    end: Count
    value: str | None = None
    """Surface text of the span; filled from the user text when a log gives offsets only."""


class TurnAnnotation(_Record):
    """One annotator's labels for one turn."""

    annotator: str | None = None
    """Annotator id when the log has one (USS gives ratings by position only)."""
    intent: str | None = None
    slots: list[SlotSpan] | None = None
    satisfaction: Rating | None = None
    """1-5 rating of this turn's system response."""
    segment: SegmentTag | None = None
    """Goal segmentation tag: B begins a goal, I continues one, O belongs to no goal."""


class GoalAnnotation(_Record):
    annotator: str | None = None
    success: bool | None = None


class Goal(_Record):
    goal_id: NonEmptyStr
    intent: str | None = None
    success: bool | None = None
    annotations: list[GoalAnnotation] | None = None


class DialogueAnnotation(_Record):
    annotator: str | None = None
    rating: Rating | None = None
    """Overall rating of the dialogue."""
    opening_satisfaction: Rating | None = None
    """Rating given at the first user utterance, which judges no turn's response (USS)."""
    explanation: str | None = None
    """The annotator's own words on why the dialogue got its rating (USS JDDC)."""


class Turn(_Record):
    turn_id: NonEmptyStr
    user_text: str
    system_text: str | None = None
    # Categorical features.
    domain: str | None = None
    logged_intent: str | None = None
    """The intent the logging system's NLU produced, right or wrong (a feature, not a label)."""
    dialogue_status: str | None = None
    # Numerical features.
    user_tokens: Count | None = None
    system_tokens: Count | None = None
    asr_confidence: Confidence | None = None
    nlu_confidence: Confidence | None = None
    audio_path: NonEmptyStr | None = None
    """Audio of the user utterance, relative to an audio root chosen at read time."""
    # Feedback on this turn's system response.
    barge_in: bool | None = None
    """The user interrupted this turn's system response."""
    rephrase: bool | None = None
    """The next user utterance rephrases this turn's request."""
    rejection: bool | None = None
    """The next user utterance rejects or corrects this turn's system response."""
    explicit_feedback: bool | None = None
    """The user's answer to "did I answer your question?" about this turn."""
    # Reference labels.
    intent: str | None = None
    slots: list[SlotSpan] | None = None
    goal_id: NonEmptyStr | None = None
    """Goal this turn serves; `None` in a dialogue with `goals` means it serves no goal."""
    user_acts: list[str] | None = None
    system_acts: list[str] | None = None
    satisfaction: Rating | None = None
    annotations: list[TurnAnnotation] | None = None

    @model_validator(mode="after")
    def _check_text_and_spans(self) -> Turn:
        if not self.user_text.strip():
            raise ValueError("user_text is empty")
        spans = list(self.slots or [])
        for ann in self.annotations or []:
            spans.extend(ann.slots or [])
        for span in spans:
            if span.end <= span.start or span.end > len(self.user_text):
                raise ValueError(
                    f"slot {span.slot!r} span [{span.start}, {span.end}) is outside the "
                    f"user text of length {len(self.user_text)} or empty"
                )
            surface = self.user_text[span.start : span.end]
            if span.value is None:
                span.value = surface
            elif span.value != surface:
                raise ValueError(
                    f"slot {span.slot!r} value {span.value!r} differs from the text at its "
                    f"span, {surface!r}"
                )
        return self


class Dialogue(_Record):
    dialogue_id: NonEmptyStr
    turns: list[Turn] = Field(min_length=1)
    system_opening: str | None = None
    """What the system said before the first user utterance, if anything."""
    goals: list[Goal] | None = None
    """Reference goals; present means every turn's `goal_id` is labeled (None = no goal)."""
    rating: Rating | None = None
    annotations: list[DialogueAnnotation] | None = None
    _source: str | None = PrivateAttr(default=None)

    @property
    def source(self) -> str | None:
        """Where the record was read from (`file:line`, `file#index`); not part of the data."""
        return self._source

    @model_validator(mode="before")
    @classmethod
    def _default_turn_ids(cls, data: Any) -> Any:
        # Users' own logs rarely carry turn ids; a position-based id is stable for a stable log.
        if not isinstance(data, dict) or not isinstance(data.get("turns"), list):
            return data
        dialogue_id = data.get("dialogue_id")
        turns = [
            {**t, "turn_id": f"{dialogue_id}:{i}"}
            if isinstance(t, dict) and t.get("turn_id") is None
            else t
            for i, t in enumerate(data["turns"])
        ]
        return {**data, "turns": turns}

    @model_validator(mode="after")
    def _check_ids(self) -> Dialogue:
        turn_ids = [t.turn_id for t in self.turns]
        if len(set(turn_ids)) != len(turn_ids):
            raise ValueError("duplicate turn_id within the dialogue")
        goal_ids = {g.goal_id for g in self.goals or []}
        if self.goals is not None and len(goal_ids) != len(self.goals):
            raise ValueError("duplicate goal_id within the dialogue")
        for i, turn in enumerate(self.turns):
            if turn.goal_id is not None and turn.goal_id not in goal_ids:
                raise ValueError(
                    f"turns.{i}.goal_id {turn.goal_id!r} is not one of the dialogue's goals"
                )
        return self

    def to_json_dict(self) -> dict[str, Any]:
        """The canonical JSON form: absent fields are left out, empty lists kept."""
        return self.model_dump(mode="json", exclude_none=True)


def explain(error: ValidationError, limit: int = 3) -> str:
    """One line naming where each (of the first few) contract violations is."""
    parts = []
    for err in error.errors()[:limit]:
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    more = error.error_count() - limit
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")
