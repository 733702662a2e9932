"""Training callbacks that need the LabelGenModule's heads and vocabularies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import WandbLogger

from labelgen.data.features import IGNORE, SEGMENT_TAGS, FeatureSpace
from labelgen.data.tokenization import load_tokenizer
from labelgen.models.labelgen_module import LabelGenModule


class MeanOfMetrics(L.Callback):
    """After each validation, the mean of some held-out figures the module logged, as one more
    metric (`name`) that a ModelCheckpoint or EarlyStopping can monitor.

    Why: the summed multi-task loss weighs each head by how far its loss moves. Where labels
    are few, a head that has stopped learning and grows overconfident can raise that sum while
    another head is still learning, so the epoch it chooses can be early for the other head
    (session 47: two of eight models on 200 dialogues chose epoch 11 of 64, slot F1 0.27 and
    0.35 where the others read 0.57-0.72). The mean of each head's own figure counts every
    head alike.

    The mean is written into `trainer.callback_metrics` at `on_validation_end`: the module's
    epoch figures are logged after every callback's `on_validation_epoch_end`, and Lightning
    runs ModelCheckpoint's `on_validation_end` after every other callback's. Every figure
    logged at that validation is kept as this callback's state, so a checkpoint saved there
    records, e.g., the validation loss of the epoch a figure chose.

    Args:
        name: The metric written, e.g. "val/heads_mean".
        keys: The logged figures averaged. Each must be logged at every validation: a head
            that logs no figure is a mistake in `keys`, not a head to leave out quietly.
    """

    def __init__(self, name: str, keys: list[str]) -> None:
        if not keys:
            raise ValueError("MeanOfMetrics needs at least one figure to average")
        self.name = name
        self.keys = list(keys)
        self.figures: dict[str, float] = {}

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = trainer.callback_metrics
        missing = [key for key in self.keys if key not in metrics]
        if missing:
            raise KeyError(
                f"{self.name}: {missing} were not logged at this validation "
                f"(logged: {sorted(metrics)})"
            )
        metrics[self.name] = torch.stack([metrics[key].float() for key in self.keys]).mean()
        self.figures = {
            key: round(float(value), 6)
            for key, value in metrics.items()
            if key.startswith("val/") and value.numel() == 1
        }

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "keys": self.keys, "figures": self.figures}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.figures = dict(state_dict["figures"])


class PredictionTable(L.Callback):
    """Each validation epoch, the first batch's predictions beside the gold labels, one row per
    turn, as the W&B table `val/samples`: errors read in context, turn by turn.

    Label tasks show the predicted name (intent, segment B/I/O, satisfaction 1-5), binary
    tasks (defect, feedback signals, goal success) the probability of 1, slots the spans as
    `slot=value`. A gold cell is None where the turn has no such label.

    Args:
        max_dialogues: Dialogues of the batch that go into the table.
    """

    def __init__(self, max_dialogues: int = 8) -> None:
        if max_dialogues < 1:
            raise ValueError(f"max_dialogues must be >= 1, got {max_dialogues}")
        self.max_dialogues = max_dialogues
        self.columns: list[str] = []
        self.last_rows: list[list[Any]] = []

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: dict[str, Any],
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if trainer.sanity_checking or batch_idx or dataloader_idx or not trainer.is_global_zero:
            return
        if not isinstance(pl_module, LabelGenModule):
            raise TypeError("PredictionTable reads the heads of a LabelGenModule")
        # validation_step returns no outputs; one more forward of one batch is cheap.
        with torch.no_grad():
            out = pl_module(batch)
        self.columns, self.last_rows = _rows(pl_module, batch, out, self.max_dialogues)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_table(
                    key="val/samples",
                    columns=self.columns,
                    data=self.last_rows,
                    step=trainer.global_step,
                )


def _rows(
    module: LabelGenModule, batch: dict[str, Any], out: dict[str, torch.Tensor], limit: int
) -> tuple[list[str], list[list[Any]]]:
    tokenizer = load_tokenizer(module.hparams["tokenizer"])
    lengths = batch["turn_mask"][:limit].sum(1).tolist()
    n = sum(lengths)
    ids = batch["input_ids"][:n].tolist()
    total = batch["attention_mask"][:n].sum(1).tolist()
    user_len = batch["user_len"][:n].tolist()
    start = module.user_start
    columns = ["dialogue_id", "turn", "user", "system"]
    cells: list[list[Any]] = [
        [d for d, k in zip(batch["dialogue_id"], lengths, strict=False) for _ in range(k)],
        [t for k in lengths for t in range(k)],
        [tokenizer.decode(row[start : start + u]) for row, u in zip(ids, user_len, strict=True)],
        # Skipping special tokens drops the separators and leaves "" for a turn without one.
        [
            tokenizer.decode(row[start + u : end], skip_special_tokens=True)
            for row, u, end in zip(ids, user_len, total, strict=True)
        ],
    ]
    for name in module.turn_tasks:
        logits = out[name][:n].float().cpu()
        gold = batch.get(name)
        gold = gold[:n].tolist() if gold is not None else [IGNORE] * n
        label = _labeler(name, module.space)
        if label is None:
            pred = [round(p, 4) for p in logits.softmax(-1)[:, 1].tolist()]
        else:
            pred = [label(i) for i in logits.argmax(-1).tolist()]
        columns += [f"{name}_pred", f"{name}_gold"]
        cells += [pred, [None if g == IGNORE else (label or int)(g) for g in gold]]
    if "slots" in out:
        tags = module.space.slot_tags
        users = [row[start : start + u] for row, u in zip(ids, user_len, strict=True)]
        pred = out["slots"][:n].argmax(-1).tolist()
        gold = batch["slot_tags"][:n].tolist()
        columns += ["slots_pred", "slots_gold"]
        cells += [
            [_spans(t[: len(u)], u, tags, tokenizer) for t, u in zip(pred, users, strict=True)],
            [
                None if t[0] == IGNORE else _spans(t[: len(u)], u, tags, tokenizer)
                for t, u in zip(gold, users, strict=True)
            ],
        ]
    if "goal_success" in out:
        goal = batch["goal"][:n].tolist()
        prob = out["goal_success"].float().softmax(-1)[:, 1].tolist()
        success = batch["goal_success"].tolist()
        columns += ["goal_success_pred", "goal_success_gold"]
        cells += [
            [None if g < 0 else round(prob[g], 4) for g in goal],
            [None if g < 0 or success[g] == IGNORE else success[g] for g in goal],
        ]
    return columns, [list(row) for row in zip(*cells, strict=True)]


def _labeler(name: str, space: FeatureSpace) -> Callable[[int], Any] | None:
    """Class index -> label shown in the table; None for binary tasks (shown as P(1))."""
    if name == "intent":
        return lambda i: space.intents[i] if i < len(space.intents) else str(i)
    if name == "segment":
        return SEGMENT_TAGS.__getitem__
    if name == "satisfaction":
        return lambda i: i + 1
    return None


def _spans(tags: list[int], tokens: list[int], names: list[str], tokenizer: Any) -> str:
    """BIO tags over a user turn's tokens -> "slot=value; slot=value"."""
    spans: list[tuple[str, list[int]]] = []
    current = None
    for tag, token in zip(tags, tokens, strict=True):
        prefix, _, slot = names[tag].partition("-") if 0 <= tag < len(names) else ("O", "", "")
        if prefix == "I" and slot == current:
            spans[-1][1].append(token)
        elif prefix in ("B", "I"):  # an I without its B still opens a span
            spans.append((slot, [token]))
        current = slot if prefix in ("B", "I") else None
    return "; ".join(f"{slot}={tokenizer.decode(ids).strip()}" for slot, ids in spans)
