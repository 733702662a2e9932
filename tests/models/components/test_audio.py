from __future__ import annotations

import pytest
import torch

from labelgen.data.audio import pad_features
from labelgen.models.components.audio import AudioEncoder

N_MELS = 8


@pytest.fixture
def encoder() -> AudioEncoder:
    torch.manual_seed(0)
    return AudioEncoder(n_mels=N_MELS, hidden=16, out_dim=12)


def test_output_shape_and_no_audio_rows(encoder: AudioEncoder) -> None:
    features, lengths = pad_features([torch.randn(9, N_MELS), None, torch.randn(4, N_MELS)], N_MELS)
    out = encoder(features, lengths)
    assert out.shape == (3, 12) and torch.isfinite(out).all()
    assert torch.equal(out[1], encoder.no_audio)
    assert not torch.equal(out[0], encoder.no_audio)


def test_gradients_reach_convs_and_no_audio(encoder: AudioEncoder) -> None:
    features, lengths = pad_features([torch.randn(7, N_MELS), None], N_MELS)
    encoder(features, lengths).square().sum().backward()
    for name, param in encoder.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


@pytest.mark.parametrize("length", [1, 2, 3, 5, 8])
def test_padding_invariance(encoder: AudioEncoder, length: int) -> None:
    turn = torch.randn(length, N_MELS) * 3 + 10
    alone = encoder(*pad_features([turn], N_MELS))
    batched = encoder(*pad_features([torch.randn(37, N_MELS), turn, None], N_MELS))
    torch.testing.assert_close(batched[1], alone[0], rtol=0, atol=1e-5)


def test_padding_values_do_not_leak(encoder: AudioEncoder) -> None:
    features, lengths = pad_features([torch.randn(5, N_MELS), torch.randn(11, N_MELS)], N_MELS)
    garbage = features.clone()
    garbage[0, 5:] = 1e6
    torch.testing.assert_close(encoder(garbage, lengths), encoder(features, lengths))


@pytest.mark.parametrize("steps", [0, 1, 3])
def test_batch_without_audio(encoder: AudioEncoder, steps: int) -> None:
    features = torch.zeros(4, steps, N_MELS)
    out = encoder(features, torch.zeros(4, dtype=torch.long))
    assert torch.equal(out, encoder.no_audio.expand(4, -1))
    out.sum().backward()
    assert encoder.no_audio.grad is not None and torch.equal(
        encoder.no_audio.grad, torch.full((12,), 4.0)
    )


def test_constant_and_single_frame_input_is_finite(encoder: AudioEncoder) -> None:
    # Zero variance (digital silence, one frame) must not divide by zero.
    features, lengths = pad_features([torch.full((6, N_MELS), -15.9), torch.ones(1, N_MELS)], 8)
    out = encoder(features, lengths)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in encoder.parameters() if p.grad is not None)


def test_empty_batch(encoder: AudioEncoder) -> None:
    assert encoder(torch.zeros(0, 0, N_MELS), torch.zeros(0, dtype=torch.long)).shape == (0, 12)


def test_bad_inputs_are_refused(encoder: AudioEncoder) -> None:
    with pytest.raises(ValueError):
        encoder(torch.zeros(2, 4, N_MELS + 1), torch.tensor([4, 4]))
    with pytest.raises(ValueError):
        encoder(torch.zeros(2, 4, N_MELS), torch.tensor([5, 0]))


def test_real_features_encode(shared_data) -> None:
    from labelgen.data.audio import AudioConfig, AudioFeaturizer

    featurizer = AudioFeaturizer(AudioConfig(root=str(shared_data / "audio")))
    turns = [featurizer("wav/1_00000_00.wav"), None, featurizer("wav/1_00000_02.wav")]
    encoder = AudioEncoder()
    out = encoder(*pad_features(turns, 80))
    assert out.shape == (3, 64) and torch.isfinite(out).all()
