"""The Label Studio labeling config of review tasks, and the tag names both directions rely on.

One task is one turn (see `labelgen.review.export` for why). The config shows the whole
dialogue as context (`Paragraphs`, dialogue layout), then the turn's user utterance as a `Text`
object, which slot spans (`Labels`), the intent and the goal segment tag (`Choices`) label, and
the turn's system response, which the satisfaction rating (`Choices`) judges. Segment tags and
ratings are stored under short aliases ("B", "4"), so results read back without parsing the
words shown to annotators.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

REVIEW_TASKS = ("intent", "slots", "segment", "satisfaction")
"""Tasks a review can cover. Goal success is not one: the model's goals (`p0`, `p1`, ...) are
its own segmentation, and the contract keeps goal judgements only on a dialogue's reference
goals, so a human verdict on a predicted goal has nowhere to go."""

USER, SYSTEM, DIALOGUE = "user", "system", "dialogue"
"""Object tags: the user utterance, the system response, the dialogue shown as context."""
CONTROL = {
    "intent": "intent",
    "slots": "slot",
    "segment": "segment",
    "satisfaction": "satisfaction",
}
"""Task -> the name of the control tag (`from_name` in results) that labels it."""

SEGMENT_CHOICES = {
    "B": "B: begins a new goal",
    "I": "I: continues the previous turn's goal",
    "O": "O: serves no goal",
}
SATISFACTION_CHOICES = {
    "1": "1: very dissatisfied",
    "2": "2: dissatisfied",
    "3": "3: neutral",
    "4": "4: satisfied",
    "5": "5: very satisfied",
}
"""Alias (what results hold) -> what annotators see."""


@dataclass(frozen=True)
class Vocabulary:
    """The intents and slot names annotators may choose from."""

    intents: tuple[str, ...] = ()
    slots: tuple[str, ...] = ()

    @classmethod
    def of(cls, intents: Iterable[str], slots: Iterable[str]) -> Vocabulary:
        return cls(tuple(sorted(set(intents))), tuple(sorted(set(slots))))


def labeling_config(tasks: Sequence[str], vocabulary: Vocabulary) -> str:
    """The `<View>` to paste into the Label Studio project (Settings > Labeling Interface)."""
    lines = [
        "<View>",
        # Without pre-wrap Label Studio trims spaces, and span offsets drift from the text.
        "  <Style>.htx-text { white-space: pre-wrap; }</Style>",
        '  <Header value="$heading"/>',
        f'  <Paragraphs name="{DIALOGUE}" value="$dialogue" layout="dialogue" '
        'nameKey="author" textKey="text"/>',
        '  <Header value="This turn\'s user utterance"/>',
    ]
    if "slots" in tasks:
        lines.append(f'  <Labels name="{CONTROL["slots"]}" toName="{USER}">')
        lines += [f"    <Label value={quoteattr(s)}/>" for s in vocabulary.slots]
        lines.append("  </Labels>")
    lines.append(f'  <Text name="{USER}" value="$user"/>')
    if "intent" in tasks:
        lines += _choices("intent", USER, {i: i for i in vocabulary.intents}, "single")
    if "segment" in tasks:
        lines += _choices("segment", USER, SEGMENT_CHOICES, "single-radio")
    if "satisfaction" in tasks:
        lines += [
            '  <Header value="The system\'s response: how satisfied is the user with it?"/>',
            f'  <Text name="{SYSTEM}" value="$system" selectionEnabled="false"/>',
            *_choices("satisfaction", SYSTEM, SATISFACTION_CHOICES, "single-radio"),
        ]
    lines.append("</View>")
    return "\n".join(lines) + "\n"


def _choices(task: str, to_name: str, options: dict[str, str], kind: str) -> list[str]:
    name = CONTROL[task]
    lines = [f'  <Choices name="{name}" toName="{to_name}" choice="{kind}" showInline="true">']
    for alias, shown in options.items():
        extra = "" if alias == shown else f" alias={quoteattr(alias)}"
        lines.append(f"    <Choice value={quoteattr(shown)}{extra}/>")
    return [*lines, "  </Choices>"]


def read_config(path: str | Path) -> dict[str, frozenset[str]]:
    """Control name -> the values its results may hold, for every `Choices` (a choice's alias,
    else its value) and `Labels` control (a label's value) in a labeling config.

    Raises:
        ValueError: the file is not XML.
    """
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise ValueError(f"{path} is not a labeling config (XML): {err}") from err
    allowed: dict[str, frozenset[str]] = {}
    for control in root.iter():
        if control.tag not in ("Choices", "Labels") or "name" not in control.attrib:
            continue
        if control.tag == "Choices":
            choices = control.iter("Choice")
            values = (c.attrib.get("alias") or c.attrib.get("value") for c in choices)
        else:
            values = (label.attrib.get("value") for label in control.iter("Label"))
        allowed[control.attrib["name"]] = frozenset(v for v in values if v)
    return allowed
