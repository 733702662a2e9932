from __future__ import annotations

import json

import lightning as L
import pytest
from lightning.pytorch.loggers import WandbLogger

from labelgen.data.features import SEGMENT_TAGS
from labelgen.data.tokenization import load_tokenizer
from labelgen.models.callbacks import PredictionTable
from tests.models.conftest import MINILM, make_module


def _fit(dm, callback, logger, max_epochs=1) -> None:
    L.seed_everything(0)
    trainer = L.Trainer(
        accelerator="cpu",
        logger=logger,
        max_epochs=max_epochs,
        limit_train_batches=1,
        limit_val_batches=2,
        num_sanity_val_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
        callbacks=[callback],
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
    _fit(finetune_dm, table, logger, max_epochs=2)
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
    _fit(finetune_dm, table, logger)
    logger.experiment.finish()
    (path,) = tmp_path.glob("wandb/offline-run-*/files/media/table/val/samples_*.table.json")
    logged = json.loads(path.read_text())
    assert logged["columns"] == table.columns
    assert len(logged["data"]) == len(table.last_rows)


def test_max_dialogues_must_be_positive():
    with pytest.raises(ValueError, match="max_dialogues"):
        PredictionTable(max_dialogues=0)
