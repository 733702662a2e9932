"""The LightningModule: the model's parts, its masked multi-task losses, metrics and optimizer.

Pretraining and fine-tuning are the same module with different task weights (and, in the data
module, corruptions on or off); the no-context baseline is `dialogue.context: false`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from labelgen.data.features import (
    CATEGORICAL,
    ECHO_TAGS,
    FEEDBACK,
    IGNORE,
    NUMERICAL,
    RESERVED,
    SATISFACTION_CLASSES,
    FeatureSpace,
)
from labelgen.data.tokenization import PairTemplate, load_tokenizer
from labelgen.models.checkpointing import (
    RNG_KEY,
    refer_to_pretrained,
    restore_frozen_encoder,
    rng_states,
    set_rng_states,
)
from labelgen.models.components.dialogue_encoder import DialogueConfig, DialogueEncoder
from labelgen.models.components.fusion import FeatureFusion, FusionConfig
from labelgen.models.components.heads import ClassifierHead, GoalSuccessHead, SlotHead
from labelgen.models.components.turn_encoder import EncoderConfig, TurnEncoder
from labelgen.models.init_from import matching_state

log = logging.getLogger(__name__)


def _masked_mean(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.unsqueeze(-1).to(states.dtype)
    return (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def class_weights(counts: list[int], balance: float) -> torch.Tensor:
    """share^-balance per class, scaled so that the average training item weighs 1; classes
    never seen weigh 1 (and so do all when balance is 0)."""
    counts_t = torch.tensor(counts, dtype=torch.float32)
    if balance == 0 or counts_t.sum() == 0:
        return torch.ones(len(counts))
    share = counts_t / counts_t.sum()
    weights = torch.where(share > 0, share.clamp(min=1e-12) ** -balance, torch.ones(()))
    return weights / (share * weights).sum()


def domain_masks(space: FeatureSpace) -> tuple[torch.Tensor, torch.Tensor]:
    """`[domain ids, intents]` and `[domain ids, slot tags]`: True where labeling may give a
    turn of that domain the class, from what the domain's training turns carried. Rows of the
    missing and unknown ids, and of domains with nothing recorded, allow every class; tag O is
    always allowed."""
    domains = space.categorical.get("domain", [])
    intents = torch.ones(len(domains) + RESERVED, max(1, len(space.intents)), dtype=torch.bool)
    tags = torch.ones(len(domains) + RESERVED, len(space.slot_tags), dtype=torch.bool)
    for row, domain in enumerate(domains, start=RESERVED):
        if allowed := set(space.domain_intents.get(domain, ())):
            intents[row] = torch.tensor([name in allowed for name in space.intents])
        if domain in space.domain_slots:
            allowed = set(space.domain_slots[domain])
            tags[row] = torch.tensor([tag == "O" or tag[2:] in allowed for tag in space.slot_tags])
    return intents, tags


FUSED_DEVICES = ("cpu", "cuda")
"""Where `OptimConfig.fused` runs AdamW's fused kernel (elsewhere its per-weight loop)."""

SOFT_TASKS = ("intent", "segment", "satisfaction")
"""Tasks whose targets come from the annotators' vote distribution where there is one."""

REACTION_TASKS = ("satisfaction", *FEEDBACK)
"""Tasks judging turn k's system response, whose evidence is mostly the user's reaction in
turn k+1 ("No, the bedroom speaker", a rephrase): their heads read turn k's and turn k+1's
contextual vectors side by side. The dialogue Transformer could route turn k+1 into turn k's
vector by attention alone, but with a few hundred rated dialogues it did not (USS-SGD: a rule
on turn k+1's user act alone beat the model on dissatisfaction F1)."""


@dataclass
class TaskConfig:
    weights: dict[str, float] = field(default_factory=lambda: {"defect": 1.0})
    """Loss weight per task; a task without a weight gets no head. Tasks: defect, intent,
    slots, segment, goal_success, satisfaction, barge_in, rephrase, rejection,
    explicit_feedback, contrastive (pretraining: in-batch matching of each intact turn's
    user utterance with its own system response among the batch's responses), and echo
    (pretraining: tag the user's words that the turn's response repeats, `features.echo_tags`,
    with the slot tagger's layers and an output of its own)."""
    contrastive_temperature: float = 0.1
    soft_targets: bool = True
    """Learn from the annotators' label distribution where a turn has per-annotator labels."""
    slot_dim: int | None = None
    """Width of the slot tagger (its LSTM runs over every user token: on CPU, the costliest
    head); None: the dialogue encoder's d_model."""
    goal_success_balance: float = 0.0
    """Weigh each goal outcome's loss by its training share to the power -balance: 0 plain,
    0.5 inverse square root, 1 fully balanced. Failed goals are rare (about 2% in SGD), and
    a plain loss can settle on "always succeeded"."""
    within_domain: bool = True
    """Labeling gives a turn of a domain seen in training only the intents and slots that
    domain's training turns carried (`FeatureSpace.domain_intents`, `domain_slots`): a turn of
    a hotel service whose city is `destination` is not tagged with another service's
    `location`. Turns of unseen domains, or without one, are unconstrained; training and the
    validation loss are unchanged."""

    def __post_init__(self) -> None:
        known = {
            "defect",
            "intent",
            "slots",
            "segment",
            "goal_success",
            "satisfaction",
            "contrastive",
            "echo",
            *FEEDBACK,
        }
        unknown = set(self.weights) - known
        if unknown:
            raise ValueError(f"tasks: unknown task(s) {sorted(unknown)}; known: {sorted(known)}")
        if any(w < 0 for w in self.weights.values()):
            raise ValueError("tasks: weights must be >= 0")
        if not 0.0 <= self.goal_success_balance <= 1.0:
            raise ValueError("tasks: goal_success_balance must be in [0, 1]")


@dataclass
class OptimConfig:
    lr: float = 1e-3
    """Learning rate of the dialogue encoder, fusion and heads."""
    encoder_lr: float = 3e-5
    """Learning rate of the pretrained turn encoder."""
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    """Linear warm-up over this share of the steps, then linear decay to zero."""
    init_lr: float | None = None
    """Learning rate of the weights (outside the pretrained encoder) that `init_from` loaded,
    e.g. a stage-1 dialogue Transformer fine-tuned more gently than the new heads; None: `lr`."""
    init_shrink: float = 1.0
    """Each weight `init_from` loaded (outside the pretrained encoder) starts at
    `init_shrink * loaded + (1 - init_shrink) * its fresh initialization`: 1 keeps the loaded
    weights, 0 is a fresh start. A network warm-started from weights trained to the end
    generalizes worse than one started fresh (Ash & Adams, 2020, "shrink and perturb"); on
    SGD a stage 1 that learned the swaps well was a worse start than none, shrunk a better one
    (docs/benchmarks.md, session 27)."""
    init_shrink_by: dict[str, float] = field(default_factory=dict)
    """`init_shrink` for the loaded weights whose names start with a key, e.g. {"slot_head.":
    1.0} keeps a slot tagger that stage 1 trained on its echo task whole while the dialogue
    Transformer is shrunk; the longest matching key wins."""
    fused: bool = False
    """AdamW updates every weight in one kernel (`torch.optim.AdamW(fused=True)`) where the
    weights are on CPU or CUDA, instead of a Python loop of per-weight operations. The same
    update rounded in another order, so other models; on CPU no faster for the quality
    benchmark's models (session 40: 0.997 of the loop's time, docs/benchmarks.md), so not the
    default, which trains the models the benchmarks report. Unmeasured on GPUs here."""

    def __post_init__(self) -> None:
        for name, shrink in {"": self.init_shrink, **self.init_shrink_by}.items():
            if not 0.0 <= shrink <= 1.0:
                where = f"init_shrink_by[{name!r}]" if name else "init_shrink"
                raise ValueError(f"optim.{where} must be in [0, 1], got {shrink}")

    def shrink_of(self, name: str) -> float:
        """The share of the loaded value that weight `name` starts at."""
        keys = [k for k in self.init_shrink_by if name.startswith(k)]
        return self.init_shrink_by[max(keys, key=len)] if keys else self.init_shrink


class LabelGenModule(L.LightningModule):
    """Turn encoder + feature fusion + dialogue encoder + heads.

    Args:
        encoder: The Hugging Face turn encoder.
        dialogue: The Transformer over turns (and the no-context switch).
        fusion: Categorical, numerical and audio feature fusion.
        tasks: Which heads exist and how their losses are weighted.
        optim: Optimizer and schedule.
        tokenizer: Linked from the data module: the encoder must speak it.
        feature_space: Linked from the data module: vocabularies and statistics of the
            training data, which size the embeddings and heads.
        init_from: A checkpoint whose matching weights initialize this model (stage 2 starts
            from stage 1 this way); heads and embeddings whose shapes differ are skipped.
    """

    def __init__(
        self,
        encoder: EncoderConfig | None = None,
        dialogue: DialogueConfig | None = None,
        fusion: FusionConfig | None = None,
        tasks: TaskConfig | None = None,
        optim: OptimConfig | None = None,
        tokenizer: str = "roberta-base",
        feature_space: FeatureSpace | dict | None = None,
        init_from: str | None = None,
    ) -> None:
        super().__init__()
        encoder = encoder or EncoderConfig()
        dialogue = dialogue or DialogueConfig()
        fusion = fusion or FusionConfig()
        self.tasks = tasks or TaskConfig()
        self.optim = optim or OptimConfig()
        if isinstance(feature_space, dict):
            feature_space = FeatureSpace(**feature_space)
        self.space = feature_space or FeatureSpace()
        # Plain dicts only: checkpoints must load with torch.load(weights_only=True).
        self.save_hyperparameters(
            {
                "encoder": asdict(encoder),
                "dialogue": asdict(dialogue),
                "fusion": asdict(fusion),
                "tasks": asdict(self.tasks),
                "optim": asdict(self.optim),
                "tokenizer": tokenizer,
                "feature_space": asdict(self.space),
            }
        )
        self.user_start = PairTemplate.from_tokenizer(load_tokenizer(tokenizer)).user_start
        self.encoder = TurnEncoder(encoder, tokenizer)
        d = dialogue.d_model
        self.audio_encoder = None
        if fusion.audio:
            from labelgen.models.components.audio import AudioEncoder

            self.audio_encoder = AudioEncoder(out_dim=fusion.audio_dim)
        self.fusion = FeatureFusion(
            self.encoder.out_dim, d, self.space.categorical_sizes(), len(NUMERICAL), fusion
        )
        self.dialogue = DialogueEncoder(dialogue)
        self.turn_tasks = {
            name: n for name, n in self._turn_task_sizes().items() if name in self.tasks.weights
        }
        self.heads = nn.ModuleDict(
            {
                name: ClassifierHead(
                    d, n, dialogue.dropout, in_dim=2 * d if name in REACTION_TASKS else d
                )
                for name, n in self.turn_tasks.items()
            }
        )
        # what a reaction head reads as "turn k+1" after the last turn, and for the no-context
        # baseline, which must not see the next turn
        self.no_next_turn = (
            nn.Parameter(torch.zeros(d)) if set(self.turn_tasks) & set(REACTION_TASKS) else None
        )
        self.slot_head = (
            SlotHead(
                self.encoder.hidden_size,
                self.tasks.slot_dim or d,
                len(self.space.slot_tags) if "slots" in self.tasks.weights else 0,
                dialogue.dropout,
                context_dim=d,
                echo_tags=len(ECHO_TAGS) if "echo" in self.tasks.weights else 0,
            )
            if {"slots", "echo"} & set(self.tasks.weights)
            else None
        )
        self.goal_head = (
            GoalSuccessHead(d, dialogue.dropout) if ("goal_success" in self.tasks.weights) else None
        )
        intents_allowed, tags_allowed = domain_masks(self.space)
        self.register_buffer("intents_allowed", intents_allowed, persistent=False)
        self.register_buffer("tags_allowed", tags_allowed, persistent=False)
        self.register_buffer(
            "goal_class_weights",
            class_weights(self.space.goal_outcomes, self.tasks.goal_success_balance),
            persistent=False,
        )
        self.contrast = None
        if "contrastive" in self.tasks.weights:
            h = self.encoder.hidden_size
            self.contrast = nn.ModuleDict({"user": nn.Linear(h, d), "system": nn.Linear(h, d)})
        self.metrics = nn.ModuleDict(
            {stage: self._metrics() for stage in ("train_", "val_", "test_")}
        )
        self.data_settings: dict[str, Any] = {}
        """The training data's paths and featurizer settings, when loaded from a checkpoint or
        an export that recorded them (`label` featurizes with the same token budgets)."""
        self.loaded_from_init: set[str] = set()
        """Names of the weights `init_from` loaded (their learning rate: `optim.init_lr`)."""
        if init_from:
            self.load_matching_weights(init_from)

    @property
    def has_slots(self) -> bool:
        """Whether the model tags slots (a stage 1 may have the tagger's layers without)."""
        return self.slot_head is not None and self.slot_head.out is not None

    def _turn_task_sizes(self) -> dict[str, int]:
        sizes = {
            "defect": 2,
            "intent": max(1, len(self.space.intents)),
            "segment": 3,
            "satisfaction": SATISFACTION_CLASSES,
        }
        return sizes | {name: 2 for name in FEEDBACK}

    def _metrics(self) -> MetricCollection:
        metrics: dict[str, Any] = {}
        for name, n in self.turn_tasks.items():
            metrics[f"{name}_acc"] = MulticlassAccuracy(n, average="micro", ignore_index=IGNORE)
            metrics[f"{name}_f1"] = MulticlassF1Score(n, average="macro", ignore_index=IGNORE)
        if self.has_slots:
            tags = len(self.space.slot_tags)
            metrics["slots_token_f1"] = MulticlassF1Score(
                tags, average="macro", ignore_index=IGNORE
            )
        if "echo" in self.tasks.weights:
            metrics["echo_token_f1"] = MulticlassF1Score(
                len(ECHO_TAGS), average="macro", ignore_index=IGNORE
            )
        if self.goal_head is not None:
            metrics["goal_success_f1"] = MulticlassF1Score(2, average="macro", ignore_index=IGNORE)
        return MetricCollection(metrics)

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        states, text = self.encoder(
            batch["input_ids"],
            batch["attention_mask"],
            batch.get("token_type_ids"),
            self._side_masks(batch) if self.encoder.config.pool_sides else None,
        )
        audio = None
        if self.audio_encoder is not None:
            audio = self.audio_encoder(batch["audio_features"], batch["audio_lengths"])
        turns = self.fusion(
            text, batch["categorical"], batch["numerical"], batch["numerical_mask"], audio
        )
        mask = batch["turn_mask"]
        grid = turns.new_zeros(*mask.shape, turns.shape[-1])
        grid[mask] = turns
        context_grid = self.dialogue(grid, mask)
        context = context_grid[mask]
        reaction = self._with_next_turn(context_grid, mask)
        out = {
            name: head(reaction if name in REACTION_TASKS else context)
            for name, head in self.heads.items()
        }
        out["turn_vectors"] = context
        out["token_states"] = states
        if self.slot_head is not None:
            width = batch["slot_tags"].shape[1]
            user = states[:, self.user_start : self.user_start + width]
            if user.shape[1] < width:  # defensive: never index past the turn
                user = F.pad(user, (0, 0, 0, width - user.shape[1]))
            positions = torch.arange(width, device=user.device)[None, :]
            out |= self.slot_head(
                user,
                context,
                positions < batch["user_len"][:, None],
                batch["user_shapes"][:, :width],
            )
        if self.goal_head is not None and "goal" in batch:
            out["goal_success"] = self.goal_head(
                context, batch["goal"], int(batch["goal_success"].shape[0])
            )
        return out

    def _with_next_turn(self, grid: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | None:
        """`[N, 2D]`: each real turn's contextual vector beside the next turn's."""
        if self.no_next_turn is None:
            return None
        has_next = torch.zeros_like(mask)
        if self.dialogue.config.context:
            has_next[:, :-1] = mask[:, 1:]
        nxt = torch.where(
            has_next[..., None],
            torch.roll(grid, -1, dims=1),
            self.no_next_turn.to(grid.dtype).expand_as(grid),
        )
        return torch.cat([grid, nxt], dim=-1)[mask]

    @torch.no_grad()
    def predict_step(self, batch: dict[str, Any], batch_idx: int = 0) -> dict[str, Any] | None:
        """Class probabilities per head; goals come from the predicted segments.

        Returns None for a batch without turns (a shard whose every record was rejected).
        """
        if "input_ids" not in batch:
            return None
        probs, turn_vectors = self.turn_probabilities(batch)
        return with_goals(probs, batch["turn_mask"], [(self, turn_vectors)])

    def turn_probabilities(self, batch: dict[str, Any]) -> tuple[dict[str, Any], torch.Tensor]:
        """Each turn head's (and the slot tagger's) class probabilities, and the turn vectors
        the goal-success head reads."""
        batch = {k: v for k, v in batch.items() if k != "goal"}
        out = self(batch)
        if self.tasks.within_domain:
            domain = batch["categorical"][:, CATEGORICAL.index("domain")]
            if "intent" in out:
                out["intent"] = out["intent"].masked_fill(~self.intents_allowed[domain], -torch.inf)
            if "slots" in out:
                allowed = self.tags_allowed[domain][:, None, :]
                out["slots"] = out["slots"].masked_fill(~allowed, -torch.inf)
        probs: dict[str, Any] = {name: out[name].float().softmax(-1) for name in self.turn_tasks}
        if self.has_slots:
            probs["slots"] = out["slots"].float().softmax(-1)
        return probs, out["turn_vectors"]

    def _task_loss(self, logits, target, soft=None, classes=None) -> torch.Tensor:
        """Cross-entropy over labeled items only; soft rows (annotator votes) where present.
        `classes`: a weight per class; an item weighs as its (expected) class."""
        logits = logits.float()
        has_hard = target != IGNORE
        per_item = F.cross_entropy(logits, target.clamp(min=0), reduction="none") * has_hard
        weight = has_hard.float()
        if classes is not None:
            weight = weight * classes[target.clamp(min=0)]
        if soft is not None and self.tasks.soft_targets:
            has_soft = soft.sum(-1) > 0
            soft_loss = -(soft * F.log_softmax(logits, -1)).sum(-1)
            per_item = torch.where(has_soft, soft_loss, per_item)
            soft_weight = (
                1.0 if classes is None else (soft * classes).sum(-1) / soft.sum(-1).clamp(min=1e-12)
            )
            weight = torch.where(has_soft, soft_weight, weight)
        # Dividing by the labeled count keeps the graph whole when a batch has no labels (DDP).
        return (per_item * weight).sum() / weight.sum().clamp(min=1.0)

    def _shared_step(self, batch: dict[str, Any], stage: str) -> torch.Tensor:
        out = self(batch)
        losses: dict[str, torch.Tensor] = {}
        metrics = self.metrics[f"{stage}_"]
        for name in self.turn_tasks:
            target = batch.get(name)
            if target is None:  # e.g. defect outside pretraining
                continue
            losses[name] = self._task_loss(out[name], target, batch.get(f"{name}_soft"))
            self._update(metrics, f"{name}_", out[name], target)
        for name, column in (("slots", "slot_tags"), ("echo", "echo_tags")):
            if name in out:
                tags = batch[column].reshape(-1)
                flat = out[name].reshape(-1, out[name].shape[-1])
                losses[name] = self._task_loss(flat, tags)
                self._update(metrics, f"{name}_token_", flat, tags)
        if self.goal_head is not None:  # even without goals: DDP needs every head in the graph
            losses["goal_success"] = self._task_loss(
                out["goal_success"],
                batch["goal_success"],
                batch["goal_success_soft"],
                self.goal_class_weights,
            )
            self._update(metrics, "goal_success_", out["goal_success"], batch["goal_success"])
        if self.contrast is not None:
            losses["contrastive"] = self._contrastive_loss(out["token_states"], batch)
        total = sum(self.tasks.weights.get(k, 0.0) * v for k, v in losses.items())
        total = total if isinstance(total, torch.Tensor) else out["turn_vectors"].sum() * 0.0
        size = len(batch["dialogue_id"])
        self.log(f"{stage}/loss", total, prog_bar=True, batch_size=size, sync_dist=stage != "train")
        for name, value in losses.items():
            self.log(f"{stage}/loss_{name}", value, batch_size=size, sync_dist=stage != "train")
        return total

    def _side_masks(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """`[N, L]` masks of each turn's user tokens and system tokens in the encoded pair."""
        ids = batch["input_ids"]
        positions = torch.arange(ids.shape[1], device=ids.device)[None, :]
        user = (positions >= self.user_start) & (
            positions < self.user_start + batch["user_len"][:, None]
        )
        start = batch["system_start"][:, None]
        system = (positions >= start) & (positions < start + batch["system_len"][:, None])
        return user, system

    def _contrastive_loss(self, states: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        """Symmetric InfoNCE: each intact turn's user tokens should pick out its own system
        response's tokens among every response in the batch. It asks the encoder for exactly
        what spotting a swapped response needs, with the batch as free negatives. Identical
        responses ("Anything else?") are counted as negatives, a small noise accepted."""
        user, system = self._side_masks(batch)
        keep = batch["system_len"] > 0
        if "defect" in batch:
            keep &= batch["defect"] == 0
        if int(keep.sum()) < 2:
            return states.sum() * 0.0
        u = F.normalize(self.contrast["user"](_masked_mean(states, user)[keep]).float(), dim=-1)
        s = F.normalize(self.contrast["system"](_masked_mean(states, system)[keep]).float(), dim=-1)
        logits = u @ s.T / self.tasks.contrastive_temperature
        target = torch.arange(len(u), device=u.device)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2

    def _update(self, metrics: MetricCollection, prefix: str, logits, target) -> None:
        if bool((target != IGNORE).any()):
            for key, metric in metrics.items():
                if key.startswith(prefix) and key.removeprefix(prefix) in ("acc", "f1"):
                    metric.update(logits.detach(), target)

    def _log_epoch_metrics(self, stage: str) -> None:
        metrics = self.metrics[f"{stage}_"]
        for key, metric in metrics.items():
            if metric.update_count:
                self.log(f"{stage}/{key}", metric.compute(), sync_dist=True)
            metric.reset()

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def on_train_epoch_end(self) -> None:
        self._log_epoch_metrics("train")

    # A resumed fit continues exactly where the killed one stopped only if dropout draws the
    # same masks: the generators' states travel in every checkpoint. They are put back at the
    # first training batch, not at load, because Lightning draws from torch's generator in
    # between (the sanity check, each new DataLoader iterator's base seed). One process only:
    # a checkpoint holds rank 0's states, and handing them to every rank would give all ranks
    # the same masks; data order is exact either way (the sampler's own state).
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[RNG_KEY] = rng_states()
        refer_to_pretrained(self.encoder, checkpoint)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._resume_rng = checkpoint.get(RNG_KEY)
        restore_frozen_encoder(checkpoint, self.encoder)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        states, self._resume_rng = getattr(self, "_resume_rng", None), None
        # only a resumed fit: a module merely loaded from a checkpoint keeps the seed's draws
        if states is not None and self.trainer.ckpt_path and self.trainer.world_size == 1:
            set_rng_states(states)

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test")

    def save_pretrained(self, save_directory: str, **kwargs: Any) -> Any:
        """The exported model format as a Hugging Face repository (`labelgen.models.hub`)."""
        from labelgen.models.hub import save_pretrained

        return save_pretrained(self, save_directory, **kwargs)

    @classmethod
    def from_pretrained(cls, name_or_path: str, **kwargs: Any) -> LabelGenModule:
        """An exported directory or a hub repository id (`labelgen.models.hub`)."""
        from labelgen.models.hub import from_pretrained

        return from_pretrained(name_or_path, **kwargs)

    def configure_optimizers(self) -> dict[str, Any]:
        # the pretrained weights only: a learned pooling on top is new and trains like a head
        encoder = list(self.encoder.model.parameters())
        encoder_ids = {id(p) for p in encoder}
        rest = [(n, p) for n, p in self.named_parameters() if id(p) not in encoder_ids]
        groups = [{"params": encoder, "lr": self.optim.encoder_lr}]
        if self.optim.init_lr is None:
            groups.append({"params": [p for _, p in rest], "lr": self.optim.lr})
        else:
            loaded = [p for n, p in rest if n in self.loaded_from_init]
            fresh = [p for n, p in rest if n not in self.loaded_from_init]
            groups += [
                {"params": loaded, "lr": self.optim.init_lr},
                {"params": fresh, "lr": self.optim.lr},
            ]
        groups = [g for g in groups if g["params"]]
        trained = [p for g in groups for p in g["params"] if p.requires_grad]
        # the fused kernels exist for floating-point weights on these devices (and a model
        # sharded by a strategy may hold others): elsewhere the loop, not an error
        fused = self.optim.fused and all(
            p.device.type in FUSED_DEVICES and p.is_floating_point() for p in trained
        )
        optimizer = torch.optim.AdamW(
            groups, weight_decay=self.optim.weight_decay, fused=fused or None
        )
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = int(self.optim.warmup_fraction * total)

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / (warmup + 1)
            return max(0.0, (total - step) / max(1, total - warmup))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def load_matching_weights(self, path: str) -> None:
        """Copy every weight of a checkpoint whose name and shape match, rows of vocabularies
        (services, intents, slot tags) matched by value; report the rest."""
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        try:
            restore_frozen_encoder(checkpoint, self.encoder)
        except ValueError as err:
            raise ValueError(f"init_from {path}: {err}") from err
        own = self.state_dict()
        matching, report = matching_state(own, self.space, checkpoint, self._vocab_heads())
        if not matching:
            raise ValueError(f"init_from {path}: no weight matches this model")
        # toward this model's own fresh weights; the pretrained encoder's own weights are the
        # loaded ones, left exactly as they are
        pretrained = {f"encoder.model.{name}" for name in self.encoder.model.state_dict()}
        # a key that names no loaded weight (a typo, or a stage 1 without that part) would
        # otherwise leave every weight at init_shrink without a word
        unused = [
            k for k in self.optim.init_shrink_by if not any(n.startswith(k) for n in matching)
        ]
        if unused:
            raise ValueError(
                f"init_from {path}: optim.init_shrink_by names no loaded weight: {unused}"
            )
        for name, value in matching.items():
            shrink = self.optim.shrink_of(name)
            if shrink < 1.0 and name not in pretrained and value.is_floating_point():
                matching[name] = shrink * value + (1.0 - shrink) * own[name].to(value.dtype)
        self.load_state_dict(matching, strict=False)
        self.loaded_from_init = set(matching)
        log.info(
            "init_from %s: %d tensors loaded, %d by vocabulary (%s), %d skipped (%s), %d new (%s)",
            path,
            len(report.loaded),
            len(report.remapped),
            ", ".join(f"{k} {hits}/{n}" for k, (hits, n) in report.remapped.items()),
            len(report.skipped),
            ", ".join(report.skipped[:5]),
            len(report.fresh),
            ", ".join(report.fresh[:5]),
        )

    def _vocab_heads(self) -> dict[str, str]:
        """Output layers whose rows are vocabulary values, by vocabulary."""
        heads = {}
        if "intent" in self.heads:
            heads["intents"] = f"heads.intent.net.{len(self.heads['intent'].net) - 1}"
        if self.has_slots:
            heads["slot_tags"] = "slot_head.out"
        return heads


def with_goals(
    probs: dict[str, Any],
    turn_mask: torch.Tensor,
    readers: list[tuple[LabelGenModule, torch.Tensor]],
) -> dict[str, Any]:
    """`probs` with the goals their segments decode to ("goal": each turn's goal number across
    the batch, -1 outside goals) and each goal's success probabilities, averaged over
    `readers` (models with a goal-success head, each with its own turn vectors of the batch).
    Unchanged when there is no segment head or no goal-success head."""
    readers = [(model, vectors) for model, vectors in readers if model.goal_head is not None]
    if "segment" not in probs or not readers:
        return probs
    from labelgen.labeling.decode import decode_goals

    # Goals numbered across the batch: each dialogue's continue after the previous ones.
    goal, offset, n_goals = [], 0, 0
    tags = probs["segment"].argmax(-1).tolist()
    for n in turn_mask.sum(1).tolist():
        ids = decode_goals(tags[offset : offset + n])
        goal += [g + n_goals if g >= 0 else -1 for g in ids]
        n_goals += max(ids, default=-1) + 1
        offset += n
    goal_t = torch.tensor(goal, device=turn_mask.device)
    success = [
        model.goal_head(vectors, goal_t, n_goals).float().softmax(-1) for model, vectors in readers
    ]
    return {**probs, "goal": goal_t, "goal_success": torch.stack(success).mean(0)}
