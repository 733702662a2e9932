"""Several trained models labeling as one: each head's class probabilities averaged over them.

Models trained from different starting points (with and without stage 1, other seeds) make
partly independent errors, so their mean probability ranks and decides better than either
alone. The members read the very same batch, so they must featurize a turn alike: the same
tokenizer, token budgets, vocabularies and statistics (models trained on one log), and the
same heads. Goals are decoded once, from the averaged segment probabilities, and each
member's goal-success head scores those goals."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import lightning as L
import torch
from torch import nn

from labelgen.data.tokenization import PairTemplate, load_tokenizer
from labelgen.models.labelgen_module import LabelGenModule, with_goals


class EnsembleError(ValueError):
    """The models cannot label as one: they would read a batch differently."""


class Ensemble(L.LightningModule):
    """Averages its members' probabilities; labels through `labelgen label` as one model."""

    def __init__(self, members: list[LabelGenModule]) -> None:
        super().__init__()
        if len(members) < 2:
            raise EnsembleError(f"an ensemble needs at least 2 models, got {len(members)}")
        # each member's featurization read once (a tokenizer loads from disk)
        first, *others = (_reading(member) for member in members)
        for k, other in enumerate(others, start=2):
            differs = [name for name, value in first.items() if other[name] != value]
            if differs:
                raise EnsembleError(
                    f"model {k} of the ensemble differs from the first in "
                    f"{', '.join(differs)}: every model must be trained on the same log's "
                    "features, with the same tokenizer and heads"
                )
        self.members = nn.ModuleList(members)

    def predict_step(self, batch: dict[str, Any], batch_idx: int = 0) -> dict[str, Any] | None:
        if "input_ids" not in batch:
            return None  # a shard whose every record was rejected
        parts = [member.turn_probabilities(batch) for member in self.members]
        probs = {name: torch.stack([p[name] for p, _ in parts]).mean(0) for name in parts[0][0]}
        vectors = [turn_vectors for _, turn_vectors in parts]
        readers = list(zip(self.members, vectors, strict=True))
        return with_goals(probs, batch["turn_mask"], readers)


def _reading(model: LabelGenModule) -> dict[str, Any]:
    """What decides how a model reads and labels a batch, by name: equal for every member."""
    budgets = ("max_user_tokens", "max_system_tokens")
    return {
        # by what it does, not its name: an export carries a copy in its own folder
        "tokenizer": _tokenizer(model.hparams["tokenizer"]),
        "feature space": asdict(model.space),
        "token budgets": {k: model.data_settings.get(k) for k in budgets},
        "heads": (sorted(model.turn_tasks), not model.has_slots, model.goal_head is None),
        "audio": model.audio_encoder is None,
        "user-text position": model.user_start,
    }


def _tokenizer(name: str) -> tuple[Any, ...]:
    tokenizer = load_tokenizer(name)
    vocab = sorted(tokenizer.get_vocab().items())
    return type(tokenizer).__name__, vocab, PairTemplate.from_tokenizer(tokenizer)
