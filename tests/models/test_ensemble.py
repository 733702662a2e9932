from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import lightning as L
import pytest
import torch

from labelgen.labeling.decode import decode_goals
from labelgen.models.ensemble import Ensemble, EnsembleError
from tests.models.conftest import make_module


def _perturbed(dm, k: int, **kwargs):
    """Models with the same features and heads and other weights (as from other seeds)."""
    L.seed_everything(k)
    module = make_module(dm, **kwargs).eval()
    with torch.no_grad():
        for param in module.parameters():
            param.add_(torch.randn_like(param) * 0.5 * k)
    return module


def test_the_ensemble_averages_each_heads_probabilities(finetune_dm, finetune_batch):
    members = [_perturbed(finetune_dm, k) for k in range(2)]
    with torch.no_grad():
        alone = [m.predict_step(finetune_batch) for m in members]
        together = Ensemble(members).predict_step(finetune_batch)
    turn_heads = [name for name in alone[0] if name not in ("goal", "goal_success")]
    assert {"intent", "slots", "segment", "satisfaction"} <= set(turn_heads)
    for name in turn_heads:
        torch.testing.assert_close(together[name], (alone[0][name] + alone[1][name]) / 2)
        assert not torch.allclose(alone[0][name], alone[1][name])  # a mean of two things
    # goals are decoded once, from the mean segments, and each member's head scores them
    tags = together["segment"].argmax(-1).tolist()
    n = finetune_batch["turn_mask"].sum(1).tolist()[0]
    assert together["goal"][:n].tolist() == decode_goals(tags[:n])
    n_goals = int(together["goal"].max()) + 1
    with torch.no_grad():
        success = [
            m.goal_head(m.turn_probabilities(finetune_batch)[1], together["goal"], n_goals)
            .float()
            .softmax(-1)
            for m in members
        ]
    torch.testing.assert_close(together["goal_success"], (success[0] + success[1]) / 2)


def test_a_model_with_itself_labels_as_the_model_alone(finetune_dm, finetune_batch):
    model = _perturbed(finetune_dm, 1)
    with torch.no_grad():
        alone = model.predict_step(finetune_batch)
        twice = Ensemble([model, model]).predict_step(finetune_batch)
    assert alone.keys() == twice.keys()
    for name, value in alone.items():
        assert torch.equal(twice[name], value), name


def test_models_that_read_a_batch_differently_are_refused(finetune_dm):
    model = _perturbed(finetune_dm, 0)
    other_space = replace(
        finetune_dm.feature_space, intents=[*finetune_dm.feature_space.intents, "NewIntent"]
    )
    L.seed_everything(0)
    other = make_module(SimpleNamespace(feature_space=other_space))
    with pytest.raises(EnsembleError, match="feature space"):
        Ensemble([model, other])
    fewer_heads = _perturbed(finetune_dm, 0, weights={"intent": 1.0, "satisfaction": 1.0})
    with pytest.raises(EnsembleError, match="heads"):
        Ensemble([model, fewer_heads])
    with pytest.raises(EnsembleError, match="at least 2"):
        Ensemble([model])
