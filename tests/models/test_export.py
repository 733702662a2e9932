from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

import labelgen.models.export as export
from labelgen.data.tokenization import load_tokenizer, resolve_pretrained
from labelgen.models.components.dialogue_encoder import DialogueConfig
from labelgen.models.components.turn_encoder import EncoderConfig
from labelgen.models.export import (
    ExportError,
    export_model,
    load_exported,
    read_weights,
    save_weights,
)
from labelgen.models.labelgen_module import LabelGenModule
from tests.models.conftest import MINILM, make_module

FILES = {"config.json", "model.safetensors", "feature_space.json", "encoder_config.json"}


@pytest.fixture(scope="module")
def val_batch(finetune_dm):
    return next(iter(finetune_dm.val_dataloader()))


@pytest.fixture()
def module(finetune_dm) -> LabelGenModule:
    L.seed_everything(0)
    return make_module(finetune_dm).eval()


def assert_same_outputs(original: LabelGenModule, loaded: LabelGenModule, batch) -> None:
    assert not loaded.training
    with torch.no_grad():
        expected, actual = original.eval()(batch), loaded(batch)
    assert expected.keys() == actual.keys()
    for name, value in expected.items():
        torch.testing.assert_close(actual[name], value, atol=1e-6, rtol=0, msg=name)


def test_export_from_a_module_loads_with_identical_outputs(module, val_batch, tmp_path):
    out = export_model(module, tmp_path / "model")
    assert {p.name for p in out.iterdir()} >= FILES
    assert (out / "tokenizer" / "tokenizer_config.json").is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["format_version"] == export.FORMAT_VERSION and config["labelgen_version"]
    assert config["hyper_parameters"]["tokenizer"] == MINILM
    assert json.loads((out / "encoder_config.json").read_text())["model_type"] == "roberta"
    loaded = load_exported(out)
    assert loaded.hparams["tokenizer"] == str(out.resolve() / "tokenizer")
    assert_same_outputs(module, loaded, val_batch)
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary directory left
    with pytest.raises(FileExistsError):
        export_model(module, out)


def test_export_from_a_checkpoint(finetune_dm, val_batch, tmp_path):
    L.seed_everything(0)
    trained = make_module(finetune_dm)
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=2,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
    )
    trainer.fit(trained, datamodule=finetune_dm)
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    out = export_model(tmp_path / "last.ckpt", tmp_path / "model")
    config = json.loads((out / "config.json").read_text())
    hparams = config["hyper_parameters"]
    assert hparams == {k: v for k, v in trained.hparams.items() if k != "feature_space"}
    loaded = load_exported(out)
    assert_same_outputs(trained, loaded, val_batch)
    # the training data's settings travel with the model: label featurizes as training did
    assert config["data"]["max_user_tokens"] == 24 and config["data"]["train"] == "synth:48:0"
    assert loaded.data_settings == config["data"]
    card = (out / "README.md").read_text()
    assert "synth:48:0" in card
    [heads] = [line for line in card.splitlines() if line.startswith("- Heads")]
    assert {"intent", "slots", "segment", "satisfaction"} <= set(heads.split(": ")[1].split(", "))


def test_pretrained_bert_encoder_loads_without_its_package(finetune_dm, val_batch, tmp_path):
    """MiniLM (a BERT with segment embeddings) stands in for `roberta-base`: once exported,
    neither the encoder's weights nor its tokenizer are looked up by name again."""
    L.seed_everything(0)
    original = LabelGenModule(
        encoder=EncoderConfig(pretrained=MINILM),
        dialogue=DialogueConfig(d_model=32, layers=1, heads=2),
        tokenizer=MINILM,
        feature_space=finetune_dm.feature_space,
    ).eval()
    out = export_model(original, tmp_path / "model")
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, MINILM.removeprefix("package:"), None)
        load_tokenizer.cache_clear()
        with pytest.raises(ImportError):
            resolve_pretrained(MINILM)
        loaded = load_exported(out)
    load_tokenizer.cache_clear()
    assert loaded.hparams["encoder"]["pretrained"] is None
    assert loaded.encoder.model.config.model_type == "bert" and loaded.encoder.use_token_types
    assert_same_outputs(original, loaded, val_batch)


def test_encoder_with_more_embedding_rows_than_tokens(module, val_batch, tmp_path):
    # Pretrained encoders may pad their vocabulary (DeBERTa-v3, ModernBERT).
    vocab = module.encoder.model.config.vocab_size + 8
    module.encoder.model.resize_token_embeddings(vocab)
    loaded = load_exported(export_model(module, tmp_path / "model"))
    assert loaded.encoder.model.config.vocab_size == vocab
    assert_same_outputs(module, loaded, val_batch)


def test_saved_precision_is_kept(module, val_batch, tmp_path):
    module = module.to(torch.bfloat16)
    loaded = load_exported(export_model(module, tmp_path / "model"))
    assert {p.dtype for p in loaded.parameters()} == {torch.bfloat16}
    assert_same_outputs(module, loaded, val_batch)


def test_tied_weights_of_a_roberta_mlm_are_stored_once(tmp_path):
    from transformers import AutoConfig, AutoModelForMaskedLM

    config = AutoConfig.for_model(
        "roberta", vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2
    )
    model = AutoModelForMaskedLM.from_config(config)
    state = model.state_dict()
    tied = ("roberta.embeddings.word_embeddings.weight", "lm_head.decoder.weight")
    assert state[tied[0]].data_ptr() == state[tied[1]].data_ptr()  # safetensors refuses these
    save_weights(state, tmp_path / "mlm.safetensors")
    restored = read_weights(tmp_path / "mlm.safetensors")
    assert restored.keys() == state.keys()
    fresh = AutoModelForMaskedLM.from_config(config)
    fresh.load_state_dict(restored, strict=True)
    fresh_state = fresh.state_dict()
    assert fresh_state[tied[0]].data_ptr() == fresh_state[tied[1]].data_ptr()
    for name, value in state.items():
        torch.testing.assert_close(fresh_state[name], value, atol=0, rtol=0)


def _flip_header(out: Path) -> None:
    path = out / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[10:20] = bytes(b ^ 0xFF for b in data[10:20])
    path.write_bytes(bytes(data))


def _truncate(name: str):
    def truncate(out: Path) -> None:
        path = out / name
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    return truncate


def _flip_header_and_checksum(out: Path) -> None:
    """Tampering that also rewrites the checksum is still caught by the safetensors reader."""
    _flip_header(out)
    config = json.loads((out / "config.json").read_text())
    config["files"]["model.safetensors"] = export._sha256(out / "model.safetensors")
    (out / "config.json").write_text(json.dumps(config))


def _swap_weights(out: Path) -> None:
    """A readable file whose tensors belong to another model."""
    save_weights({"weight": torch.zeros(2)}, out / "model.safetensors")
    config = json.loads((out / "config.json").read_text())
    config["files"]["model.safetensors"] = export._sha256(out / "model.safetensors")
    (out / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    ("tamper", "file", "reason"),
    [
        (_flip_header, "model.safetensors", "sha256"),
        (_truncate("model.safetensors"), "model.safetensors", "truncated"),
        (_truncate("config.json"), "config.json", "not valid JSON"),
        (_truncate("tokenizer/tokenizer.json"), "tokenizer.json", "sha256"),
        (_flip_header_and_checksum, "model.safetensors", "not a readable safetensors"),
        (_swap_weights, "model.safetensors", "do not fit"),
    ],
)
def test_tampered_export_is_refused(module, tmp_path, tamper, file, reason):
    out = export_model(module, tmp_path / "model")
    tamper(out)
    with pytest.raises(ExportError, match=reason) as err:
        load_exported(out)
    assert file in str(err.value)


class Payload:
    """Stands for anything a malicious checkpoint could make pickle construct."""

    def __reduce__(self):
        return (_unpickled, ())


UNPICKLED: list[bool] = []


def _unpickled() -> Payload:
    UNPICKLED.append(True)
    return Payload()


def test_checkpoint_with_a_pickled_object_is_refused(module, tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save(
        {
            "state_dict": module.state_dict(),
            "hyper_parameters": dict(module.hparams),
            "callbacks": {"x": Payload()},
        },
        path,
    )
    with pytest.raises(ExportError, match=r"refused.*arbitrary code") as err:
        export_model(path, tmp_path / "model")
    assert "_unpickled" in str(err.value)  # the message names what was refused
    assert not UNPICKLED
    assert not (tmp_path / "model").exists()


def test_checkpoint_of_another_kind_is_refused(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")
    with pytest.raises(ExportError, match="not a LabelGenModule checkpoint"):
        export_model(tmp_path / "other.ckpt", tmp_path / "model")


def test_interrupted_export_leaves_no_directory(module, val_batch, tmp_path, monkeypatch):
    class Crashing:
        def save_pretrained(self, path: str) -> None:
            Path(path).mkdir()
            (Path(path) / "tokenizer.json").write_text("{")
            raise KeyboardInterrupt

    out = tmp_path / "model"
    with monkeypatch.context() as patch:
        patch.setattr(export, "load_tokenizer", lambda name: Crashing())
        with pytest.raises(KeyboardInterrupt):
            export_model(module, out)
    assert list(tmp_path.iterdir()) == []
    # Replacing an export: a crash leaves the old one whole.
    export_model(module, out)
    with monkeypatch.context() as patch:
        patch.setattr(export, "load_tokenizer", lambda name: Crashing())
        with pytest.raises(KeyboardInterrupt):
            export_model(module, out, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    assert_same_outputs(module, load_exported(out), val_batch)
    export_model(module, out, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
