"""Audio paths from untrusted logs that `test_audio.py` does not cover: escapes from the root
(`..`, absolute paths, symlinks out), paths no file can have, and the proof that a refused path
is never opened. Each is refused with a counted reason, never a crash."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import soundfile as sf
import torch

from labelgen.data.audio import AudioConfig, AudioFeaturizer, AudioWarning

REAL = "wav/1_00000_00.wav"


@pytest.fixture
def root(tmp_path: Path, shared_data: Path) -> Path:
    """An audio root holding one real file, a symlink out of the root, a symlink loop and a
    directory; the shared audio (real, readable) sits outside it."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    sf.write(root / "ok.wav", (torch.randn(8000) * 0.1).numpy(), 16000)
    (root / "link_out.wav").symlink_to(shared_data / "audio" / REAL)
    (root / "link_in.wav").symlink_to(root / "ok.wav")
    (root / "loop.wav").symlink_to(root / "loop.wav")
    (tmp_path / "outside.wav").write_bytes((root / "ok.wav").read_bytes())
    return root


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every path the featurizer opens."""
    calls: list[str] = []
    real = sf.SoundFile

    def spy(path, *args, **kwargs):
        calls.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(sf, "SoundFile", spy)
    return calls


def _refuse(featurizer: AudioFeaturizer, path: str) -> str:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert featurizer(path) is None
    [warning] = [w for w in caught if issubclass(w.category, AudioWarning)]
    return str(warning.message)


@pytest.mark.parametrize(
    "path",
    [
        "../../etc/passwd",
        "../outside.wav",
        "sub/../../outside.wav",
        "/etc/passwd",
        "link_out.wav",  # a symlink inside the root to real audio outside it
    ],
)
def test_paths_out_of_the_root_are_refused_unopened(root, opened, path):
    featurizer = AudioFeaturizer(AudioConfig(root=str(root)))
    assert "outside_root" in _refuse(featurizer, path)
    assert featurizer.failures == {"outside_root": 1}
    assert opened == []


def test_absolute_path_to_the_outside_file_is_refused(root, opened):
    featurizer = AudioFeaturizer(AudioConfig(root=str(root)))
    assert "outside_root" in _refuse(featurizer, str(root.parent / "outside.wav"))
    assert opened == []


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("a\x00b.wav", "invalid_path"),  # crashed: ValueError, embedded null byte
        ("x" * 5000 + ".wav", "invalid_path"),  # crashed: OSError, file name too long
        ("loop.wav", "invalid_path"),  # crashed: RuntimeError, symlink loop
        ("missing.wav", "missing"),
        ("sub", "unreadable"),  # a directory
    ],
)
def test_paths_no_audio_can_have_are_counted(root, path, kind):
    featurizer = AudioFeaturizer(AudioConfig(root=str(root)))
    assert kind in _refuse(featurizer, path)
    assert featurizer.failures == {kind: 1}


def test_links_inside_the_root_and_unrooted_paths_still_work(root, shared_data, opened):
    featurizer = AudioFeaturizer(AudioConfig(root=str(root)))
    assert featurizer("link_in.wav") is not None
    assert featurizer("sub/../ok.wav") is not None
    assert not featurizer.failures
    # Without a root (trusted logs) the same bad paths are still refused, not crashes.
    unrooted = AudioFeaturizer(AudioConfig(root=None))
    assert unrooted(str(shared_data / "audio" / REAL)) is not None
    assert "invalid_path" in _refuse(unrooted, "a\x00b.wav")
    assert unrooted.failures == {"invalid_path": 1}


def test_broken_shared_variants_are_counted_by_kind(shared_data):
    featurizer = AudioFeaturizer(AudioConfig(root=str(shared_data / "audio")))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AudioWarning)
        results = {
            path: featurizer(path)
            for path in (
                "variants/not_audio.wav",
                "variants/1_00000_00_truncated.wav",
                "variants/none.wav",
                "../README.md",
            )
        }
    assert results["variants/1_00000_00_truncated.wav"] is not None
    assert featurizer.failures == {"unreadable": 1, "missing": 1, "outside_root": 1}
    assert featurizer.partial == {"truncated": 1}
