"""`AudioEncoder`: one vector per turn from its log-mel features, or a learned no-audio vector."""

from __future__ import annotations

import torch
from torch import nn


class AudioEncoder(nn.Module):
    """Strided Conv1d stack over frames, masked mean pooling, then a Linear.

    `forward(features [N, T, n_mels], lengths [N]) -> [N, out_dim]`, with the batch from
    `labelgen.data.audio.pad_features`. Turns with `lengths == 0` get the learned `no_audio`
    vector. Frames past a turn's length never reach its output, so a turn encodes the same alone
    as padded into a batch.

    Args:
        n_mels: Channels per input frame; matches `AudioConfig.n_mels`.
        hidden: Conv channels.
        out_dim: Size of the turn vector.
    """

    def __init__(self, n_mels: int = 80, hidden: int = 64, out_dim: int = 64) -> None:
        super().__init__()
        if min(n_mels, hidden, out_dim) <= 0:
            raise ValueError(f"sizes must be positive, got {n_mels=}, {hidden=}, {out_dim=}")
        self.n_mels = n_mels
        # Two stride-2 layers: 40 ms per output step, enough for syllable-rate prosody.
        self.convs = nn.ModuleList(
            [
                nn.Conv1d(n_mels, hidden, kernel_size=3, stride=2, padding=1),
                nn.Conv1d(hidden, hidden, kernel_size=3, stride=2, padding=1),
            ]
        )
        self.act = nn.GELU()
        self.proj = nn.Linear(hidden, out_dim)
        self.no_audio = nn.Parameter(torch.randn(out_dim) * 0.02)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        n, t, n_mels = features.shape
        if n_mels != self.n_mels or lengths.shape != (n,):
            raise ValueError(
                f"expected features [N, T, {self.n_mels}] and lengths [N], got "
                f"{tuple(features.shape)} and {tuple(lengths.shape)}"
            )
        if n and (int(lengths.min()) < 0 or int(lengths.max()) > t):
            raise ValueError(f"lengths must lie in [0, {t}], got {lengths.tolist()}")
        has_audio = lengths > 0
        if t == 0:
            # Conv1d refuses empty inputs; one zero frame stands in and is masked out anyway.
            features = features.new_zeros(n, 1, n_mels)
        x = _normalize(features.transpose(1, 2), _mask(lengths, features.shape[1]))
        for conv in self.convs:
            x = self.act(conv(x))
            lengths = _conv_lengths(conv, lengths)
            mask = _mask(lengths, x.shape[-1])
            # Zeros past the end are what the next layer's own padding would show an unpadded
            # turn; anything else would leak the batch's padding into the turn's encoding.
            x = x * mask.unsqueeze(1)
        pooled = x.sum(dim=-1) / lengths.clamp(min=1).unsqueeze(1)
        out = self.proj(pooled)
        return torch.where(has_audio.unsqueeze(1), out, self.no_audio.expand_as(out))


def _mask(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    return torch.arange(steps, device=lengths.device) < lengths.unsqueeze(1)


def _conv_lengths(conv: nn.Conv1d, lengths: torch.Tensor) -> torch.Tensor:
    (k,), (s,), (p,), (d,) = conv.kernel_size, conv.stride, conv.padding, conv.dilation
    out = torch.div(lengths + 2 * p - d * (k - 1) - 1, s, rounding_mode="floor") + 1
    return torch.where(lengths > 0, out, torch.zeros_like(out))


def _normalize(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-turn mean and variance normalization of each mel channel over its valid frames.

    Recording gain and channel differ per device and per log; the encoder should see spectral
    shape and its movement, not the level a microphone happened to record at.
    """
    m = mask.unsqueeze(1).to(x.dtype)
    count = m.sum(dim=-1, keepdim=True).clamp(min=1)
    mean = (x * m).sum(dim=-1, keepdim=True) / count
    var = ((x - mean) ** 2 * m).sum(dim=-1, keepdim=True) / count
    return (x - mean) * torch.rsqrt(var + 1e-5) * m
