"""The DataModule: logs in any format -> validated, featurized Arrow datasets -> padded batches."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import asdict
from itertools import islice
from pathlib import Path
from typing import Any

import lightning as L
from torch.utils.data import DataLoader

from labelgen.data import features
from labelgen.data.audio import AudioConfig, AudioFeaturizer
from labelgen.data.collate import Collator
from labelgen.data.corruptions import CorruptionConfig
from labelgen.data.features import FeatureSpace, Featurizer
from labelgen.data.readers import files_state, read_log
from labelgen.data.rejects import LogReadError, Reject, RejectWriter
from labelgen.data.sampler import BucketBatchSampler, ResumableDataLoader
from labelgen.data.schema import Dialogue
from labelgen.data.tokenization import PairTemplate, load_tokenizer

log = logging.getLogger(__name__)
SYNTH_PREFIX = "synth:"


def iter_dialogues(
    source: str, fmt: str = "auto", rejects: Path | None = None
) -> Iterator[Dialogue]:
    """Dialogues of a log; `synth:N:SEED` names N generated dialogues.

    Rejects go to `rejects` when given. The feature-space scan passes none: the same log's
    rejects are written when it is tokenized.
    """
    if source.startswith(SYNTH_PREFIX):
        from labelgen.data.synth import generate

        try:
            n, seed = (int(x) for x in source.removeprefix(SYNTH_PREFIX).split(":"))
        except ValueError:
            raise LogReadError(f"{source!r}: a synthetic source is written synth:N:SEED") from None
        yield from generate(n, seed)
        return
    count = 0
    with RejectWriter(rejects) if rejects is not None else nullcontext() as writer:
        for item in read_log(source, fmt):
            if isinstance(item, Reject):
                count += 1
                if writer is not None:
                    writer.write(item)
            else:
                yield item
    if count and rejects is not None:
        log.warning("%d records of %s broke the contract; reasons in %s", count, source, rejects)


FEATURIZER_HASH = hashlib.sha256(Path(features.__file__).read_bytes()).hexdigest()
"""The featurizer's source as imported: hashed once, so a process whose code was edited on
disk after it started keys its cache by the code it runs, not by the newer file."""


def log_state(source: str) -> str:
    """What a log's files are now (`files_state`; a synthetic source is its name). Part of the
    tokenized log's cache key: `datasets` fingerprints the generator's arguments, not the
    files they name, so without it a log rewritten in place would be served from the cache
    as it was before."""
    return source if source.startswith(SYNTH_PREFIX) else json.dumps(files_state(source))


def _featurized(
    source: str, fmt: str, settings: str, rejects: str, state: str
) -> Iterator[dict[str, Any]]:
    # A module-level generator whose arguments are all strings: `datasets` fingerprints them,
    # so the tokenized log is cached and reused until the log (`state`, only fingerprinted)
    # or a setting changes.
    config = json.loads(settings)
    featurizer = Featurizer(
        load_tokenizer(config["tokenizer"]),
        FeatureSpace(**config["space"]),
        config["max_user_tokens"],
        config["max_system_tokens"],
    )
    dialogues = iter_dialogues(source, fmt, Path(rejects))
    for dialogue in islice(dialogues, config["max_dialogues"]):
        yield featurizer(dialogue)


class LogDataModule(L.LightningDataModule):
    """Reads, validates, tokenizes (once, cached) and batches dialogue logs.

    Args:
        train: Training log (a path any reader takes, or `synth:N:SEED`).
        val: Validation log; without one, `val_fraction` of `train` is held out by dialogue.
        test: Test log.
        format: Reader for the paths: auto, canonical, sgd or uss.
        tokenizer: Hugging Face tokenizer name or path (`package:<module>` for a packaged one);
            the model's encoder is linked to the same name.
        max_user_tokens: User text is truncated to this many tokens.
        max_system_tokens: System text is truncated to this many tokens.
        batch_size: Dialogues per batch.
        num_workers: DataLoader worker processes.
        corruption: On-the-fly corruptions for pretraining (None: fine-tuning).
        audio: Read user audio (None: text only).
        val_fraction: Without `val`, this share of `train` is held out, by dialogue.
        max_dialogues: Read at most this many dialogues of each log (quick runs).
        cache_dir: Tokenized datasets and reject files.
        seed: Shuffling, held-out split and corruption seed.
        order_cycle: The training batches repeat every this many epochs (0: a new order every
            epoch), and with them the corruptions, which are seeded by the batch: with a frozen
            encoder, whose states are cached, the corrupted turns are encoded in the first
            cycle only, so long pretraining costs the encoding of a few epochs.
    """

    def __init__(
        self,
        train: str | None = None,
        val: str | None = None,
        test: str | None = None,
        format: str = "auto",
        tokenizer: str = "roberta-base",
        max_user_tokens: int = 48,
        max_system_tokens: int = 48,
        batch_size: int = 16,
        num_workers: int = 0,
        val_fraction: float = 0.0,
        max_dialogues: int | None = None,
        corruption: CorruptionConfig | None = None,
        audio: AudioConfig | None = None,
        cache_dir: str = ".cache/labelgen",
        seed: int = 0,
        order_cycle: int = 0,
    ) -> None:
        super().__init__()
        # Checkpoints carry hparams and must load with torch.load(weights_only=True): plain
        # values only there, the config objects as attributes.
        self.save_hyperparameters(ignore=["corruption", "audio"])
        self.hparams["corruption"] = None if corruption is None else asdict(corruption)
        self.hparams["audio"] = None if audio is None else asdict(audio)
        self.corruption = corruption
        self.audio = audio
        self.paths = {"train": train, "val": val, "test": test}
        self._space: FeatureSpace | None = None
        self.datasets: dict[str, Any] = {}
        self._resume_at: tuple[int, int] | None = None

    @property
    def feature_space(self) -> FeatureSpace:
        """Vocabularies and statistics of the training log, built on first use (`_scan`)."""
        if self._space is None:
            if self.paths["train"] is None:
                raise LogReadError("no training log: the feature space is built from it")
            self._space = self._scan(self.paths["train"])
        return self._space

    def _scan(self, source: str) -> FeatureSpace:
        """The log's feature space, kept in the cache directory under what the log's files are
        now: every rank of a distributed job runs the command and needs it, and a log of
        millions of dialogues takes a while to read. One process scans under a file lock; the
        others wait for it and read its result, as do later runs on the same log."""
        from filelock import FileLock

        hp = self.hparams
        key = json.dumps(
            {
                "source": source,
                "state": log_state(source),
                "format": hp.format,
                "max_dialogues": hp.max_dialogues,
                "featurizer": FEATURIZER_HASH,
            },
            sort_keys=True,
        )
        folder = Path(hp.cache_dir) / "spaces"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
        with FileLock(f"{path}.lock"):
            if path.is_file():
                return FeatureSpace.load(path)
            log.info("scanning %s for the feature space", source)
            dialogues = iter_dialogues(source, hp.format)
            space = FeatureSpace.build(islice(dialogues, hp.max_dialogues))
            space.save(path)
        return space

    @feature_space.setter
    def feature_space(self, space: FeatureSpace) -> None:
        self._space = space

    def _settings(self) -> str:
        hp = self.hparams
        return json.dumps(
            {
                # A change to the featurizer's code must not reuse a stale cache.
                "featurizer": FEATURIZER_HASH,
                "tokenizer": hp.tokenizer,
                "space": asdict(self.feature_space),
                "max_user_tokens": hp.max_user_tokens,
                "max_system_tokens": hp.max_system_tokens,
                "max_dialogues": hp.max_dialogues,
            },
            sort_keys=True,
        )

    def _load(self, split: str, source: str):
        import datasets

        settings = self._settings()
        state = log_state(source)
        key = hashlib.sha256(f"{source}|{settings}|{state}".encode()).hexdigest()[:16]
        cache = Path(self.hparams.cache_dir)
        rejects = cache / "rejects" / f"{split}-{key}.jsonl"
        return datasets.Dataset.from_generator(
            _featurized,
            gen_kwargs={
                "source": source,
                "fmt": self.hparams.format,
                "settings": settings,
                "rejects": str(rejects),
                "state": state,
            },
            cache_dir=str(cache / "datasets"),
        )

    def setup(self, stage: str | None = None) -> None:
        for split, source in self.paths.items():
            if source is not None and split not in self.datasets:
                self.datasets[split] = self._load(split, source)
        if (
            "val" not in self.datasets
            and self.hparams.val_fraction > 0
            and "train" in self.datasets
        ):
            parts = self.datasets["train"].train_test_split(
                test_size=self.hparams.val_fraction, seed=self.hparams.seed
            )
            self.datasets["train"], self.datasets["val"] = parts["train"], parts["test"]

    def collator(self, corrupt: bool) -> Collator:
        hp = self.hparams
        return Collator(
            PairTemplate.from_tokenizer(load_tokenizer(hp.tokenizer)),
            n_intents=len(self.feature_space.intents),
            corruption=self.corruption if corrupt else None,
            audio=AudioFeaturizer(self.audio) if self.audio is not None else None,
            seed=hp.seed,
        )

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        data = self.datasets[split]
        lengths = [
            sum(len(u) + len(s) for u, s in zip(us, ss, strict=True))
            for us, ss in zip(data["user_ids"], data["system_ids"], strict=True)
        ]
        trainer = self.trainer
        sampler = BucketBatchSampler(
            lengths,
            self.hparams.batch_size,
            shuffle=shuffle,
            seed=self.hparams.seed,
            num_replicas=trainer.world_size if trainer else 1,
            rank=trainer.global_rank if trainer else 0,
            cycle=self.hparams.order_cycle,
        )
        kwargs = {
            "batch_sampler": sampler,
            "collate_fn": self.collator(corrupt=self.corruption is not None),
            "num_workers": self.hparams.num_workers,
            # page-locked batches copy to a GPU asynchronously
            "pin_memory": trainer is not None and _on_cuda(trainer),
        }
        if not shuffle or trainer is None:
            return DataLoader(data, **kwargs)
        if self._resume_at is not None:
            sampler.resume(*self._resume_at)
            self._resume_at = None
        else:
            sampler.set_epoch(trainer.current_epoch)
        return ResumableDataLoader(data, progress=self._train_progress, **kwargs)

    # Where in the training data a checkpoint was taken (see ResumableDataLoader for why the
    # data module carries it too): Lightning restores a data module's state before it builds
    # any loader.
    def state_dict(self) -> dict[str, int]:
        if self.trainer is None:
            return {}
        epoch, done = self._train_progress()
        return {"train_epoch": epoch, "train_batches_done": done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "train_epoch" in state:
            self._resume_at = (state["train_epoch"], state["train_batches_done"])

    def _train_progress(self) -> tuple[int, int]:
        trainer = self.trainer
        return trainer.current_epoch, trainer.fit_loop.epoch_loop.batch_progress.current.processed

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        # No validation log and no val_fraction: fit trains without validating.
        return self._loader("val", shuffle=False) if "val" in self.datasets else []

    def test_dataloader(self) -> DataLoader:
        if "test" not in self.datasets:
            raise ValueError("no test log: pass --data.test PATH")
        return self._loader("test", shuffle=False)


def _on_cuda(trainer: L.Trainer) -> bool:
    from lightning.pytorch.accelerators import CUDAAccelerator

    return isinstance(trainer.accelerator, CUDAAccelerator)
