"""What checkpoints hold beyond Lightning's own: the generators' states, a frozen encoder named
by digest instead of copied, and `last.ckpt` kept current for `--ckpt_path last`, written so
that a kill never corrupts it."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from labelgen.models.components.turn_encoder import DIGEST, EncoderConfig, TurnEncoder

RNG_KEY = "labelgen_rng_states"
FROZEN_KEY = "labelgen_frozen_encoder"
"""Where a checkpoint names its frozen encoder's weights: pretrained source and digest."""
_ENCODER = "encoder.model."


def rng_states() -> dict[str, Any]:
    """Python, NumPy, torch (and CUDA) generator states as tensors and plain values, so the
    checkpoint still loads with `torch.load(weights_only=True)` (NumPy arrays would not)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [str(kind), torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "python": [version, list(internal), gauss_next],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def refer_to_pretrained(encoder: TurnEncoder, checkpoint: dict[str, Any]) -> None:
    """Takes a frozen encoder's weights out of `checkpoint` while they are still the ones
    `pretrained` gave, and names them by source and digest instead (`store_frozen`). The
    quality benchmark's best checkpoints were 90 MB of MiniLM each, written again at every
    improvement, and the weights are already where the model was built from."""
    digest = encoder.pretrained_digest
    if digest is None or encoder.fingerprint() != digest:
        return  # weights of its own: they are the checkpoint's to keep
    state = checkpoint["state_dict"]
    for name in [name for name in state if name.startswith(_ENCODER)]:
        del state[name]
    config = encoder.config
    checkpoint[FROZEN_KEY] = {
        "pretrained": config.pretrained,
        "architecture": dict(config.architecture),
        "attn_implementation": config.attn_implementation,
        "digest": digest,
        "hash": DIGEST,
    }


SOURCE_ERRORS = (OSError, ImportError, ValueError)
"""What loading a pretrained source raises when it is not there (a missing path: the hub's
HFValidationError, a ValueError; a `package:` not installed: ImportError)."""


def unreachable_source(source: str, err: Exception) -> str:
    return (
        f"the checkpoint's frozen encoder is {source!r}, which it does not copy, and it "
        f"cannot be loaded from there ({err})"
    )


def restore_frozen_encoder(checkpoint: dict[str, Any], encoder: TurnEncoder | None) -> None:
    """Puts the frozen encoder weights a checkpoint names by digest back into its state dict,
    so that it loads as one that holds them: `encoder`'s own weights when they are those (a
    model built from the same source), else loaded from the source again. Raises ValueError
    when the source is gone or its weights differ from the ones trained with."""
    reference = checkpoint.pop(FROZEN_KEY, None)
    if reference is None:
        return
    digest, source = reference["digest"], reference["pretrained"]
    # session 38 wrote blake2b digests and did not say so
    algorithm = reference.get("hash", "blake2b")
    if encoder is None or encoder.fingerprint(algorithm) != digest:
        config = EncoderConfig(
            pretrained=source,
            architecture=reference["architecture"],
            attn_implementation=reference["attn_implementation"],
            frozen=True,
            store_frozen=True,  # no digest taken twice: it is compared right here
        )
        try:
            encoder = TurnEncoder(config, tokenizer=source)
        except SOURCE_ERRORS as err:
            raise ValueError(unreachable_source(source, err)) from err
        found = encoder.fingerprint(algorithm)
        if found != digest:
            raise ValueError(
                f"the checkpoint's frozen encoder is {source!r} as it was when the model "
                f"trained (digest {digest}), which it does not copy; the weights there now "
                f"differ (digest {found}). Put those weights back there, or train with "
                "encoder.store_frozen to keep them in the checkpoint"
            )
    state = checkpoint["state_dict"]
    state.update({_ENCODER + name: t for name, t in encoder.model.state_dict().items()})


class LastCheckpoint(ModelCheckpoint):
    """Saves `last.ckpt` every `every_n_train_steps` steps, at each epoch end and at the end.

    Lightning's own `save_last` only follows the top-k saves of its callback, so a run killed
    between them could lose an epoch; and it writes in place, so a kill during the write leaves
    a broken file. Here the checkpoint is written beside the target and renamed over it.
    """

    def __init__(self, dirpath: str | None = None, every_n_train_steps: int = 100) -> None:
        super().__init__(
            dirpath=dirpath, save_top_k=0, save_last=True, every_n_train_steps=every_n_train_steps
        )

    def _save_last(self, trainer: L.Trainer) -> None:
        if self._should_skip_saving_checkpoint(trainer):
            return
        target = Path(self.format_checkpoint_name({}, self.CHECKPOINT_NAME_LAST))
        tmp = target.with_name(f".{target.name}.tmp")
        self.last_model_path = str(target)
        trainer.save_checkpoint(tmp, self.save_weights_only)
        if trainer.is_global_zero:
            os.replace(tmp, target)
        trainer.strategy.barrier()
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = str(target)

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if trainer.global_step % self._every_n_train_steps == 0:
            self._save_last(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save_last(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        return

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save_last(trainer)
