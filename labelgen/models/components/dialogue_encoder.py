"""The dialogue encoder: a Transformer over the turn vectors, so each turn sees its neighbours."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class DialogueConfig:
    context: bool = True
    """False is the no-context baseline: each turn is labeled from its own text and features."""
    d_model: int = 256
    """Width of the turn vectors and of every head's input."""
    layers: int = 2
    heads: int = 4
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.d_model % self.heads:
            raise ValueError(
                f"dialogue: d_model {self.d_model} not divisible by heads {self.heads}"
            )
        if self.layers < 1:
            raise ValueError("dialogue: layers must be >= 1")


def sinusoidal_positions(length: int, dim: int, device: torch.device) -> torch.Tensor:
    # Fixed positions extrapolate to dialogues longer than any seen in training.
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return table


class DialogueEncoder(nn.Module):
    """`[B, T, D]` turn vectors with a padding mask -> contextual turn vectors `[B, T, D]`."""

    def __init__(self, config: DialogueConfig) -> None:
        super().__init__()
        self.config = config
        if config.context:
            layer = nn.TransformerEncoderLayer(
                config.d_model,
                config.heads,
                dim_feedforward=4 * config.d_model,
                dropout=config.dropout,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            self.transformer = nn.TransformerEncoder(
                layer, config.layers, enable_nested_tensor=False
            )
            self.norm = nn.LayerNorm(config.d_model)

    def forward(self, turns: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if not self.config.context:
            return turns
        x = turns + sinusoidal_positions(turns.shape[1], turns.shape[2], turns.device).to(
            turns.dtype
        )
        x = self.transformer(x, src_key_padding_mask=~mask)
        return self.norm(x)
