"""Prediction heads. A head maps contextual vectors to logits; the LightningModule owns losses.

Adding a per-turn label is one entry in `LabelGenModule.turn_tasks`: a `ClassifierHead` over
the contextual turn vectors, a target column from the featurizer, and a weight in the config.
"""

from __future__ import annotations

import torch
from torch import nn


class ClassifierHead(nn.Module):
    def __init__(self, d_model: int, n_classes: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(d_model, d_model),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(d_model, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SlotHead(nn.Module):
    """BIO tags per user token from the token's state and its turn's contextual vector, so a
    value can be read differently depending on what the system just asked."""

    def __init__(self, token_dim: int, d_model: int, n_tags: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.context = nn.Linear(d_model, token_dim)
        self.net = nn.Sequential(nn.GELU(), nn.Dropout(dropout), nn.Linear(token_dim, n_tags))

    def forward(self, tokens: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
        """tokens [N, Lu, H], turns [N, D] -> logits [N, Lu, n_tags]."""
        return self.net(tokens + self.context(turns).unsqueeze(1))


class GoalSuccessHead(nn.Module):
    """Success of each goal from the mean of its turns' contextual vectors and its last turn."""

    def __init__(self, d_model: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.classifier = ClassifierHead(2 * d_model, 2, dropout)

    def forward(self, turns: torch.Tensor, goal: torch.Tensor, n_goals: int) -> torch.Tensor:
        """turns [N, D], goal [N] (goal index or -1) -> logits [n_goals, 2]."""
        d = turns.shape[-1]
        member = goal >= 0
        index = goal[member]
        sums = turns.new_zeros(n_goals, d).index_add_(0, index, turns[member])
        counts = turns.new_zeros(n_goals).index_add_(0, index, turns.new_ones(len(index)))
        mean = sums / counts.clamp(min=1.0)[:, None]
        # The last turn of a goal is where success or failure is announced.
        positions = torch.arange(len(goal), device=goal.device)
        last_pos = torch.full((n_goals,), -1, device=goal.device, dtype=torch.long)
        last_pos = last_pos.scatter_reduce(0, index, positions[member], reduce="amax")
        last = turns[last_pos.clamp(min=0)]
        return self.classifier(torch.cat([mean, last], dim=-1))
