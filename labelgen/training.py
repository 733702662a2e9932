"""`labelgen fit|validate|test`: LightningCLI over the LabelGenModule and the LogDataModule."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence

from lightning.pytorch.cli import LightningCLI

from labelgen.data.datamodule import LogDataModule
from labelgen.models.labelgen_module import LabelGenModule

SUBCOMMANDS = ("fit", "validate", "test")


class LabelGenCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        # One tokenizer name for data and model; the feature space the data module builds from
        # the training log sizes the model's embeddings and heads.
        parser.link_arguments("data.tokenizer", "model.tokenizer")
        parser.link_arguments("data.feature_space", "model.feature_space", apply_on="instantiate")


def run(argv: Sequence[str]) -> int:
    # `labelgen fit ...` passes the arguments after the subcommand name on, as LightningCLI
    # asks of a wrapper; its warning about also finding them in sys.argv is for other callers.
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    LabelGenCLI(
        LabelGenModule,
        LogDataModule,
        args=list(argv),
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={"use_distributed_sampler": False},
    )
    # Close the W&B run now: left to process exit, its closing lines would follow whatever a
    # caller (the demo) prints last.
    if "wandb" in sys.modules and sys.modules["wandb"].run is not None:
        sys.modules["wandb"].finish()
    return 0
