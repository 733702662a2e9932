from __future__ import annotations

import json
import math
import pickle
import warnings
from pathlib import Path

import pytest
import soundfile as sf
import torch

from labelgen.data.audio import AudioConfig, AudioFeaturizer, AudioWarning, pad_features

ORIGINAL = "wav/1_00000_00.wav"


@pytest.fixture(scope="module")
def audio_root(shared_data: Path) -> Path:
    return shared_data / "audio"


@pytest.fixture
def featurizer(audio_root: Path) -> AudioFeaturizer:
    return AudioFeaturizer(AudioConfig(root=str(audio_root)))


@pytest.fixture(scope="module")
def original(audio_root: Path) -> torch.Tensor:
    features = AudioFeaturizer(AudioConfig(root=str(audio_root)))(ORIGINAL)
    assert features is not None
    return features


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1])


def _bands_below(hz: float, n_mels: int = 80, nyquist: float = 8000.0) -> list[int]:
    """Kaldi's mel bands (20 Hz to Nyquist) that end below `hz`."""
    mel = lambda f: 1127.0 * math.log1p(f / 700.0)  # noqa: E731
    lo, hi = mel(20.0), mel(nyquist)
    edges = [700.0 * math.expm1((lo + (hi - lo) * i / (n_mels + 1)) / 1127.0) for i in range(82)]
    return [i for i in range(n_mels) if edges[i + 2] < hz]


def _featurize(featurizer: AudioFeaturizer, path: str) -> tuple[torch.Tensor | None, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        features = featurizer(path)
    return features, [str(w.message) for w in caught if issubclass(w.category, AudioWarning)]


def test_every_manifest_wav_gives_10ms_frames(
    featurizer: AudioFeaturizer, audio_root: Path
) -> None:
    rows = [json.loads(line) for line in (audio_root / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 71
    for row in rows:
        features = featurizer(row["audio"])
        assert features is not None, row["audio"]
        assert features.dtype == torch.float32 and features.shape[1] == 80
        seconds = sf.info(str(audio_root / row["audio"])).duration
        assert abs(features.shape[0] - seconds * 100) <= 3, row["audio"]
        assert torch.isfinite(features).all()
    assert not featurizer.failures and not featurizer.partial


def test_features_are_deterministic(featurizer: AudioFeaturizer, original: torch.Tensor) -> None:
    again = featurizer(ORIGINAL)
    assert again is not None and torch.equal(again, original)


def test_flac_is_lossless(featurizer: AudioFeaturizer, original: torch.Tensor) -> None:
    flac = featurizer("variants/1_00000_00.flac")
    assert flac is not None and torch.equal(flac, original)


def test_44k_stereo_is_downmixed_and_resampled(
    featurizer: AudioFeaturizer, original: torch.Tensor
) -> None:
    stereo = featurizer("variants/1_00000_00_44k_stereo.wav")
    assert stereo is not None
    assert abs(stereo.shape[0] - original.shape[0]) <= 2
    n = min(len(stereo), len(original))
    # Measured: mean |diff| 0.095, corr 0.9986; a different utterance gives 6.1 and 0.07.
    assert (stereo[:n] - original[:n]).abs().mean() < 0.2
    assert _corr(stereo[:n], original[:n]) > 0.995


def test_channels_are_averaged(tmp_path: Path) -> None:
    # The real stereo variant has two near-identical channels, so it cannot tell averaging from
    # taking one channel; a silent right channel halves the amplitude only under averaging.
    torch.manual_seed(0)
    left = torch.randn(8000) * 0.1
    sf.write(tmp_path / "stereo.wav", torch.stack([left, torch.zeros(8000)], 1).numpy(), 16000)
    sf.write(tmp_path / "half.wav", (left / 2).numpy(), 16000, subtype="FLOAT")
    featurizer = AudioFeaturizer(AudioConfig(root=str(tmp_path)))
    stereo, half = featurizer("stereo.wav"), featurizer("half.wav")
    assert stereo is not None and half is not None
    torch.testing.assert_close(stereo, half, rtol=0, atol=0.05)


def test_8k_matches_below_its_nyquist(featurizer: AudioFeaturizer, original: torch.Tensor) -> None:
    narrow = featurizer("variants/1_00000_00_8k.wav")
    assert narrow is not None
    assert abs(narrow.shape[0] - original.shape[0]) <= 2
    n = min(len(narrow), len(original))
    # Above 4 kHz an 8 kHz file holds nothing, so only bands below the resampler's rolloff match.
    low = _bands_below(3800.0)
    assert len(low) == 58
    a, b = narrow[:n, low], original[:n, low]
    # Measured: mean |diff| 0.16, corr 0.997 (all 80 bands: 2.0 and 0.77).
    assert (a - b).abs().mean() < 0.3
    assert _corr(a, b) > 0.99


def test_truncated_wav_gives_the_readable_part(
    featurizer: AudioFeaturizer, original: torch.Tensor
) -> None:
    # The file keeps 1478 of 82350 samples: 92 ms, 7 frames, identical to the original's first.
    features, messages = _featurize(featurizer, "variants/1_00000_00_truncated.wav")
    assert features is not None and features.shape == (7, 80)
    torch.testing.assert_close(features, original[:7], rtol=0, atol=1e-4)
    assert featurizer.partial == {"truncated": 1}
    assert not featurizer.failures
    assert len(messages) == 1 and "truncated" in messages[0]


def test_not_audio_is_counted_and_warned_once(featurizer: AudioFeaturizer) -> None:
    first, messages = _featurize(featurizer, "variants/not_audio.wav")
    second, again = _featurize(featurizer, "variants/not_audio.wav")
    assert first is None and second is None
    assert featurizer.failures == {"unreadable": 2}
    assert len(messages) == 1 and "variants/not_audio.wav" in messages[0]
    assert "unreadable" in messages[0]
    assert again == []


def test_missing_file(featurizer: AudioFeaturizer) -> None:
    features, messages = _featurize(featurizer, "wav/no_such_turn.wav")
    assert features is None
    assert featurizer.failures == {"missing": 1}
    assert len(messages) == 1 and "wav/no_such_turn.wav" in messages[0]


def test_paths_outside_the_root_are_refused(featurizer: AudioFeaturizer, audio_root: Path) -> None:
    # Both exist and are real audio: only the root keeps them out.
    escape = "../audio/../audio/wav/../../audio/wav/1_00000_00.wav"
    assert featurizer(escape) is not None
    outside = AudioFeaturizer(AudioConfig(root=str(audio_root / "variants")))
    for path in ["../wav/1_00000_00.wav", str(audio_root / ORIGINAL)]:
        features, messages = _featurize(outside, path)
        assert features is None
        assert len(messages) == 1 and "outside_root" in messages[0]
    assert outside.failures == {"outside_root": 2}
    assert outside("1_00000_00.flac") is not None
    assert outside(str(audio_root / "variants" / "1_00000_00.flac")) is not None


def test_none_is_no_audio(featurizer: AudioFeaturizer) -> None:
    assert featurizer(None) is None
    assert not featurizer.failures


def test_empty_and_too_short_audio(tmp_path: Path) -> None:
    sf.write(tmp_path / "empty.wav", torch.zeros(0).numpy(), 16000)
    sf.write(tmp_path / "short.wav", torch.zeros(300).numpy(), 16000)
    sf.write(tmp_path / "window.wav", torch.zeros(400).numpy(), 16000)
    featurizer = AudioFeaturizer(AudioConfig(root=str(tmp_path)))
    with pytest.warns(AudioWarning, match="empty"):
        assert featurizer("empty.wav") is None
    with pytest.warns(AudioWarning, match="too_short"):
        assert featurizer("short.wav") is None
    window = featurizer("window.wav")
    assert window is not None and window.shape == (1, 80)
    assert featurizer.failures == {"empty": 1, "too_short": 1}


def test_non_finite_float_wav(tmp_path: Path) -> None:
    samples = torch.zeros(1600)
    samples[800] = float("nan")
    sf.write(tmp_path / "nan.wav", samples.numpy(), 16000, subtype="FLOAT")
    featurizer = AudioFeaturizer(AudioConfig(root=str(tmp_path)))
    with pytest.warns(AudioWarning, match="not_finite"):
        assert featurizer("nan.wav") is None
    assert featurizer.failures == {"not_finite": 1}


def test_max_seconds_truncates(audio_root: Path, original: torch.Tensor) -> None:
    short = AudioFeaturizer(AudioConfig(root=str(audio_root), max_seconds=1.0))
    features = short(ORIGINAL)
    # 16000 samples in 25 ms windows at a 10 ms hop: 1 + (16000 - 400) // 160 frames.
    assert features is not None and features.shape == (98, 80)
    assert torch.equal(features, original[:98])
    resampled = short("variants/1_00000_00_44k_stereo.wav")
    assert resampled is not None and resampled.shape == (98, 80)
    assert not short.failures and not short.partial


def test_n_mels_is_configurable(audio_root: Path) -> None:
    features = AudioFeaturizer(AudioConfig(root=str(audio_root), n_mels=40))(ORIGINAL)
    assert features is not None and features.shape[1] == 40


def test_pickle_round_trip(featurizer: AudioFeaturizer, original: torch.Tensor) -> None:
    with pytest.warns(AudioWarning):
        featurizer("variants/not_audio.wav")
    clone = pickle.loads(pickle.dumps(featurizer))
    assert clone.config == featurizer.config
    assert clone.failures == {"unreadable": 1}
    again = clone(ORIGINAL)
    assert again is not None and torch.equal(again, original)
    # The copy remembers it already warned about this path.
    assert _featurize(clone, "variants/not_audio.wav")[1] == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"root": ""},
        {"sample_rate": 0},
        {"n_mels": 0},
        {"max_seconds": 0.0},
        {"max_seconds": float("inf")},
    ],
)
def test_config_validation(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        AudioConfig(**{"root": None, **kwargs})


def test_missing_root_fails_fast(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        AudioFeaturizer(AudioConfig(root=str(tmp_path / "absent")))


def test_pad_features() -> None:
    a, b = torch.randn(3, 4), torch.randn(5, 4)
    batch, lengths = pad_features([a, None, b], n_mels=4)
    assert batch.shape == (3, 5, 4) and lengths.tolist() == [3, 0, 5]
    assert torch.equal(batch[0, :3], a) and torch.equal(batch[2], b)
    assert not batch[0, 3:].any() and not batch[1].any()


def test_pad_features_without_audio() -> None:
    batch, lengths = pad_features([None, None], n_mels=4)
    assert batch.shape == (2, 0, 4) and lengths.tolist() == [0, 0]
    with pytest.raises(ValueError):
        pad_features([torch.randn(3, 5)], n_mels=4)
