"""`labelgen fit` end to end from the tiny configs: the way users run it."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import lightning as L
import pytest
import torch

from tests.conftest import ROOT, run_python

PRETRAIN = str(ROOT / "configs" / "pretrain-tiny.yaml")
FINETUNE = str(ROOT / "configs" / "finetune-tiny.yaml")
SMALL = ["--data.train", "synth:48:0", "--data.val", "synth:16:1", "--data.batch_size", "8"]


def _ckpt(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


class KillAtStep(L.Callback):
    """Dies like a preempted job: SIGKILL as step `step` starts, nothing flushed or closed."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, *_) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class LossLog(L.Callback):
    """Appends `global_step loss` after every training step, one file per run."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_batch_end(self, trainer, module, outputs, *_) -> None:
        with open(self.path, "a") as f:
            f.write(f"{trainer.global_step} {float(outputs['loss']):.9g}\n")


def _losses(path: Path) -> dict[int, float]:
    return {int(k): float(v) for k, v in (line.split() for line in path.read_text().splitlines())}


def _run(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return run_python(["-m", "labelgen.cli", *args], cwd, env, timeout=600)


def test_pretrain_then_finetune_with_checkpoints_and_wandb(tmp_path):
    # In a fresh process: a W&B session reads WANDB_MODE once, and the tests' is "disabled".
    offline = {"WANDB_MODE": "offline"}
    pretrain = _run(
        ["fit", "--config", PRETRAIN, *SMALL, "--trainer.max_epochs", "2"], tmp_path, offline
    )
    assert pretrain.returncode == 0, pretrain.stderr[-3000:]
    assert "args parameter is intended" not in pretrain.stderr  # not meant for our wrapper
    run = tmp_path / "runs" / "pretrain-tiny"
    assert (run / "config.yaml").exists()
    assert _ckpt(run / "checkpoints" / "last.ckpt")["global_step"] == 12
    assert list((run / "checkpoints").glob("best-*.ckpt"))
    [wandb_run] = (run / "wandb").glob("offline-run-*")
    assert list(wandb_run.glob("*.wandb"))
    (tmp_path / "results.json").write_text('{"command": "python x.py", "uss": {"f1": 0.31}}')
    exported = _run(
        [
            "export",
            "runs/pretrain-tiny/checkpoints/last.ckpt",
            "--out",
            "model",
            "--benchmark",
            "results.json",
        ],
        tmp_path,
    )
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert {"config.json", "model.safetensors", "tokenizer", "README.md"} <= {
        p.name for p in (tmp_path / "model").iterdir()
    }
    assert "| uss.f1 | 0.31 |" in (tmp_path / "model" / "README.md").read_text()
    finetune = _run(
        ["fit", "--config", FINETUNE, *SMALL, "--trainer.max_epochs", "1"], tmp_path, offline
    )
    assert finetune.returncode == 0, finetune.stderr[-3000:]
    assert "init_from runs/pretrain-tiny/checkpoints/last.ckpt" in finetune.stderr
    state = _ckpt(tmp_path / "runs" / "finetune-tiny" / "checkpoints" / "last.ckpt")
    assert "heads.intent.net.0.weight" in state["state_dict"]
    assert state["hyper_parameters"]["feature_space"]["intents"]


def test_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    # 6 steps per epoch, last.ckpt every 10 steps: killed at step 11, mid-epoch 2.
    args = [
        "fit",
        "--config",
        PRETRAIN,
        *SMALL,
        "--trainer.max_epochs",
        "3",
        "--trainer.logger",
        "false",
    ]
    log = ["--trainer.callbacks+=tests.test_training.LossLog", "--trainer.callbacks.path"]
    kill = ["--trainer.callbacks+=tests.test_training.KillAtStep", "--trainer.callbacks.step=11"]
    (tmp_path / "whole").mkdir()  # the config's paths are relative: its own directory
    whole = _run([*args, *log, str(tmp_path / "whole.txt")], tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-3000:]
    killed = _run([*args, *kill, *log, "killed.txt"], tmp_path)
    assert killed.returncode == -signal.SIGKILL
    last = tmp_path / "runs" / "pretrain-tiny" / "checkpoints" / "last.ckpt"
    saved = _ckpt(last)
    assert saved["global_step"] == 10
    assert saved["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [
        {"epoch": 1, "batches_done": 4}
    ]
    resumed = _run([*args, "--ckpt_path", "last", *log, "resumed.txt"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final = _ckpt(last)
    assert final["global_step"] == 18 and final["epoch"] == 2
    assert "not resumable" not in resumed.stderr
    # the resumed steps repeat the uninterrupted run's: same batches, same dropout masks
    whole_losses, resumed_losses = (
        _losses(tmp_path / "whole.txt"),
        _losses(tmp_path / "resumed.txt"),
    )
    assert sorted(resumed_losses) == list(range(11, 19))
    assert resumed_losses == pytest.approx({k: whole_losses[k] for k in resumed_losses}, abs=1e-6)
    # and the steps before the kill were the same run
    killed_losses = _losses(tmp_path / "killed.txt")
    assert killed_losses == pytest.approx({k: whole_losses[k] for k in killed_losses}, abs=1e-6)


@pytest.mark.slow
def test_two_process_ddp_on_cpu(tmp_path):
    # A real command: Lightning's DDP launcher starts the other rank by re-running argv.
    args = [
        "fit",
        "--config",
        PRETRAIN,
        *SMALL,
        "--trainer.max_epochs",
        "1",
        "--trainer.logger",
        "false",
        "--trainer.strategy",
        "ddp",
        "--trainer.devices",
        "2",
        "--trainer.accelerator",
        "cpu",
    ]
    result = _run(args, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    # 6 batches split over 2 ranks: 3 optimizer steps
    assert _ckpt(tmp_path / "runs/pretrain-tiny/checkpoints/last.ckpt")["global_step"] == 3


class _Payload:
    """Unpickling this runs a shell command: what a tampered checkpoint would carry."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_tampered_checkpoint_and_config_are_refused_not_executed(tmp_path):
    # a checkpoint is loaded as weights only: the pickled payload is refused, never called
    marker = tmp_path / "PWNED"
    torch.save({"state_dict": {}, "payload": _Payload(marker)}, tmp_path / "evil.ckpt")
    resumed = _run(["fit", "--config", PRETRAIN, *SMALL, "--ckpt_path", "evil.ckpt"], tmp_path)
    assert resumed.returncode != 0
    assert "weights_only" in resumed.stderr or "Unsupported global" in resumed.stderr
    # a config file is data: YAML's python tags are not constructed
    evil = tmp_path / "evil.yaml"
    evil.write_text(f'trainer:\n  max_epochs: !!python/object/apply:os.system ["touch {marker}"]\n')
    parsed = _run(["fit", "--config", PRETRAIN, "--config", str(evil), *SMALL], tmp_path)
    assert parsed.returncode != 0
    assert not marker.exists()
