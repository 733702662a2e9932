from __future__ import annotations

import json

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger

from labelgen.data.features import SEGMENT_TAGS
from labelgen.data.tokenization import load_tokenizer
from labelgen.models.callbacks import MeanOfMetrics, PredictionTable
from tests.models.conftest import MINILM, make_module


def _fit(dm, *callbacks, logger, max_epochs=1, limit_train_batches=1) -> None:
    L.seed_everything(0)
    trainer = L.Trainer(
        accelerator="cpu",
        logger=logger,
        max_epochs=max_epochs,
        limit_train_batches=limit_train_batches,
        limit_val_batches=2,
        num_sanity_val_steps=1,
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
        callbacks=list(callbacks),
    )
    trainer.fit(make_module(dm), datamodule=dm)


def test_rows_show_the_first_dialogues_of_the_first_batch(finetune_dm):
    table = PredictionTable(max_dialogues=2)
    _fit(finetune_dm, table, logger=False)
    batch = next(iter(finetune_dm.val_dataloader()))
    records = {r["dialogue_id"]: r for r in finetune_dm.datasets["val"]}
    first = batch["dialogue_id"][:2]
    rows = [dict(zip(table.columns, row, strict=True)) for row in table.last_rows]
    assert [(r["dialogue_id"], r["turn"]) for r in rows] == [
        (d, t) for d in first for t in range(records[d]["n_turns"])
    ]
    tokenizer = load_tokenizer(MINILM)
    space = finetune_dm.feature_space
    for row in rows:
        record = records[row["dialogue_id"]]
        assert row["user"] == tokenizer.decode(record["user_ids"][row["turn"]])
        assert row["system"] == tokenizer.decode(record["system_ids"][row["turn"]])
        assert row["intent_pred"] in space.intents
        gold = record["intent"][row["turn"]]
        assert row["intent_gold"] == (None if gold < 0 else space.intents[gold])
        assert row["segment_pred"] in SEGMENT_TAGS and 1 <= row["satisfaction_pred"] <= 5
        assert 0.0 <= row["barge_in_pred"] <= 1.0
        assert row["barge_in_gold"] in (None, 0, 1)
        assert isinstance(row["slots_pred"], str)
    # Turns outside any goal have no goal-success cell.
    assert any(r["goal_success_pred"] is None for r in rows)
    assert any(r["slots_gold"] for r in rows)


def test_logged_once_per_validation_epoch_not_in_the_sanity_check(
    finetune_dm, tmp_path, monkeypatch
):
    calls = []
    original = WandbLogger.log_table

    def spy(self, key, columns=None, data=None, dataframe=None, step=None):
        calls.append((key, step, len(data)))
        original(self, key, columns=columns, data=data, step=step)

    monkeypatch.setattr(WandbLogger, "log_table", spy)
    # W&B is disabled in tests (tests/conftest.py): the table is built and logged to a no-op run.
    logger = WandbLogger(save_dir=tmp_path)
    table = PredictionTable(max_dialogues=1)
    _fit(finetune_dm, table, logger=logger, max_epochs=2)
    logger.experiment.finish()
    assert [(key, step) for key, step, _ in calls] == [("val/samples", 1), ("val/samples", 2)]
    assert calls[-1][2] == len(table.last_rows) > 0


@pytest.fixture()
def offline_wandb(tmp_path, monkeypatch):
    """A W&B session that reads WANDB_MODE=offline: the session reads the environment once,
    so the disabled one of earlier tests is torn down first, and this one after."""
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    wandb.teardown()
    yield
    wandb.teardown()


def test_table_lands_in_the_offline_run(finetune_dm, tmp_path, offline_wandb):
    logger = WandbLogger(offline=True, save_dir=tmp_path)
    table = PredictionTable(max_dialogues=2)
    _fit(finetune_dm, table, logger=logger)
    logger.experiment.finish()
    (path,) = tmp_path.glob("wandb/offline-run-*/files/media/table/val/samples_*.table.json")
    logged = json.loads(path.read_text())
    assert logged["columns"] == table.columns
    assert len(logged["data"]) == len(table.last_rows)


def test_max_dialogues_must_be_positive():
    with pytest.raises(ValueError, match="max_dialogues"):
        PredictionTable(max_dialogues=0)


HEADS = ["val/intent_acc", "val/slots_token_f1", "val/segment_f1", "val/goal_success_f1"]


def test_the_epoch_a_mean_of_the_heads_chooses_has_the_best_mean(finetune_dm, tmp_path):
    """Every epoch's checkpoint kept: the one ModelCheckpoint calls best holds the highest mean
    of the heads' figures, recorded beside the loss of that epoch."""
    mean = MeanOfMetrics("val/heads_mean", HEADS)
    every = ModelCheckpoint(
        dirpath=tmp_path, filename="{epoch}", monitor="val/heads_mean", mode="max", save_top_k=-1
    )
    # Lightning runs checkpoints last whatever the order
    _fit(finetune_dm, every, mean, logger=False, max_epochs=4, limit_train_batches=2)
    means = {}
    for path in sorted(tmp_path.glob("epoch=*.ckpt")):
        state = torch.load(path, map_location="cpu", weights_only=False)
        (figures,) = [c["figures"] for k, c in state["callbacks"].items() if "MeanOfMetrics" in k]
        assert "val/loss" in figures and set(HEADS) <= set(figures)
        means[path.name] = sum(figures[key] for key in HEADS) / len(HEADS)
        # the figure recorded is the one the checkpoint was ranked by
        assert figures["val/heads_mean"] == pytest.approx(means[path.name], abs=1e-5)
    assert len(means) == 4 and len(set(means.values())) > 1  # the figure moves
    assert every.best_model_path.endswith(max(means, key=means.get))
    assert float(every.best_model_score) == pytest.approx(max(means.values()), abs=1e-5)


def test_a_figure_the_module_does_not_log_is_named(finetune_dm):
    """A head the model lacks is a mistake in the keys, not a head left out quietly."""
    mean = MeanOfMetrics("val/heads_mean", ["val/intent_acc", "val/no_such_f1"])
    with pytest.raises(KeyError, match="no_such_f1"):
        _fit(finetune_dm, mean, logger=False)
    with pytest.raises(ValueError, match="at least one"):
        MeanOfMetrics("val/heads_mean", [])
