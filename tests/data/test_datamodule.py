from __future__ import annotations

import json
import threading
from dataclasses import asdict

import pytest

from labelgen.data.audio import AudioConfig
from labelgen.data.datamodule import LogDataModule, iter_dialogues, log_state
from labelgen.data.features import FeatureSpace
from labelgen.data.rejects import LogReadError
from labelgen.data.synth import generate
from tests.conftest import full_dialogue
from tests.models.conftest import MINILM


def _dm(tmp_path, train, **kwargs) -> LogDataModule:
    dm = LogDataModule(
        train=train, tokenizer=MINILM, batch_size=4, cache_dir=str(tmp_path / "c"), **kwargs
    )
    dm.setup("fit")
    return dm


def test_broken_records_go_to_a_rejects_file_and_training_goes_on(tmp_path):
    log = tmp_path / "log.jsonl"
    lines = [json.dumps(full_dialogue(f"d{i}")) for i in range(6)] + ["{broken"]
    log.write_text("\n".join(lines) + "\n")
    dm = _dm(tmp_path, str(log), val_fraction=0.34)
    assert len(dm.datasets["train"]) + len(dm.datasets["val"]) == 6
    [rejects] = (tmp_path / "c" / "rejects").glob("train-*.jsonl")
    [reject] = [json.loads(x) for x in rejects.open()]
    assert reject["source"] == f"{log}:7" and reject["reason"].startswith("invalid JSON")
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape[0] == int(batch["turn_mask"].sum())


def test_tokenized_log_is_cached_and_reused(tmp_path):
    first = _dm(tmp_path, "synth:20:0").datasets["train"]
    second = _dm(tmp_path, "synth:20:0").datasets["train"]
    assert first.cache_files and first.cache_files == second.cache_files
    other = _dm(tmp_path, "synth:20:1").datasets["train"]
    assert other.cache_files != first.cache_files


def test_without_validation_data_fit_trains_and_test_needs_a_log(tmp_path):
    dm = _dm(tmp_path, "synth:8:0")
    assert dm.val_dataloader() == [] and len(list(dm.train_dataloader())) == 2
    with pytest.raises(ValueError, match="no test log"):
        dm.test_dataloader()


def test_synthetic_source_spec_is_checked():
    with pytest.raises(LogReadError, match="synth:N:SEED"):
        list(iter_dialogues("synth:ten"))


def test_real_audio_flows_into_batches_and_bad_files_count_as_missing(tmp_path, shared_data):
    audio = shared_data / "audio"
    manifest = [json.loads(x) for x in (audio / "manifest.jsonl").open()][:3]
    turns = [{"user_text": m["utterance"], "audio_path": m["audio"]} for m in manifest]
    turns += [
        {"user_text": "eight k", "audio_path": "variants/1_00000_00_8k.wav"},
        {"user_text": "cut", "audio_path": "variants/1_00000_00_truncated.wav"},
        {"user_text": "noise", "audio_path": "variants/not_audio.wav"},
        {"user_text": "escape", "audio_path": "../sgd/dev/schema.json"},
        {"user_text": "no audio"},
    ]
    log = tmp_path / "audio.jsonl"
    log.write_text(json.dumps({"dialogue_id": "a", "turns": turns}) + "\n")
    dm = _dm(tmp_path, str(log), audio=AudioConfig(root=str(audio)))
    with pytest.warns(UserWarning):
        batch = next(iter(dm.train_dataloader()))
    lengths = batch["audio_lengths"].tolist()
    assert all(n > 50 for n in lengths[:4])  # real speech, 8 kHz resampled included
    assert lengths[4] > 0  # a truncated file keeps its readable part
    assert lengths[5:] == [0, 0, 0]  # not audio, outside the root, none: missing
    assert batch["audio_features"].shape[-1] == 80


def test_worker_processes_give_the_same_batches(tmp_path):
    plain = _dm(tmp_path, "synth:24:0")
    workers = _dm(tmp_path, "synth:24:0", num_workers=2)
    first = [b["input_ids"].tolist() for b in _loader(plain)]
    second = [b["input_ids"].tolist() for b in _loader(workers)]
    assert first == second and len(first) == 6


def test_an_order_cycle_repeats_the_corrupted_batches(tmp_path):
    from labelgen.data.corruptions import CorruptionConfig

    def epochs(dm, n):
        loader = dm.train_dataloader()
        seen = []
        for epoch in range(n):
            loader.batch_sampler.set_epoch(epoch)
            seen.append([(b["input_ids"].tolist(), b["defect"].tolist()) for b in loader])
        return seen

    corrupt = CorruptionConfig(swap_system=0.5)
    cycled = epochs(_dm(tmp_path, "synth:24:0", corruption=corrupt, order_cycle=2), 3)
    assert cycled[0] == cycled[2] and cycled[0] != cycled[1]
    # without a cycle, the third epoch is a new one, swaps and all
    plain = epochs(_dm(tmp_path, "synth:24:0", corruption=corrupt), 3)
    assert plain[:2] == cycled[:2] and plain[2] != cycled[2]
    assert any(flag == 1 for batch in cycled[0] for flag in batch[1])  # swaps were drawn


def _loader(dm):
    dm.datasets["val"] = dm.datasets["train"]
    return dm.val_dataloader()


def test_cache_is_keyed_by_the_featurizer_code_the_process_runs(tmp_path, monkeypatch):
    from labelgen.data import datamodule

    dm = LogDataModule(train="synth:4:0", tokenizer=MINILM, cache_dir=str(tmp_path / "c"))
    before = dm._settings()
    monkeypatch.setattr(datamodule, "FEATURIZER_HASH", "edited")
    assert dm._settings() != before  # new featurizer code: a new cache
    monkeypatch.undo()
    # the file read again from disk is not the key: the code imported at start-up is
    (tmp_path / "features.py").write_text("# edited after start-up\n")
    monkeypatch.setattr(datamodule.features, "__file__", str(tmp_path / "features.py"))
    assert dm._settings() == before


def test_a_log_rewritten_in_place_is_tokenized_again(tmp_path):
    # Same path, same settings and feature space, other dialogues: the cache must not serve
    # the old ones.
    log = tmp_path / "train.jsonl"
    space = LogDataModule(train="synth:20:1", tokenizer=MINILM).feature_space
    read = []
    for seed in (1, 2):
        log.write_text("".join(json.dumps(d.to_json_dict()) + "\n" for d in generate(6, seed)))
        dm = LogDataModule(train=str(log), tokenizer=MINILM, cache_dir=str(tmp_path / "c"))
        dm.feature_space = space
        dm.setup("fit")
        read.append(dm.datasets["train"]["dialogue_id"])
    assert read[0] == [d.dialogue_id for d in generate(6, 1)]
    assert read[1] == [d.dialogue_id for d in generate(6, 2)]


def test_log_state_follows_every_file_of_a_directory(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.json").write_text("[]")
    (tmp_path / "sub" / "b.json.gz").write_bytes(b"x")
    before = log_state(str(tmp_path))
    assert log_state(str(tmp_path)) == before
    assert "sub/b.json.gz" in before
    (tmp_path / "sub" / "b.json.gz").write_bytes(b"xy")
    assert log_state(str(tmp_path)) != before
    assert log_state("synth:4:0") == "synth:4:0"


def _write_log(path, dialogues):
    path.write_text("".join(json.dumps(d.to_json_dict()) + "\n" for d in dialogues))


def test_the_feature_space_is_scanned_once_per_state_of_the_log(tmp_path, monkeypatch):
    from labelgen.data import datamodule

    log = tmp_path / "train.jsonl"
    _write_log(log, generate(8, 1))

    def space():
        dm = LogDataModule(train=str(log), tokenizer=MINILM, cache_dir=str(tmp_path / "c"))
        return asdict(dm.feature_space)

    first = space()
    scans = []
    read = datamodule.iter_dialogues
    monkeypatch.setattr(
        datamodule, "iter_dialogues", lambda *a, **k: scans.append(a[0]) or read(*a, **k)
    )
    assert space() == first and scans == []  # read from the cache, the log untouched
    _write_log(log, generate(8, 2))  # rewritten in place: scanned again
    assert space() == asdict(FeatureSpace.build(generate(8, 2))) != first
    assert scans == [str(log)]


def test_a_process_waits_for_the_one_scanning_and_reads_its_result(tmp_path):
    from filelock import FileLock

    def dm():
        return LogDataModule(train="synth:8:1", tokenizer=MINILM, cache_dir=str(tmp_path / "c"))

    assert dm().feature_space.intents  # scanned, and kept in the cache
    [cached] = (tmp_path / "c" / "spaces").glob("*.json")
    cached.unlink()
    got = []
    with FileLock(f"{cached}.lock"):  # another process is scanning
        waiting = threading.Thread(target=lambda: got.append(dm().feature_space))
        waiting.start()
        waiting.join(timeout=0.5)
        assert waiting.is_alive() and not got
        other = FeatureSpace(intents=["what the other process found"])
        other.save(cached)
    waiting.join(timeout=30)
    assert got == [other]
