"""`save_pretrained` / `from_pretrained`: the exported format as a Hugging Face model repo."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch

import labelgen.models.hub as hub
from labelgen.models.labelgen_module import LabelGenModule
from tests.models.conftest import make_module


@pytest.fixture(scope="module")
def batch(finetune_dm):
    return next(iter(finetune_dm.val_dataloader()))


def _same(a: LabelGenModule, b: LabelGenModule, batch) -> None:
    with torch.no_grad():
        expected, actual = a.eval()(batch), b(batch)
    for name, value in expected.items():
        torch.testing.assert_close(actual[name], value, atol=1e-6, rtol=0, msg=name)


def test_round_trip_with_a_model_card_and_a_hub_id(finetune_dm, batch, tmp_path, monkeypatch):
    L.seed_everything(0)
    module = make_module(finetune_dm).eval()
    results = {"command": "python scripts/benchmark_quality.py", "sgd": {"model/seen": {"f1": 0.9}}}
    out = module.save_pretrained(tmp_path / "repo", benchmarks=results)
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: labelgen\n")
    assert "| sgd.model/seen.f1 | 0.9 |" in card and "benchmark_quality.py" in card
    # the card is documentation: editing it (as on the hub) never breaks loading
    (out / "README.md").write_text(card + "\nEdited on the hub.\n")
    _same(module, LabelGenModule.from_pretrained(out), batch)

    # a hub id downloads the repository's export files, then loads them like a local export
    calls = []

    def snapshot_download(repo_id, revision, cache_dir, allow_patterns):
        calls.append((repo_id, revision, allow_patterns))
        return str(out)

    monkeypatch.setattr("huggingface_hub.snapshot_download", snapshot_download)
    _same(module, hub.from_pretrained("acme/labelgen-sgd", revision="v1"), batch)
    assert calls == [("acme/labelgen-sgd", "v1", hub.ALLOW)]
    assert not any(p.endswith((".py", ".bin", ".pt", ".pkl")) for p in hub.ALLOW)

    # a tampered download is refused like a tampered local export
    weights = json.loads((out / "config.json").read_text())["files"]
    assert "README.md" not in weights
    (out / "feature_space.json").write_text("{}")
    with pytest.raises(ValueError, match="sha256"):
        hub.from_pretrained("acme/labelgen-sgd")


@pytest.mark.parametrize("name", ["no-slash", "a/b/c", "/abs/path", "./rel/x", "a/b c"])
def test_what_is_neither_a_directory_nor_a_repo_id(name):
    with pytest.raises(FileNotFoundError, match="hub repository id"):
        hub.from_pretrained(name)


def test_a_repo_id_that_cannot_be_fetched_is_one_clear_error(monkeypatch, tmp_path, capsys):
    from labelgen.cli import main

    def offline(**kwargs):
        raise OSError("offline mode is enabled")

    monkeypatch.setattr("huggingface_hub.snapshot_download", offline)
    with pytest.raises(FileNotFoundError, match=r"could not be fetched.*offline mode"):
        hub.from_pretrained("runs/model")  # a mistyped local path looks like a repo id
    log = tmp_path / "log.jsonl"
    log.write_text('{"dialogue_id": "d", "turns": [{"user_text": "hi"}]}\n')
    args = ["label", "--model", "runs/model", "--input", str(log), "--output", str(tmp_path / "o")]
    assert main(args) == 2
    assert "could not be fetched" in capsys.readouterr().err
