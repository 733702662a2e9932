"""Fusion of the text vector with categorical, numerical and audio features into one turn vector."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class FusionConfig:
    categorical_dim: int = 16
    """Embedding size of each categorical feature."""
    numerical_dim: int = 16
    """Projection size of the normalized numerical features and their missing flags."""
    audio: bool = False
    """Fuse an audio embedding of the user utterance (the data module must read audio)."""
    audio_dim: int = 64
    """Size of the audio embedding."""
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if min(self.categorical_dim, self.numerical_dim, self.audio_dim) < 1:
            raise ValueError("fusion: embedding sizes must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"fusion: dropout must be in [0, 1), got {self.dropout}")


class FeatureFusion(nn.Module):
    """[text | categorical embeddings | numerical projection | audio] -> Linear -> LayerNorm."""

    def __init__(
        self,
        text_dim: int,
        out_dim: int,
        categorical_sizes: list[int],
        n_numerical: int,
        config: FusionConfig,
    ) -> None:
        super().__init__()
        self.categorical = nn.ModuleList(
            nn.Embedding(size, config.categorical_dim) for size in categorical_sizes
        )
        # Values and missing flags together: a missing confidence is itself informative.
        self.numerical = nn.Linear(2 * n_numerical, config.numerical_dim)
        self.use_audio = config.audio
        width = (
            text_dim
            + config.categorical_dim * len(categorical_sizes)
            + config.numerical_dim
            + (config.audio_dim if config.audio else 0)
        )
        self.project = nn.Sequential(
            nn.Linear(width, out_dim), nn.LayerNorm(out_dim), nn.Dropout(config.dropout)
        )

    def forward(
        self,
        text: torch.Tensor,
        categorical: torch.Tensor,
        numerical: torch.Tensor,
        numerical_mask: torch.Tensor,
        audio: torch.Tensor | None = None,
    ) -> torch.Tensor:
        parts = [text]
        parts += [emb(categorical[:, i]) for i, emb in enumerate(self.categorical)]
        flags = numerical_mask.to(text.dtype)
        parts.append(self.numerical(torch.cat([numerical.to(text.dtype) * flags, flags], -1)))
        if self.use_audio:
            if audio is None:
                raise ValueError("fusion expects audio embeddings: the data module reads no audio")
            parts.append(audio.to(text.dtype))
        return self.project(torch.cat(parts, dim=-1))
