"""Log-mel filterbank features for the audio of one user utterance, and their collation.

Audio in logs is untrusted and often broken, so a bad file never stops training: the featurizer
returns `None` (the turn has no audio, as when the log gives no path), counts the reason and
warns once per path.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import soundfile as sf
import torch
import torchaudio.compliance.kaldi as kaldi
import torchaudio.functional as taf

FailureKind = Literal[
    "outside_root", "invalid_path", "missing", "unreadable", "not_finite", "empty", "too_short"
]

# Kaldi's analysis window and hop: 10 ms frames, so `frames ~= seconds * 100`.
FRAME_LENGTH_MS = 25.0
FRAME_SHIFT_MS = 10.0
# Downmixing block by block bounds memory by the mono signal, whatever the channel count.
_READ_BLOCK = 1 << 16


class AudioWarning(UserWarning):
    """An audio file was refused, unreadable or truncated; filter on this category."""


@dataclass
class AudioConfig:
    root: str | None
    """Directory that audio paths in logs are relative to; paths resolving outside it are
    refused. None takes paths as they are (relative to the working directory): trusted logs only.
    """
    sample_rate: int = 16000
    """Rate the features are computed at; every file is resampled to it."""
    n_mels: int = 80
    """Mel filterbank channels per frame."""
    max_seconds: float = 20.0
    """Audio beyond this is never read, which bounds memory and time per turn."""

    def __post_init__(self) -> None:
        if self.root is not None and not self.root:
            raise ValueError("root is empty; use None for paths taken as they are")
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {self.sample_rate}")
        if self.n_mels <= 0:
            raise ValueError(f"n_mels must be positive, got {self.n_mels}")
        if not (math.isfinite(self.max_seconds) and self.max_seconds > 0):
            raise ValueError(f"max_seconds must be positive and finite, got {self.max_seconds}")


class _Refused(Exception):
    def __init__(self, kind: FailureKind, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


class AudioFeaturizer:
    """`featurizer(audio_path)` -> log-mel features `[frames, n_mels]` float32, or None.

    Files are read with soundfile, downmixed to mono by averaging channels, resampled to
    `config.sample_rate` and cut at `config.max_seconds`; features are Kaldi-compatible
    filterbanks (25 ms window, 10 ms hop, no dither, so deterministic) of the waveform at int16
    scale. `None` in gives `None` out. A path outside the root (never opened) or unusable as a
    path, a missing, unreadable or non-finite file, or audio shorter than one 25 ms window gives
    `None`, counted in `failures[kind]` and warned once per path.

    A truncated file (a WAV whose header promises more bytes than the file holds, or a file that
    yields fewer frames than it declares) gives the features of the part that can be read: a
    cut-off recording still carries how the user spoke up to the cut. It is counted in
    `partial["truncated"]` and warned once per path. Audio that was cut short of one window
    still gives `None` ("too_short").

    Picklable for DataLoader workers and `datasets.map`; each process then counts and warns on
    its own copy, so `failures` in the parent process does not see the workers' counts.

    Raises:
        FileNotFoundError: at construction, when `config.root` is not a directory; a wrong root
            would otherwise silently strip the audio from every turn.
    """

    def __init__(self, config: AudioConfig) -> None:
        self.config = config
        self._root = None if config.root is None else Path(config.root).resolve()
        if self._root is not None and not self._root.is_dir():
            raise FileNotFoundError(f"audio root {config.root!r} is not a directory")
        self.failures: Counter[str] = Counter()
        self.partial: Counter[str] = Counter()
        self._warned: set[str] = set()

    def __call__(self, audio_path: str | None) -> torch.Tensor | None:
        if audio_path is None:
            return None
        try:
            path = self._resolve(audio_path)
            waveform, truncated = self._read(path)
            if truncated:
                self.partial["truncated"] += 1
                self._warn(audio_path, "truncated file; using the part that can be read")
            return self._fbank(waveform)
        except _Refused as refused:
            self.failures[refused.kind] += 1
            self._warn(audio_path, f"{refused.kind} ({refused}); the turn gets no audio")
            return None

    def _resolve(self, audio_path: str) -> Path:
        try:
            if self._root is None:
                path = Path(audio_path).resolve()
            else:
                # resolve() follows symlinks too, so a link inside the root pointing out is
                # refused.
                path = (self._root / audio_path).resolve()
                if not path.is_relative_to(self._root):
                    raise _Refused("outside_root", f"resolves to {path}, outside {self._root}")
            exists = path.exists()
        except (OSError, ValueError, RuntimeError) as err:
            # A NUL byte, a name longer than the OS allows, a symlink loop: nothing to read.
            raise _Refused("invalid_path", f"{type(err).__name__}: {err}") from err
        if not exists:
            raise _Refused("missing", f"no file at {path}")
        return path

    def _read(self, path: Path) -> tuple[torch.Tensor, bool]:
        """Mono waveform at the target rate, cut at max_seconds, and whether it was truncated."""
        try:
            with sf.SoundFile(path) as f:
                sr = f.samplerate
                wanted = min(f.frames, math.ceil(self.config.max_seconds * sr))
                blocks = [
                    torch.from_numpy(block).mean(dim=1)
                    for block in f.blocks(
                        _READ_BLOCK, frames=wanted, dtype="float32", always_2d=True
                    )
                ]
                header_truncated = f.format == "WAV" and _riff_truncated(path)
        except Exception as err:
            # Decoding untrusted bytes can fail in many ways; none may stop a training run.
            raise _Refused("unreadable", f"{type(err).__name__}: {err}") from err
        waveform = torch.cat(blocks) if blocks else torch.zeros(0)
        truncated = header_truncated or len(waveform) < wanted
        if len(waveform) == 0:
            raise _Refused("empty", "no samples")
        if not torch.isfinite(waveform).all():
            raise _Refused("not_finite", "NaN or infinite samples")
        target = self.config.sample_rate
        if sr != target:
            waveform = taf.resample(waveform, sr, target)
        return waveform[: int(self.config.max_seconds * target)], truncated

    def _fbank(self, waveform: torch.Tensor) -> torch.Tensor:
        target = self.config.sample_rate
        window = int(target * FRAME_LENGTH_MS / 1000)
        if len(waveform) < window:
            raise _Refused("too_short", f"{len(waveform)} samples, one window is {window}")
        # Kaldi expects int16 scale; at [-1, 1] quiet speech would sit at the log floor.
        return kaldi.fbank(
            waveform.unsqueeze(0) * 32768.0,
            num_mel_bins=self.config.n_mels,
            sample_frequency=target,
            frame_length=FRAME_LENGTH_MS,
            frame_shift=FRAME_SHIFT_MS,
            dither=0.0,
        )

    def _warn(self, audio_path: str, message: str) -> None:
        if audio_path in self._warned:
            return
        self._warned.add(audio_path)
        warnings.warn(f"audio {audio_path!r}: {message}", AudioWarning, stacklevel=3)


def _riff_truncated(path: Path) -> bool:
    # libsndfile quietly shrinks a WAV's frame count to what the file holds; only the RIFF
    # header still tells how long the recording was meant to be.
    with path.open("rb") as f:
        head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return False
    declared = int.from_bytes(head[4:8], "little") + 8
    return declared > path.stat().st_size


def pad_features(
    features: Sequence[torch.Tensor | None], n_mels: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad per-turn features into `([N, T, n_mels] float32, lengths [N] long)`.

    None (no audio) gets length 0; T is the longest length, 0 when no turn has audio. `n_mels`
    is needed because a batch without audio has no tensor to take it from.
    """
    lengths = torch.tensor([0 if f is None else f.shape[0] for f in features], dtype=torch.long)
    longest = int(lengths.max()) if len(features) else 0
    batch = torch.zeros(len(features), longest, n_mels, dtype=torch.float32)
    for i, f in enumerate(features):
        if f is None:
            continue
        if f.dim() != 2 or f.shape[1] != n_mels:
            raise ValueError(f"features[{i}] has shape {tuple(f.shape)}, expected [T, {n_mels}]")
        batch[i, : f.shape[0]] = f
    return batch, lengths
