"""One labeled dialogue as HTML: what a reviewer looks at in a notebook or a W&B panel.

Each row is a turn: its goal segment (a coloured bar per goal, B opening one), the user text
with the predicted slot spans marked, the system response, the intent, satisfaction and every
confidence, and the tasks sent to review. Texts come from logs, so everything is escaped.
"""

from __future__ import annotations

from html import escape
from typing import Any

from labelgen.data.schema import Dialogue

COLOURS = ("#e3f2fd", "#fce4ec", "#e8f5e9", "#fff3e0", "#ede7f6", "#e0f7fa")


def _marked(text: str, slots: list[dict[str, Any]] | None) -> str:
    """The text with each span wrapped in <mark> (overlapping or out-of-range spans skipped:
    a decoder never emits them, but a hand-edited label file might)."""
    out, pos = [], 0
    for span in sorted(slots or [], key=lambda s: (s["start"], s["end"])):
        start, end = span["start"], span["end"]
        if start < pos or end > len(text) or start >= end:
            continue
        confidence = span.get("confidence")
        title = span["slot"] + ("" if confidence is None else f" {confidence:.2f}")
        out += [
            escape(text[pos:start]),
            f'<mark title="{escape(title)}">{escape(text[start:end])}'
            f"<sub>{escape(span['slot'])}</sub></mark>",
        ]
        pos = end
    out.append(escape(text[pos:]))
    return "".join(out)


def _pct(value: float | None) -> str:
    return "" if value is None else f" <small>({value:.2f})</small>"


def render_dialogue(dialogue: Dialogue, labels: list[dict[str, Any]]) -> str:
    """HTML table of `dialogue` with `labels`, the label rows of its turns (`labelgen label`
    output, any order; turns without a row are shown unlabeled)."""
    by_turn = {row["turn_index"]: row for row in labels}
    goals: dict[str, str] = {}
    rows = []
    for t, turn in enumerate(dialogue.turns):
        row = by_turn.get(t, {})
        goal = row.get("goal_id")
        colour = goals.setdefault(goal, COLOURS[len(goals) % len(COLOURS)]) if goal else "#fff"
        segment = row.get("segment") or ""
        satisfaction = row.get("satisfaction")
        review = ", ".join(row.get("review") or [])
        rows.append(
            f'<tr><td style="background:{colour}">{t} {escape(segment)}'
            f"{'' if not goal else '<br><small>' + escape(goal) + '</small>'}</td>"
            f"<td>{_marked(turn.user_text, row.get('slots'))}</td>"
            f"<td>{escape(turn.system_text or '')}</td>"
            f"<td>{escape(row.get('intent') or '')}{_pct(row.get('intent_confidence'))}</td>"
            f"<td>{'' if satisfaction is None else satisfaction}"
            f"{_pct(row.get('satisfaction_confidence'))}</td>"
            f'<td style="color:#b71c1c">{escape(review)}</td></tr>'
        )
    head = (
        "<tr><th>turn / goal</th><th>user (slots marked)</th><th>system</th><th>intent</th>"
        "<th>satisfaction</th><th>review</th></tr>"
    )
    return (
        f"<div><b>{escape(dialogue.dialogue_id)}</b>"
        f'<table style="border-collapse:collapse">{head}{"".join(rows)}</table></div>'
    )
