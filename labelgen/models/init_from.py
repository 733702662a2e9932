"""`init_from`: start a model from another's weights, matched by name and by vocabulary.

A model's embedding rows and output rows stand for the values of its training log's
vocabularies (services, intents, slot tags). A model pretrained on a large unlabeled log and
fine-tuned on a labeled slice of it sees other vocabularies, and a row copied by position could
stand for another value even where the shapes agree. Rows are therefore matched by value: a
value both logs know keeps its learned row; a feature value new to this model starts as the
checkpoint's "unseen value" row (what the pretrained model made of values it did not know), a
new output class from its fresh initialization."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from labelgen.data.features import CATEGORICAL, RESERVED, UNKNOWN, FeatureSpace


@dataclass
class VocabRows:
    """A tensor whose rows past the first `reserved` stand for the values of `vocab`."""

    vocab: list[str]
    reserved: int = 0


@dataclass
class InitReport:
    loaded: list[str] = field(default_factory=list)
    remapped: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Per tensor: (rows matched by value, rows of this model)."""
    skipped: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)


def vocab_rows(space: FeatureSpace, heads: dict[str, str]) -> dict[str, VocabRows]:
    """The vocabulary-indexed tensors of a model with this feature space; `heads` maps a
    vocabulary ("intents", "slot_tags") to its output layer's parameter prefix."""
    rows = {
        f"fusion.categorical.{i}.weight": VocabRows(space.categorical.get(name, []), RESERVED)
        for i, name in enumerate(CATEGORICAL)
    }
    for vocab, prefix in heads.items():
        for suffix in ("weight", "bias"):
            rows[f"{prefix}.{suffix}"] = VocabRows(list(getattr(space, vocab)))
    return rows


def matching_state(
    own: dict[str, torch.Tensor],
    own_space: FeatureSpace,
    checkpoint: dict[str, Any],
    heads: dict[str, str],
) -> tuple[dict[str, torch.Tensor], InitReport]:
    """The checkpoint's tensors to load into a model whose state is `own`; `heads` as in
    `vocab_rows`, the same layer names in both models."""
    state = checkpoint.get("state_dict", checkpoint)
    own_rows = vocab_rows(own_space, heads)
    space = checkpoint.get("hyper_parameters", {}).get("feature_space")
    their_rows = vocab_rows(FeatureSpace(**space), heads) if space is not None else {}
    report, matching = InitReport(), {}
    for name, value in state.items():
        if name not in own:
            report.skipped.append(name)
        elif name in own_rows and name in their_rows:
            matching[name], hits = _remap(own[name], value, their_rows[name], own_rows[name])
            report.remapped[name] = (hits, len(own_rows[name].vocab))
        elif own[name].shape == value.shape:
            matching[name] = value
            report.loaded.append(name)
        else:
            report.skipped.append(name)
    report.fresh = sorted(set(own) - set(matching))
    return matching, report


def _remap(
    own: torch.Tensor, theirs: torch.Tensor, their_rows: VocabRows, own_rows: VocabRows
) -> tuple[torch.Tensor, int]:
    if own.shape[1:] != theirs.shape[1:] or own_rows.reserved != their_rows.reserved:
        return own, 0  # another width: nothing to carry over
    out = own.clone()
    out[: own_rows.reserved] = theirs[: their_rows.reserved]
    index = {value: i for i, value in enumerate(their_rows.vocab)}
    hits = 0
    for j, value in enumerate(own_rows.vocab):
        if value in index:
            out[own_rows.reserved + j] = theirs[their_rows.reserved + index[value]]
            hits += 1
        elif own_rows.reserved > UNKNOWN:
            out[own_rows.reserved + j] = theirs[UNKNOWN]
    return out, hits
