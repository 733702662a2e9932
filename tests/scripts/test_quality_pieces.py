"""Logs labeled in pieces (`quality.pieces`): each batch encoded once however long the log, and
the labels of the log labeled whole."""

from __future__ import annotations

import argparse
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import ROOT


def _table(folder):
    parts = sorted(folder.glob("part-*.parquet"))
    assert parts, folder
    table = pa.concat_tables([pq.read_table(p) for p in parts], promote_options="permissive")
    return table.sort_by([("dialogue_id", "ascending"), ("turn_index", "ascending")])


def _memos():
    from labelgen.models.components import turn_encoder

    return turn_encoder._BATCH_MEMOS.values()


@pytest.mark.slow
def test_pieces_encode_each_batch_once_and_label_as_the_whole_log(tmp_path, sgd_file, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    from quality import runs
    from quality.pieces import label_in_pieces, piece_size, write_pieces
    from quality.runs import label, read, train, write_log
    from quality.sgd import SGD_TASKS

    from labelgen.models.components.turn_encoder import clear_shared_caches

    dialogues = read(sgd_file, "sgd", 14, 0, rejects=tmp_path / "r.jsonl")[0]
    args = argparse.Namespace(
        out=tmp_path, epochs=1, pooling="mean", pool_sides=True, layers=4, seed=0,
        reuse_models=False, warm_cache=True, train_jobs=1,
    )  # fmt: skip
    model = train(
        tmp_path / "model",
        write_log(dialogues[:4], tmp_path / "train.parquet"),
        write_log(dialogues[4:6], tmp_path / "val.parquet"),
        SGD_TASKS,
        args,
    )
    log_dialogues = dialogues[6:]
    log = write_log(log_dialogues, tmp_path / "log.parquet")
    # the full run's pieces: whole shards within 70% of each process's share of the memo
    assert [piece_size(jobs) for jobs in (1, 2, 4, 64)] == [2048, 1024, 512, 512]
    monkeypatch.setattr(runs, "LABEL_SHARD", 2)  # four batches of 2 dialogues in the log
    with pytest.raises(ValueError, match="whole labeling shards of 2, got 3"):
        write_pieces(log_dialogues, log, 3)
    # a memo that holds half the log's states: labeled whole, each model's reads evict the
    # batches the next model reads first
    clear_shared_caches()
    monkeypatch.setattr(runs, "LABEL_MEMO_MB", 4096)
    label(model, log, tmp_path / "measure")
    log_mb = sum(memo.bytes for memo in _memos()) / 2**20
    monkeypatch.setattr(runs, "LABEL_MEMO_MB", math.ceil(log_mb / 2))
    assert log_mb > 3  # so the half is well above a piece's share of it (a quarter)

    def way(pieces, name):
        clear_shared_caches()
        calls = {k: (model, pieces, tmp_path / f"{name}-{k}") for k in ("a", "b")}
        labeled = label_in_pieces(calls, args)
        return labeled, sum(memo.misses for memo in _memos())

    whole, whole_misses = way([log], "whole")
    pieces = write_pieces(log_dialogues, log, 2)
    assert [p.name for p in pieces] == [f"log.piece{k}.parquet" for k in range(4)]
    assert write_pieces(log_dialogues, log, 8) == [log]  # a log that fits stays whole
    cut, cut_misses = way(pieces, "cut")
    assert whole_misses == 8  # each of the two calls encoded all four batches
    assert cut_misses == 4  # each batch once: the second call read the first call's states
    for key in ("a", "b"):
        # one folder of labels per call, the pieces' own folders gone, every turn labeled once
        assert sorted(p.name for p in cut[key].iterdir()) == [
            f"part-p{k}-000000.parquet" for k in range(4)
        ]
        assert not list(tmp_path.glob(f"cut-{key}.piece*"))
        assert _table(cut[key]).equals(_table(whole[key]))  # bit for bit
    turns = sum(len(d.turns) for d in log_dialogues)
    assert _table(cut["a"]).num_rows == turns
