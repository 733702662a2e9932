"""Checkpoints of a frozen encoder still as `pretrained` gave it: named by digest, not copied."""

from __future__ import annotations

import shutil
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModel

from labelgen.data.tokenization import load_tokenizer
from labelgen.models.checkpointing import FROZEN_KEY
from labelgen.models.components.turn_encoder import EncoderConfig
from labelgen.models.export import ExportError, load_checkpoint
from labelgen.models.labelgen_module import LabelGenModule
from tests.models.conftest import MINILM, TINY_ROBERTA, make_module

ENCODER = "encoder.model."


@pytest.fixture()
def source(tmp_path) -> Path:
    """A small encoder saved as a Hugging Face model directory: a `pretrained` whose weights
    the tests can change or take away."""
    arch = dict(TINY_ROBERTA.architecture)
    config = AutoConfig.for_model(arch.pop("model_type"), **arch)
    tokenizer = load_tokenizer(MINILM)
    config.vocab_size, config.pad_token_id = len(tokenizer), tokenizer.pad_token_id
    torch.manual_seed(0)
    path = tmp_path / "encoder"
    AutoModel.from_config(config, add_pooling_layer=False).save_pretrained(path)
    return path


def _train(dm, source: Path, out: Path, **encoder) -> tuple[LabelGenModule, Path]:
    L.seed_everything(0)
    config = EncoderConfig(pretrained=str(source), frozen=True, pooling="mean", **encoder)
    module = make_module(dm, encoder=config)
    best = ModelCheckpoint(dirpath=out, filename="best", monitor="val/loss")
    _trainer(1, callbacks=[best]).fit(module, datamodule=dm)
    return module, Path(best.best_model_path)


def _trainer(epochs: int, **options) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        max_epochs=epochs,
        limit_train_batches=2,
        limit_val_batches=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **options,
    )


def _same_weights(expected: LabelGenModule, actual: LabelGenModule) -> None:
    want, got = expected.state_dict(), actual.state_dict()
    assert want.keys() == got.keys()
    for name, value in want.items():
        assert torch.equal(got[name], value), name


def test_frozen_source_weights_are_named_and_every_load_puts_them_back(
    finetune_dm, source, tmp_path
):
    module, path = _train(finetune_dm, source, tmp_path / "named")
    _, stored_path = _train(finetune_dm, source, tmp_path / "stored", store_frozen=True)
    named = torch.load(path, weights_only=True)
    copied = torch.load(stored_path, weights_only=True)
    assert not any(name.startswith(ENCODER) for name in named["state_dict"])
    assert named[FROZEN_KEY]["pretrained"] == str(source) and FROZEN_KEY not in copied
    for name, value in module.encoder.model.state_dict().items():
        assert torch.equal(copied["state_dict"][ENCODER + name], value), name
    encoder_bytes = sum(p.numel() * p.element_size() for p in module.encoder.model.parameters())
    assert stored_path.stat().st_size - path.stat().st_size >= encoder_bytes

    labeling, _ = load_checkpoint(path)  # how `labelgen label` loads a checkpoint
    _same_weights(module, labeling)
    started = make_module(
        finetune_dm, encoder=module.encoder.config, init_from=str(path)
    )  # stage 2 from stage 1
    _same_weights(module, started)
    # a resumed fit loads it too (strictly): one more epoch from it
    resumed = make_module(finetune_dm, encoder=module.encoder.config)
    trainer = _trainer(2, enable_checkpointing=False)
    trainer.fit(resumed, datamodule=finetune_dm, ckpt_path=path)
    assert resumed.current_epoch == 2


def test_changed_or_missing_source_weights_refuse_to_load(finetune_dm, source, tmp_path):
    _, path = _train(finetune_dm, source, tmp_path / "run")
    weights = load_file(source / "model.safetensors")
    name = next(n for n in weights if n.endswith("LayerNorm.weight"))
    weights[name] = weights[name] + 1e-3
    save_file(weights, source / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ExportError, match="the weights there now differ"):
        load_checkpoint(path)
    with pytest.raises(ValueError, match=r"init_from .*the weights there now differ"):
        make_module(finetune_dm, encoder=EncoderConfig(pretrained=MINILM), init_from=str(path))
    shutil.rmtree(source)
    with pytest.raises(ExportError, match="cannot be loaded from there"):
        load_checkpoint(path)


def test_weights_that_are_not_the_sources_are_written(finetune_dm, source, tmp_path):
    # changed after they were loaded (as stage 1 adapts them, or init_from loads others)
    module, _ = _train(finetune_dm, source, tmp_path / "first")
    with torch.no_grad():
        next(module.encoder.model.parameters()).add_(1e-3)
    module.trainer.save_checkpoint(tmp_path / "changed.ckpt")
    changed = torch.load(tmp_path / "changed.ckpt", weights_only=True)
    assert FROZEN_KEY not in changed
    _same_weights(module, load_checkpoint(tmp_path / "changed.ckpt")[0])
    # a source that lacks a weight: the model drew it at random, which no load would redraw
    weights = load_file(source / "model.safetensors")
    del weights[next(n for n in weights if n.endswith("LayerNorm.bias"))]
    save_file(weights, source / "model.safetensors", metadata={"format": "pt"})
    drawn, path = _train(finetune_dm, source, tmp_path / "drawn")
    assert drawn.encoder.pretrained_digest is None
    assert FROZEN_KEY not in torch.load(path, weights_only=True)
    _same_weights(drawn, load_checkpoint(path)[0])


def test_checkpoints_naming_their_encoder_by_a_blake2b_digest_still_load(
    finetune_dm, source, tmp_path
):
    # session 38 wrote blake2b digests, without saying which hash: they load as before
    module, path = _train(finetune_dm, source, tmp_path / "run")
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint[FROZEN_KEY]["hash"] == "xxh3_128"
    assert checkpoint[FROZEN_KEY]["digest"] == module.encoder.fingerprint()
    del checkpoint[FROZEN_KEY]["hash"]
    checkpoint[FROZEN_KEY]["digest"] = module.encoder.fingerprint("blake2b")
    torch.save(checkpoint, tmp_path / "older.ckpt")
    _same_weights(module, load_checkpoint(tmp_path / "older.ckpt")[0])
    _same_weights(
        module,
        make_module(
            finetune_dm, encoder=module.encoder.config, init_from=str(tmp_path / "older.ckpt")
        ),
    )
    # read by the hash it names: the new digest taken for a blake2b one is refused
    checkpoint[FROZEN_KEY]["digest"] = module.encoder.fingerprint()
    torch.save(checkpoint, tmp_path / "mixed.ckpt")
    with pytest.raises(ExportError, match="the weights there now differ"):
        load_checkpoint(tmp_path / "mixed.ckpt")
    checkpoint[FROZEN_KEY]["hash"] = "sha3_512"  # a hash this version does not know
    torch.save(checkpoint, tmp_path / "newer.ckpt")
    with pytest.raises(ExportError, match="'sha3_512' cannot be checked here"):
        load_checkpoint(tmp_path / "newer.ckpt")
