from __future__ import annotations

import pytest
import torch

from labelgen.data.corruptions import CorruptionConfig
from labelgen.data.features import IGNORE
from tests.models.conftest import make_datamodule


@pytest.mark.parametrize("log", ["sgd/dev", "uss/SGD.txt"])
def test_a_batch_holds_each_turns_tokens_tags_and_votes_where_the_turn_says(
    tmp_path, shared_data, log
):
    # SGD: slot tags, users who say nothing taggable; USS: 3-7 annotators' votes per turn
    dm = make_datamodule(tmp_path, train=str(shared_data / log), max_dialogues=12)
    records = list(dm.datasets["train"])
    # a last turn the system never answered (a log cut off): the single-text template
    cut = {**records[0], "dialogue_id": "cut", "system_ids": [*records[0]["system_ids"][:-1], []]}
    records.append(cut)
    collate = dm.collator(corrupt=False)
    batch = collate(records)
    template = collate.template
    turns = [(r, t) for r in records for t in range(r["n_turns"])]
    assert batch["input_ids"].shape[0] == len(turns) > 50
    width = max(len(template.assemble(r["user_ids"][t], r["system_ids"][t])[0]) for r, t in turns)
    assert batch["input_ids"].shape[1] == width
    votes_seen = 0
    for i, (r, t) in enumerate(turns):
        ids, types = template.assemble(r["user_ids"][t], r["system_ids"][t])
        n = len(ids)
        assert batch["input_ids"][i, :n].tolist() == ids
        assert (batch["input_ids"][i, n:] == template.pad_id).all()
        assert batch["token_type_ids"][i, :n].tolist() == types
        assert batch["attention_mask"][i].tolist() == [1] * n + [0] * (width - n)
        tags, shapes = r["slot_tags"][t], r["user_shapes"][t]
        assert batch["slot_tags"][i, : len(tags)].tolist() == tags
        assert (batch["slot_tags"][i, len(tags) :] == IGNORE).all()
        assert batch["echo_tags"][i, : len(tags)].tolist() == r["echo_tags"][t]
        assert (batch["echo_tags"][i, len(tags) :] == IGNORE).all()
        assert batch["user_shapes"][i, : len(shapes)].tolist() == shapes
        assert (batch["user_shapes"][i, len(shapes) :] == 0).all()
        for name in ("intent", "segment", "satisfaction"):
            votes = r[f"{name}_votes"][t]
            expected = torch.zeros(batch[f"{name}_soft"].shape[1])
            for v in votes:
                expected[v] += 1.0
            if votes:
                expected /= len(votes)
                votes_seen += len(set(votes)) > 1  # a split vote: shares, not one-hots
            assert torch.equal(batch[f"{name}_soft"][i], expected)
    assert turns[-1][0]["system_ids"][-1] == []
    assert batch["token_type_ids"][-1].max() == 0  # no system segment on the cut turn
    if log.startswith("uss"):
        assert votes_seen > 10
    else:
        assert (batch["slot_tags"] >= 0).sum() > 100
    for name in ("input_ids", "attention_mask", "token_type_ids", "slot_tags", "user_shapes"):
        assert batch[name].dtype == torch.long, name


def test_a_corrupted_turn_has_no_echo_target(tmp_path, shared_data):
    # its response (or its place) is not the one its user words were compared with
    corruption = CorruptionConfig(swap_system=0.5, swap_user=0.1)
    dm = make_datamodule(tmp_path, corruption, train=str(shared_data / "sgd/dev"), max_dialogues=12)
    batch = dm.collator(corrupt=True)(list(dm.datasets["train"]))
    defect = batch["defect"] == 1
    real = torch.arange(batch["echo_tags"].shape[1])[None, :] < batch["user_len"][:, None]
    assert defect.sum() > 10 and (~defect).sum() > 10
    assert (batch["echo_tags"][defect] == IGNORE).all()
    intact = batch["echo_tags"][~defect & real.any(1)]
    assert (intact[real[~defect & real.any(1)]] != IGNORE).all() and (intact > 0).sum() > 5
