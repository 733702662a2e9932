"""Counts over a log: what `labelgen inspect` prints, and what tests check readers against."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from labelgen.data.rejects import Reject
from labelgen.data.schema import Dialogue

TURN_LABELS = ("intent", "slots", "goal_id", "satisfaction", "user_acts", "system_acts")
TURN_FEEDBACK = ("barge_in", "rephrase", "rejection", "explicit_feedback")
LABEL_KINDS = (
    *TURN_LABELS,
    *TURN_FEEDBACK,
    "slot_spans",
    "goals",
    "goal_success",
    "rating",
    "system_opening",
)
ANNOTATOR_LABEL_KINDS = (
    "intent",
    "slots",
    "satisfaction",
    "segment",
    "goal_success",
    "dialogue_rating",
    "dialogue_opening_satisfaction",
    "dialogue_explanation",
)
TURN_FEATURES = (
    "system_text",
    "domain",
    "logged_intent",
    "dialogue_status",
    "user_tokens",
    "system_tokens",
    "asr_confidence",
    "nlu_confidence",
    "audio_path",
)


@dataclass
class LogSummary:
    dialogues: int = 0
    turns: int = 0
    rejected: int = 0
    labels: Counter[str] = field(default_factory=Counter)
    """Label kind -> number of items carrying it (turns, goals or dialogues as the kind says)."""
    annotator_labels: Counter[str] = field(default_factory=Counter)
    """Label kind -> number of per-annotator labels."""
    features: Counter[str] = field(default_factory=Counter)
    domains: Counter[str] = field(default_factory=Counter)
    max_annotators: int = 0
    reject_reasons: Counter[str] = field(default_factory=Counter)

    def add(self, item: Dialogue | Reject) -> None:
        if isinstance(item, Reject):
            self.rejected += 1
            self.reject_reasons[item.reason.split(":")[0][:80]] += 1
            return
        self.dialogues += 1
        self.turns += len(item.turns)
        for turn in item.turns:
            self._count(turn, TURN_LABELS, self.labels)
            self._count(turn, TURN_FEEDBACK, self.labels)
            self._count(turn, TURN_FEATURES, self.features)
            if turn.slots:
                self.labels["slot_spans"] += len(turn.slots)
            if turn.domain is not None:
                self.domains[turn.domain] += 1
            self._annotations(turn.annotations, ("intent", "slots", "satisfaction", "segment"))
        for goal in item.goals or []:
            self.labels["goals"] += 1
            self.labels["goal_success"] += goal.success is not None
            self._annotations(goal.annotations, ("success",), prefix="goal_")
        self.labels["rating"] += item.rating is not None
        self.labels["system_opening"] += item.system_opening is not None
        self._annotations(
            item.annotations, ("rating", "opening_satisfaction", "explanation"), prefix="dialogue_"
        )

    @staticmethod
    def _count(obj: Any, names: tuple[str, ...], counter: Counter[str]) -> None:
        for name in names:
            counter[name] += getattr(obj, name) is not None

    def _annotations(self, annotations: list | None, names: tuple[str, ...], prefix: str = ""):
        if not annotations:
            return
        self.max_annotators = max(self.max_annotators, len(annotations))
        for ann in annotations:
            for name in names:
                self.annotator_labels[prefix + name] += getattr(ann, name) is not None

    def to_json_dict(self) -> dict[str, Any]:
        """Every count, zeros included, so two summaries always have the same keys."""
        return {
            "dialogues": self.dialogues,
            "turns": self.turns,
            "rejected": self.rejected,
            "labels": {k: self.labels[k] for k in sorted(LABEL_KINDS)},
            "annotator_labels": {
                k: self.annotator_labels[k] for k in sorted(ANNOTATOR_LABEL_KINDS)
            },
            "max_annotators": self.max_annotators,
            "features": {k: self.features[k] for k in sorted(TURN_FEATURES)},
            "domains": len(self.domains),
        }

    def render(self) -> str:
        """A few lines for a person."""
        lines = [
            f"{self.dialogues} dialogues, {self.turns} turns "
            f"({self.turns / max(self.dialogues, 1):.1f} per dialogue), {self.rejected} rejected",
        ]
        if self.domains:
            top = ", ".join(f"{d} ({n})" for d, n in self.domains.most_common(5))
            lines.append(f"domains: {len(self.domains)}; most turns: {top}")
        present = [f"{k} {v}" for k, v in sorted(self.labels.items()) if v]
        lines.append("labels: " + (", ".join(present) or "none"))
        per_annotator = [f"{k} {v}" for k, v in sorted(self.annotator_labels.items()) if v]
        if per_annotator:
            lines.append(
                f"per-annotator labels (up to {self.max_annotators} annotators): "
                + ", ".join(per_annotator)
            )
        features = [f"{k} {v}" for k, v in sorted(self.features.items()) if v]
        lines.append("features: " + (", ".join(features) or "none"))
        for reason, n in self.reject_reasons.most_common(5):
            lines.append(f"rejected {n}x: {reason}")
        return "\n".join(lines)
