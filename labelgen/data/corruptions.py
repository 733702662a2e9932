"""Synthetic corruptions of featurized dialogues for self-supervised pretraining.

The model learns to spot the corrupted ("defect") turns of a dialogue, which needs no labels:
a system response taken from another dialogue is the chief corruption, because telling it apart
from the real one requires understanding whether the response fits the user and the context.

A featurized dialogue is columnar: every value that is a list of `n_turns` items is a per-turn
column, and all of them move together when turns are duplicated or reordered. A dialogue-level
list that happens to have `n_turns` items would be taken for a per-turn column, so the data
module keeps dialogue-level values out of lists of that length.
"""

from __future__ import annotations

import copy
import math
import random
from dataclasses import dataclass
from typing import Any

DEFECT = "defect"
_NOT_COLUMNS = frozenset({"n_turns", DEFECT})
_SCALARS = (int, float, str, bool, bytes, type(None))


@dataclass
class CorruptionConfig:
    """Per-turn corruption rates, drawn independently before the `max_fraction` cap."""

    swap_system: float = 0.25
    """Probability that a turn's system response is replaced by one from another dialogue."""
    swap_user: float = 0.05
    """Probability that a turn's user utterance is replaced by one from another dialogue."""
    duplicate: float = 0.03
    """Probability that a turn is repeated right after itself; the copy is the defect."""
    reorder: float = 0.03
    """Probability that a turn is swapped with the next one; both are defects."""
    max_fraction: float = 0.5
    """At most this fraction of a dialogue's turns is corrupted, so intact context remains."""
    user_columns: tuple[str, ...] = (
        "user_ids",
        "user_offsets",
        "user_shapes",
        "slot_tags",
        "echo_tags",
        "intent",
        "intent_votes",
        "audio_path",
        "audio",
        "categorical_user",
        "numerical_user",
        "numerical_user_mask",
    )
    """Per-turn columns that describe the user utterance and travel with it when swapped
    (features too: a swapped text with its old token count would give itself away).

    Columns a dialogue lacks are skipped.
    """
    system_columns: tuple[str, ...] = (
        "system_ids",
        "categorical_system",
        "numerical_system",
        "numerical_system_mask",
    )
    """Per-turn columns that describe the system response and travel with it when swapped."""

    def __post_init__(self) -> None:
        for name in ("swap_system", "swap_user", "duplicate", "reorder", "max_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"CorruptionConfig.{name} must be in [0, 1], got {value!r}")
        self.user_columns = tuple(self.user_columns)
        self.system_columns = tuple(self.system_columns)
        for side in ("user", "system"):
            columns = getattr(self, f"{side}_columns")
            if f"{side}_ids" not in columns:
                raise ValueError(f"CorruptionConfig.{side}_columns must include '{side}_ids'")
            if reserved := _NOT_COLUMNS.intersection(columns):
                raise ValueError(f"CorruptionConfig.{side}_columns names {sorted(reserved)}")
        if shared := set(self.user_columns) & set(self.system_columns):
            raise ValueError(f"columns cannot belong to both user and system: {sorted(shared)}")


def corrupt_batch(
    dialogues: list[dict[str, Any]], config: CorruptionConfig, rng: random.Random
) -> list[dict[str, Any]]:
    """Corrupted copies of `dialogues`, each with a per-turn `defect` column (1 = corrupted).

    Swaps take their replacement from another dialogue of the batch, so a batch of one
    dialogue gets no swaps. The inputs are never modified.
    """
    columns = [_turn_columns(dialogue) for dialogue in dialogues]
    pools = {side: _Pool(dialogues, f"{side}_ids") for side in ("user", "system")}
    return [_corrupt(dialogues, d, columns[d], pools, config, rng) for d in range(len(dialogues))]


def defect_rate(dialogues: list[dict[str, Any]]) -> float:
    """Fraction of all turns marked as defects; 0.0 for no turns."""
    turns = sum(len(dialogue[DEFECT]) for dialogue in dialogues)
    return sum(sum(dialogue[DEFECT]) for dialogue in dialogues) / turns if turns else 0.0


def _turn_columns(dialogue: dict[str, Any]) -> list[str]:
    if DEFECT in dialogue:
        raise ValueError(f"dialogue {dialogue.get('dialogue_id')!r} is already corrupted")
    n = dialogue["n_turns"]
    for key in ("user_ids", "system_ids"):
        if len(dialogue[key]) != n:
            raise ValueError(
                f"dialogue {dialogue.get('dialogue_id')!r}: {key} has {len(dialogue[key])} "
                f"turns, n_turns says {n}"
            )
    return [
        key
        for key, value in dialogue.items()
        if key not in _NOT_COLUMNS and isinstance(value, list) and len(value) == n
    ]


class _Pool:
    """The batch's non-empty utterances of one side, to draw a replacement from."""

    def __init__(self, dialogues: list[dict[str, Any]], key: str) -> None:
        # An empty response is "no response": swapping it in would teach the model that
        # silence is a defect, while real logs are full of turns without a response.
        self.turns = [
            (d, t) for d, dia in enumerate(dialogues) for t, ids in enumerate(dia[key]) if ids
        ]
        self.spans: dict[int, tuple[int, int]] = {}
        for k, (d, _) in enumerate(self.turns):
            self.spans[d] = (self.spans.get(d, (k, k))[0], k + 1)

    def draw(self, exclude: int, rng: random.Random) -> tuple[int, int] | None:
        """A uniform turn of any dialogue but `exclude`; None when there is none."""
        lo, hi = self.spans.get(exclude, (0, 0))
        others = len(self.turns) - (hi - lo)
        if others == 0:
            return None
        # The turns are grouped by dialogue: skip over `exclude`'s block in one step.
        k = rng.randrange(others)
        return self.turns[k + (hi - lo) if k >= lo else k]


def _corrupt(
    dialogues: list[dict[str, Any]],
    d: int,
    columns: list[str],
    pools: dict[str, _Pool],
    config: CorruptionConfig,
    rng: random.Random,
) -> dict[str, Any]:
    dialogue = dialogues[d]
    n = dialogue["n_turns"]
    rates = [
        ("system", config.swap_system),
        ("user", config.swap_user),
        ("duplicate", config.duplicate),
        ("reorder", config.reorder),
    ]
    candidates = [(op, i) for i in range(n) for op, rate in rates if rng.random() < rate]
    # Accepting in random order rather than turn order keeps the cap from sparing late turns.
    rng.shuffle(candidates)

    budget = math.floor(config.max_fraction * n)
    touched = [False] * n
    replaced: dict[tuple[int, str], Any] = {}  # (turn, column) -> the donor's cell
    swapped: set[int] = set()
    duplicated: set[int] = set()
    reordered: set[int] = set()
    for op, i in candidates:
        if op == "reorder":
            if budget < 2 or i + 1 >= n or touched[i] or touched[i + 1]:
                continue
            if _same_turn(dialogue, i, i + 1):
                continue  # swapping identical turns changes nothing, so it is no defect
            reordered.add(i)
            touched[i] = touched[i + 1] = True
            budget -= 2
            continue
        if budget < 1 or touched[i]:
            continue
        if op == "duplicate":
            duplicated.add(i)
        else:
            key = f"{op}_ids"
            drawn = pools[op].draw(d, rng) if dialogue[key][i] else None
            if drawn is None:
                continue
            donor, t = dialogues[drawn[0]], drawn[1]
            if donor[key][t] == dialogue[key][i]:
                continue  # the same words from elsewhere are not a defect
            for column in getattr(config, f"{op}_columns"):
                if column in columns:
                    replaced[i, column] = donor[column][t]
            swapped.add(i)
        touched[i] = True
        budget -= 1

    # (source turn, is defect) for each output turn, in output order.
    order: list[tuple[int, bool]] = []
    i = 0
    while i < n:
        if i in reordered:
            order += [(i + 1, True), (i, True)]
            i += 2
            continue
        order.append((i, i in swapped))
        if i in duplicated:
            order.append((i, True))
        i += 1

    out = {key: _copy(value) for key, value in dialogue.items() if key not in columns}
    for key in columns:
        cells = dialogue[key]
        out[key] = [_copy(replaced.get((src, key), cells[src])) for src, _ in order]
    out["n_turns"] = len(order)
    out[DEFECT] = [int(defect) for _, defect in order]
    return out


def _same_turn(dialogue: dict[str, Any], i: int, j: int) -> bool:
    return all(dialogue[key][i] == dialogue[key][j] for key in ("user_ids", "system_ids"))


def _copy(value: Any) -> Any:
    # Cheaper than deepcopy for the nested lists of ints and floats that make up most columns.
    if isinstance(value, list):
        return [_copy(item) for item in value]
    if isinstance(value, _SCALARS):
        return value
    return copy.deepcopy(value)
