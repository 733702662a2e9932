from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pyarrow.parquet as pq
import pytest

from labelgen.cli import main
from labelgen.data.synth import synth_to_file
from labelgen.models.export import export_model
from tests.conftest import ROOT
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


@pytest.fixture(scope="session")
def log(tmp_path_factory) -> Path:
    """60 synthetic dialogues with two broken records among them (input lines 11 and 41)."""
    folder = tmp_path_factory.mktemp("log")
    synth_to_file(folder / "clean.jsonl", 60, seed=5)
    lines = (folder / "clean.jsonl").read_text().splitlines()
    lines.insert(10, '{"dialogue_id": "cut", "turns": [')
    lines.insert(40, json.dumps({"dialogue_id": "empty", "turns": []}))
    (folder / "log.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "log.jsonl"


def label_args(out: Path, model: Path, log: Path, *extra: str) -> list[str]:
    """`labelgen label` arguments shared by the tests: shards of 16 records (4 for `log`)."""
    return [
        "label",
        "--model",
        str(model),
        "--input",
        str(log),
        "--output",
        str(out),
        "--shard-size",
        "16",
        "--batch-size",
        "4",
        "--accelerator",
        "cpu",
        *extra,
    ]


def label(out: Path, model: Path, log: Path, *extra: str) -> dict:
    assert main(label_args(out, model, log, *extra)) == 0
    return json.loads((out / "_manifest.json").read_text())


def parts(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("part-*.parquet"))}


def outcome(out: Path) -> dict[str, dict[str, bytes]]:
    """What a finished job leaves that must not depend on how it got there: the labels, the
    rejects and the per-shard counts, byte for byte (the lock and the manifest's speed aside)."""
    return {
        folder: {p.name: p.read_bytes() for p in sorted((out / folder).glob("part-*"))}
        for folder in (".", "_rejects", "_done")
    }


def assert_consistent(out: Path) -> None:
    """What must hold whenever a job stops, however it stops: every visible part is whole,
    a part marked done is there, and the manifest only claims a complete output."""
    for part in out.glob("part-*.parquet"):
        pq.read_table(part)
    done = {p.stem for p in (out / "_done").glob("part-*.json")}
    assert done <= {p.stem for p in out.glob("part-*.parquet")}
    if (out / "_manifest.json").exists():
        manifest = json.loads((out / "_manifest.json").read_text())
        assert len(done) == manifest["shards"]


def hidden_files(out: Path) -> list[Path]:
    return sorted(out.rglob(".*"))


def spawn(args: list[str], *command: str) -> subprocess.Popen:
    """`python -m labelgen.cli ARGS` (or `python COMMAND...`) in a process of its own."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, *(command or ("-m", "labelgen.cli")), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
