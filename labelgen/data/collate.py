"""Featurized dialogues -> one padded batch of tensors.

Turns are flattened across the batch (`[N, L]` for the turn encoder, N = all turns of all
dialogues) and `turn_mask [B, T]` says where each dialogue's turns sit when the dialogue
encoder needs them back as `[B, T, D]`: flat turn k is the k-th True of `turn_mask`.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

import numpy as np
import torch

from labelgen.data.audio import AudioFeaturizer, pad_features
from labelgen.data.corruptions import CorruptionConfig, corrupt_batch
from labelgen.data.features import FEEDBACK, IGNORE, SATISFACTION_CLASSES, SEGMENT_TAGS
from labelgen.data.tokenization import PairTemplate

PER_TURN_TARGETS = ("intent", "segment", "satisfaction", *FEEDBACK)


class Collator:
    def __init__(
        self,
        template: PairTemplate,
        n_intents: int,
        corruption: CorruptionConfig | None = None,
        audio: AudioFeaturizer | None = None,
        seed: int = 0,
    ) -> None:
        self.template = template
        self.n_intents = n_intents
        self.corruption = corruption
        self.audio = audio
        self.seed = seed

    def __call__(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        if self.corruption is not None:
            # Seeded by the batch's dialogues: the same batch gets the same corruptions in any
            # worker process and after a resume.
            ids = "|".join(r["dialogue_id"] for r in records)
            records = corrupt_batch(records, self.corruption, random.Random(f"{self.seed}:{ids}"))
        turns = [(r, t) for r in records for t in range(r["n_turns"])]
        batch: dict[str, Any] = {"dialogue_id": [r["dialogue_id"] for r in records]}
        batch.update(self._tokens(records))
        lengths = torch.tensor([r["n_turns"] for r in records])
        batch["turn_mask"] = torch.arange(int(lengths.max()))[None, :] < lengths[:, None]
        batch["categorical"] = torch.tensor(
            [r["categorical_user"][t] + r["categorical_system"][t] for r, t in turns]
        )
        batch["numerical"] = torch.tensor(
            [r["numerical_user"][t] + r["numerical_system"][t] for r, t in turns]
        )
        batch["numerical_mask"] = torch.tensor(
            [r["numerical_user_mask"][t] + r["numerical_system_mask"][t] for r, t in turns]
        ).bool()
        for name in PER_TURN_TARGETS:
            batch[name] = torch.tensor([r[name][t] for r, t in turns])
        if self.corruption is not None:
            batch["defect"] = torch.tensor([r["defect"][t] for r, t in turns])
            # a corrupted turn's response is not the one its user words were compared with
            batch["echo_tags"][batch["defect"] == 1] = IGNORE
        batch["intent_soft"] = _soft([r["intent_votes"][t] for r, t in turns], self.n_intents)
        batch["segment_soft"] = _soft([r["segment_votes"][t] for r, t in turns], len(SEGMENT_TAGS))
        batch["satisfaction_soft"] = _soft(
            [r["satisfaction_votes"][t] for r, t in turns], SATISFACTION_CLASSES
        )
        batch.update(_goals(records))
        if self.audio is not None:
            feats = [self.audio(r["audio_path"][t]) for r, t in turns]
            batch["audio_features"], batch["audio_lengths"] = pad_features(
                feats, self.audio.config.n_mels
            )
        return batch

    def _tokens(self, records: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        pairs = [
            self.template.assemble(user, system)
            for r in records
            for user, system in zip(r["user_ids"], r["system_ids"], strict=True)
        ]
        ids = [ids for ids, _ in pairs]
        lengths = torch.tensor([len(row) for row in ids])
        width = int(lengths.max())
        user_tags = [tags for r in records for tags in r["slot_tags"]]
        user_width = max(1, max(len(t) for t in user_tags))
        user_len = torch.tensor([len(u) for r in records for u in r["user_ids"]])
        system_len = torch.tensor([len(x) for r in records for x in r["system_ids"]])
        return {
            "system_start": self.template.user_start + user_len + len(self.template.middle),
            "system_len": system_len,
            "input_ids": _padded(ids, width, self.template.pad_id),
            "attention_mask": (torch.arange(width) < lengths[:, None]).long(),
            "token_type_ids": _padded([types for _, types in pairs], width, 0),
            "slot_tags": _padded(user_tags, user_width, IGNORE),
            "echo_tags": _padded(
                [tags for r in records for tags in r["echo_tags"]], user_width, IGNORE
            ),
            "user_shapes": _padded([s for r in records for s in r["user_shapes"]], user_width, 0),
            "user_len": user_len,
        }


def _padded(rows: list[list[int]], width: int, fill: int) -> torch.Tensor:
    """Ragged rows right-padded with `fill` into one `[len(rows), width]` long tensor, built
    in one assignment: a tensor per turn cost a third of the data loading of a CPU run."""
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    out = np.full((len(rows), width), fill, dtype=np.int64)
    # a boolean mask fills row by row, left to right: the order of the rows' values chained
    out[np.arange(width) < lengths[:, None]] = np.fromiter(
        itertools.chain.from_iterable(rows), dtype=np.int64, count=int(lengths.sum())
    )
    return torch.from_numpy(out)


def _soft(votes: list[list[int]], classes: int) -> torch.Tensor:
    """Annotator vote distributions, one row per item; all-zero rows have no votes."""
    counts = np.zeros((len(votes), classes), dtype=np.float32)
    n_votes = np.fromiter(map(len, votes), dtype=np.int64, count=len(votes))
    rows = np.repeat(np.arange(len(votes)), n_votes)
    cols = np.fromiter(itertools.chain.from_iterable(votes), dtype=np.int64, count=len(rows))
    np.add.at(counts, (rows, cols), 1.0)
    # float32 counts over their number, as a row at a time did: the same bits
    counts /= np.maximum(n_votes, 1).astype(np.float32)[:, None]
    return torch.from_numpy(counts)


def _goals(records: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Goals numbered across the batch; `goal [N]` maps each turn to its goal or -1."""
    goal, success, votes, offset = [], [], [], 0
    for r in records:
        goal += [g + offset if g >= 0 else -1 for g in r["goal"]]
        success += r["goals"]["success"]
        votes += r["goals"]["votes"]
        offset += len(r["goals"]["success"])
    return {
        "goal": torch.tensor(goal, dtype=torch.long),
        "goal_success": torch.tensor(success, dtype=torch.long),
        "goal_success_soft": _soft(votes, 2),
    }
