"""Prediction heads. A head maps contextual vectors to logits; the LightningModule owns losses.

Adding a per-turn label is one entry in `LabelGenModule.turn_tasks`: a `ClassifierHead` over
the contextual turn vectors, a target column from the featurizer, and a weight in the config.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from labelgen.data.features import TOKEN_SHAPES
from labelgen.models.components.turn_encoder import chunk_plan


class ClassifierHead(nn.Module):
    def __init__(
        self, d_model: int, n_classes: int, dropout: float = 0.1, in_dim: int | None = None
    ) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim or d_model, d_model),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(d_model, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


LSTM_WEIGHTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
"""An `nn.LSTM` layer's parameters, in the order `torch.lstm` takes them."""


class SlotHead(nn.Module):
    """BIO tags per user token from the token's state and its turn's contextual vector, so a
    value can be read differently depending on what the system just asked.

    Each token's state is projected and joined with its shape (case, digits, word start: an
    uncased encoder has lost them, and names are capitalized) and the turn's context, then
    normalized (a frozen encoder's raw states are badly scaled for a classifier). A
    bidirectional LSTM over the utterance's tokens lets a tag depend on its neighbours in
    order (B before I, where a multi-word value ends); a Transformer layer here had no
    positions and split "San Diego" into two values.
    """

    def __init__(
        self,
        token_dim: int,
        d_model: int,
        n_tags: int,
        dropout: float = 0.1,
        context_dim: int | None = None,
        echo_tags: int = 0,
    ) -> None:
        """`n_tags` 0: no slot tags (a stage 1 that trains only the echo output); `echo_tags`
        > 0: a second output over the same states, for stage 1's echo task
        (`features.echo_tags`), so its layers reach fine-tuning trained."""
        super().__init__()
        self.tokens = nn.Linear(token_dim, d_model)
        self.shapes = nn.Embedding(TOKEN_SHAPES, d_model, padding_idx=0)
        self.context = nn.Linear(context_dim or d_model, d_model)
        self.norm = nn.LayerNorm(d_model)
        self.lstm = nn.LSTM(d_model, d_model // 2, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        width = 2 * (d_model // 2)
        self.out = nn.Linear(width, n_tags) if n_tags else None
        self.echo = nn.Linear(width, echo_tags) if echo_tags else None

    def forward(
        self,
        tokens: torch.Tensor,
        turns: torch.Tensor,
        mask: torch.Tensor | None = None,
        shapes: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """tokens [N, Lu, H], turns [N, D], mask [N, Lu] (True = a real token), shapes [N, Lu]
        (`token_shape` ids) -> logits [N, Lu, tags] of each output: "slots", "echo"."""
        x = self.tokens(tokens) + self.context(turns).unsqueeze(1)
        if shapes is not None:
            x = x + self.shapes(shapes)
        x = self.norm(x)
        width = x.shape[1]
        if mask is None:
            lengths = torch.full((x.shape[0],), width, dtype=torch.long, device=x.device)
        else:
            lengths = mask.sum(1).clamp(min=1)
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # CPU autocast sends a float32 LSTM input to oneDNN in bf16, which has no such
            # primitive on CPUs without native bf16 (an AVX2-only EPYC, CI's too: "could not
            # create a primitive descriptor"); so on CPU the LSTM alone runs in float32
            with torch.autocast("cpu", enabled=False):
                states = self._bidirectional(x.float(), lengths)
        else:
            states = self._bidirectional(x, lengths)
        states = self.dropout(states)
        outputs = {"slots": self.out, "echo": self.echo}
        return {name: layer(states) for name, layer in outputs.items() if layer is not None}

    def _bidirectional(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The LSTM's two directions over each row's first `lengths` tokens, zeros after.

        What a packed sequence gives (the backward direction starts at the last real token,
        not at padding), computed as padded one-way passes over groups of rows of similar
        length: a packed LSTM on CPU steps through the batch in small per-step products, and
        was the costliest part of a training step (1.5-1.6x slower than this, forward and
        backward, on SGD batches: scripts/benchmark_slot_tagger.py); grouping keeps one long
        utterance from padding every other row to its width."""
        groups = self.length_groups(lengths, x.shape[1])
        if len(groups) <= 1:  # one group, or no row at all
            return self._both_ways(x, lengths)
        parts = [
            F.pad(self._both_ways(x[rows, :width], lengths[rows]), (0, 0, 0, x.shape[1] - width))
            for rows, width in groups
        ]
        joined = torch.cat(parts)
        # rows back in place; a copy to given rows differentiates as a gather (indexing by
        # the inverse permutation differentiates as a slower scatter)
        return joined.new_zeros(joined.shape).index_copy(
            0, torch.cat([rows for rows, _ in groups]), joined
        )

    @staticmethod
    def length_groups(lengths: torch.Tensor, width: int) -> list[tuple[torch.Tensor, int]]:
        """The rows the LSTM runs together and their padded width: no row in a group shorter
        than half of its longest (`chunk_plan`, with no cap on a group's size)."""
        return chunk_plan(lengths, budget=len(lengths) * width, max_padding=0.5)

    def _both_ways(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Both directions as two padded one-way passes, the second over each row's tokens
        reversed in place (padding left where it is)."""
        positions = torch.arange(x.shape[1], device=x.device)[None, :]
        real = positions < lengths[:, None]
        flip = torch.where(real, lengths[:, None] - 1 - positions, positions)[..., None]
        lstm = self.lstm
        zeros = x.new_zeros(1, x.shape[0], lstm.hidden_size)
        ahead, back = (
            torch.lstm(
                inputs,
                (zeros, zeros),
                [getattr(lstm, f"{name}_l0{suffix}") for name in LSTM_WEIGHTS],
                True,  # biases
                1,  # layers
                0.0,  # dropout
                self.training,
                False,  # one direction
                True,  # batch first
            )[0]
            for inputs, suffix in ((x, ""), (x.gather(1, flip.expand_as(x)), "_reverse"))
        )
        back = back.gather(1, flip.expand_as(back))
        return torch.cat([ahead, back], dim=-1) * real[..., None]


class GoalSuccessHead(nn.Module):
    """Success of each goal from the mean of its turns' contextual vectors and its last turn."""

    def __init__(self, d_model: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.classifier = ClassifierHead(2 * d_model, 2, dropout)

    def forward(self, turns: torch.Tensor, goal: torch.Tensor, n_goals: int) -> torch.Tensor:
        """turns [N, D], goal [N] (goal index or -1) -> logits [n_goals, 2]."""
        member = goal >= 0
        index = goal[member]
        # A dense membership matrix rather than index_add_: the same sums in the same order
        # whatever the thread count, so 1 and 2 labeling processes agree to the last bit.
        onehot = torch.zeros(n_goals, len(goal), dtype=turns.dtype, device=turns.device)
        onehot[index, torch.nonzero(member).squeeze(-1)] = 1.0
        mean = (onehot @ turns) / onehot.sum(1, keepdim=True).clamp(min=1.0)
        # The last turn of a goal is where success or failure is announced.
        positions = torch.arange(len(goal), device=goal.device)
        last_pos = torch.full((n_goals,), -1, device=goal.device, dtype=torch.long)
        last_pos = last_pos.scatter_reduce(0, index, positions[member], reduce="amax")
        last = turns[last_pos.clamp(min=0)]
        return self.classifier(torch.cat([mean, last], dim=-1))
