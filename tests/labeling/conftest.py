from __future__ import annotations

import lightning as L
import pytest

from labelgen.models.export import export_model
from tests.models.conftest import make_datamodule, make_module


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny fine-tuned model, exported the way users hand models to `labelgen label`."""
    dm = make_datamodule(tmp_path_factory.mktemp("cache"))
    L.seed_everything(0)
    module = make_module(dm)
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
        limit_val_batches=0,
    )
    trainer.fit(module, datamodule=dm)
    return export_model(module, tmp_path_factory.mktemp("model") / "tiny")
