"""`labelgen label`: a trained model over a log of any size, through Lightning's predict loop."""

from __future__ import annotations

import hashlib
import json
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.accelerators import CUDAAccelerator
from lightning.pytorch.callbacks import TQDMProgressBar
from torch.utils.data import DataLoader

from labelgen.data.audio import AudioConfig, AudioFeaturizer
from labelgen.data.collate import Collator
from labelgen.data.features import Featurizer
from labelgen.data.readers import files_state
from labelgen.data.tokenization import PairTemplate, load_tokenizer
from labelgen.evaluation.rating_decision import check_weights
from labelgen.labeling.lock import launches_job, output_lock
from labelgen.labeling.shards import (
    MANIFEST,
    LabelingDataset,
    RejectLimit,
    remove_temporaries,
    write_json_atomic,
)
from labelgen.labeling.writer import GATED_TASKS, ShardWriter, done_totals, read_done
from labelgen.models.ensemble import Ensemble
from labelgen.models.labelgen_module import LabelGenModule


@dataclass
class LabelJob:
    model: str
    """An exported model directory (`labelgen export`), a Lightning checkpoint, or a hub
    repository id (`org/name`) holding an export."""
    input: str
    output: str
    format: str = "auto"
    ensemble: list[str] = field(default_factory=list)
    """More models (each as `model`) whose probabilities are averaged with `model`'s, head by
    head (`labelgen.models.ensemble`); all trained on one log's features."""
    thresholds: dict[str, float] = field(default_factory=dict)
    """Per task: labels less confident than this are marked for human review."""
    shard_size: int = 512
    """Input records per output shard, the unit of resumption."""
    batch_size: int = 32
    """Dialogues per forward pass."""
    max_user_tokens: int | None = None
    max_system_tokens: int | None = None
    """Token budgets per text; None: the model's training settings (recorded in checkpoints
    and exports), else 48."""
    audio_root: str | None = None
    """Read user audio under this root (models trained with audio)."""
    accelerator: str = "auto"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    num_workers: int = 0
    precision: str | None = None
    dissatisfaction_cutoff: float = 0.5
    """A turn is labeled dissatisfied when P(rating <= 2) is above this; `labelgen evaluate`
    picks the best-F1 cutoff on held-out labeled data (calibration.json `cutoffs`)."""
    rating_weights: list[float] | None = None
    """Per rating 1-5: the 5-point label is the likeliest rating times its weight on the side
    of the dissatisfaction decision (calibration.json `rating_weights`, chosen by `labelgen
    evaluate` on held-out labeled data). None: the plain likeliest rating."""
    encoder_cache: bool = False
    """Reuse the frozen encoder's in-process cache of turn states (a benchmark labeling the
    same turns with several models). Off by default: a cached turn was encoded in another
    batch, so its labels can differ from an uncached run in the last bits."""
    encoder_memo_mb: int = 0
    """Keep a frozen encoder's states of whole batches, up to this many MB, for other models
    with the same frozen encoder in this process that label the same input (a benchmark's
    arms and folds): they skip the encoder and get the very states it would give them, so
    their labels are those of an uncached run. 0: none."""
    batch_memo: int = 0
    """Keep the collated batches of this many inputs (the most recent; per featurization) in
    this process, for the next jobs here that label the same input with models featurizing it
    alike (a benchmark's arms and folds): they neither read nor featurize it again, and get
    the very batches they would have made. The input's files are checked unchanged (size,
    modification time). In one process only, without audio; 0: none."""
    threads: int = 1
    """CPU threads per process. Float sums can round differently with another thread count, so
    a fixed count keeps labels bit-identical however many processes share the work; on CPU,
    scale out with processes (`devices`)."""
    max_reject_fraction: float | None = None
    """Stop (RejectLimitExceeded) once rejected / input records over the shards done in the
    output, by every process and earlier runs, is above this. None: never stop for rejects."""

    def __post_init__(self) -> None:
        self.rating_weights = check_decisions(
            self.thresholds, self.dissatisfaction_cutoff, self.rating_weights
        )
        if self.shard_size < 1 or self.batch_size < 1:
            raise ValueError("shard_size and batch_size must be >= 1")
        if self.max_reject_fraction is not None and not 0.0 <= self.max_reject_fraction <= 1.0:
            raise ValueError(
                f"max_reject_fraction must be in [0, 1], got {self.max_reject_fraction}"
            )


def check_decisions(
    thresholds: dict[str, float], cutoff: float, rating_weights: list[float] | None
) -> list[float] | None:
    """What turns probabilities into labels, checked (ValueError naming what is wrong); the
    rating weights as floats."""
    unknown = set(thresholds) - set(GATED_TASKS)
    if unknown:
        raise ValueError(
            f"thresholds for unknown tasks {sorted(unknown)}; tasks: {', '.join(GATED_TASKS)}"
        )
    if not 0.0 < cutoff < 1.0:
        raise ValueError(f"dissatisfaction_cutoff must be in (0, 1), got {cutoff}")
    return check_weights(rating_weights)


JOB = "_job.json"
"""What the shards in an output were labeled by (`job_identity`), beside them."""


class OutputMismatch(ValueError):
    """The output holds shards another job labeled: resuming would mix two jobs' labels."""


def job_identity(job: LabelJob) -> dict[str, Any]:
    """Everything that decides a shard's labels: the model and the input (their files as they
    are now), how the input is cut and read, and how probabilities become labels. Not how the
    work is spread (devices, workers, threads, batch size): that leaves the labels alone."""
    identity = {
        "model": job.model,
        "model_files": files_state(job.model) if Path(job.model).exists() else None,
        **(
            {"ensemble": [[m, files_state(m) if Path(m).exists() else None] for m in job.ensemble]}
            if job.ensemble
            else {}  # absent for one model: outputs labeled before ensembles resume as before
        ),
        "input": job.input,
        "input_files": files_state(job.input),
        "format": job.format,
        "shard_size": job.shard_size,
        "max_user_tokens": job.max_user_tokens,
        "max_system_tokens": job.max_system_tokens,
        "audio_root": job.audio_root,
        "precision": job.precision,
        "thresholds": job.thresholds,
        "dissatisfaction_cutoff": job.dissatisfaction_cutoff,
        "rating_weights": job.rating_weights,
    }
    return json.loads(json.dumps(identity))  # as it reads back from the file


def claim_output(output: Path, job: LabelJob) -> None:
    """Records this job as the output's; refuses (OutputMismatch) when shards another job
    labeled are there, before anything in the output is touched. A rerun of the same job
    resumes (and writes nothing here); any other must start in an empty directory. An output
    from before `_job.json` existed cannot tell and is resumed."""
    identity = job_identity(job)
    done = read_done(output)
    before = None
    if (output / JOB).is_file():
        try:
            before = json.loads((output / JOB).read_text())
        except (OSError, ValueError) as err:
            if done:
                raise OutputMismatch(
                    f"{output / JOB} cannot be read ({err}), so the {len(done)} shard(s) in "
                    f"{output} cannot be told to be this job's. Label into a new directory, or "
                    "remove this one to start over"
                ) from None
    if done and before is not None:
        changed = sorted(
            k for k in identity.keys() | before.keys() if identity.get(k) != before.get(k)
        )
        if changed:
            raise OutputMismatch(
                f"{output} holds {len(done)} shard(s) labeled by another job (its "
                f"{', '.join(changed)} differ from this one's); resuming would mix the two "
                "jobs' labels. Label into a new directory, or remove this one to start over"
            )
    if before != identity:
        write_json_atomic(output / JOB, identity)


def load_model(path: str) -> LabelGenModule:
    """An exported directory, a Lightning checkpoint, or a hub repository id (`org/name`)."""
    from labelgen.models.export import load_checkpoint
    from labelgen.models.hub import from_pretrained

    module = load_checkpoint(path)[0] if Path(path).is_file() else from_pretrained(path)
    return module.eval()


class LabelingProgress(TQDMProgressBar):
    """The predict progress bar, counting dialogues per second rather than batches."""

    def __init__(self) -> None:
        super().__init__()
        self.start = time.perf_counter()
        self.dialogues = 0

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, *args) -> None:
        self.dialogues += len(batch["meta"].dialogues)
        super().on_predict_batch_end(trainer, pl_module, outputs, batch, batch_idx, *args)
        if self.is_enabled:
            self.predict_progress_bar.set_postfix(
                dialogues=self.dialogues, per_s=f"{self.rate:.1f}"
            )

    @property
    def rate(self) -> float:
        return self.dialogues / max(time.perf_counter() - self.start, 1e-9)


def labeling_dataset(module: LabelGenModule, job: LabelJob) -> LabelingDataset:
    """The job's input as collated micro-batches for `module` (shards done are skipped)."""
    tokenizer = load_tokenizer(module.hparams["tokenizer"])
    fusion_audio = module.audio_encoder is not None
    if fusion_audio and job.audio_root is None:
        raise ValueError("the model reads audio: pass --audio-root")
    collator = Collator(
        PairTemplate.from_tokenizer(tokenizer),
        n_intents=len(module.space.intents),
        audio=AudioFeaturizer(AudioConfig(root=job.audio_root)) if fusion_audio else None,
    )
    featurizer = Featurizer(
        tokenizer,
        module.space,
        job.max_user_tokens or module.data_settings.get("max_user_tokens", 48),
        job.max_system_tokens or module.data_settings.get("max_system_tokens", 48),
    )
    return LabelingDataset(
        job.input,
        job.format,
        Path(job.output),
        featurizer,
        collator,
        job.shard_size,
        job.batch_size,
        _reject_limit(job),
        memo_key=None if fusion_audio or not job.batch_memo else _memo_key(job, featurizer),
        memo_inputs=job.batch_memo,
    )


def _memo_key(job: LabelJob, featurizer: Featurizer) -> tuple:
    """Everything that decides an input's batches (`LabelJob.batch_memo`): the input as it is
    on disk, how it is read and cut, and the model's featurization (the tokenizer by what it
    does, as exports of one run each hold their own copy of it; the feature space; the token
    budgets; the collator follows from them)."""
    tokenizer = featurizer.tokenizer
    return (
        str(Path(job.input).resolve()),
        tuple(files_state(job.input)),
        job.format,
        job.shard_size,
        job.batch_size,
        type(tokenizer).__name__,
        tokenizer.truncation_side,
        hashlib.blake2b(tokenizer.backend_tokenizer.to_str().encode()).hexdigest()
        if tokenizer.is_fast
        else tokenizer.name_or_path,
        json.dumps(asdict(featurizer.space), sort_keys=True),
        featurizer.max_user_tokens,
        featurizer.max_system_tokens,
    )


def _reject_limit(job: LabelJob) -> RejectLimit | None:
    if job.max_reject_fraction is None:
        return None
    return RejectLimit(Path(job.output), job.max_reject_fraction)


def run_label(job: LabelJob) -> dict[str, Any] | None:
    """Labels every shard not yet done; rank 0 returns the manifest (others None).

    Raises OutputLocked when another job writes to the output, OutputMismatch when it holds
    shards another job labeled, RejectLimitExceeded when `max_reject_fraction` stops the job
    (no manifest then), OSError when the output cannot be written (the shards done are kept
    either way).
    """
    output = Path(job.output)
    output.mkdir(parents=True, exist_ok=True)
    launcher = launches_job()  # the job's other ranks run under its lock
    with output_lock(output) if launcher else nullcontext():
        if launcher:
            claim_output(output, job)
            # The manifest says the output is complete; from here until it is rewritten, it
            # is not. Temporaries of killed runs go too: no live writer can own them now.
            (output / MANIFEST).unlink(missing_ok=True)
            remove_temporaries(output)
        return _run(job, output)


def _run(job: LabelJob, output: Path) -> dict[str, Any] | None:
    torch.set_num_threads(job.threads)
    members = [load_model(path) for path in (job.model, *job.ensemble)]
    for member in members:
        member.encoder.cache_enabled = job.encoder_cache
        member.encoder.memo_bytes = job.encoder_memo_mb * 2**20
    module = members[0] if len(members) == 1 else Ensemble(members)
    # the members featurize alike (Ensemble checks it): the first prepares every batch
    dataset = labeling_dataset(members[0], job)
    writer = ShardWriter(
        output, members[0].space, job.thresholds, job.dissatisfaction_cutoff, job.rating_weights
    )
    throughput = LabelingProgress()
    trainer = L.Trainer(
        accelerator=job.accelerator,
        devices=job.devices,
        num_nodes=job.num_nodes,
        strategy=job.strategy,
        precision=job.precision,
        logger=False,
        callbacks=[writer, throughput],
        enable_model_summary=False,
        use_distributed_sampler=False,
    )
    loader = DataLoader(
        dataset,
        batch_size=None,
        num_workers=job.num_workers,
        pin_memory=isinstance(trainer.accelerator, CUDAAccelerator),
    )
    trainer.predict(module, dataloaders=loader, return_predictions=False)
    trainer.strategy.barrier()  # every rank's shards are written before the manifest
    if not trainer.is_global_zero:
        # Rank 0 alone reports a stop: a Lightning child exiting non-zero gets the whole
        # job killed (its launcher's watchdog) before rank 0 could say why.
        return None
    if dataset.reject_limit is not None:
        dataset.reject_limit.check()  # over every rank's shards, all written by now
    return _manifest(output, job, throughput.rate)


def _manifest(output: Path, job: LabelJob, rate: float) -> dict[str, Any]:
    manifest = {
        **done_totals(read_done(output)),
        "thresholds": job.thresholds,
        "dissatisfaction_cutoff": job.dissatisfaction_cutoff,
        "rating_weights": job.rating_weights,
        "model": job.model,
        **({"ensemble": job.ensemble} if job.ensemble else {}),
        "input": job.input,
    }
    write_json_atomic(output / MANIFEST, manifest)
    return {**manifest, "dialogues_per_second": round(rate, 1)}


def parse_thresholds(pairs: list[str], calibration: str | None) -> dict[str, float]:
    """`TASK=P` pairs over a calibration file's thresholds (written by `labelgen evaluate`)."""
    thresholds: dict[str, float] = {}
    if calibration:
        thresholds.update(json.loads(Path(calibration).read_text())["thresholds"])
    for pair in pairs:
        task, sep, value = pair.partition("=")
        try:
            if not sep:
                raise ValueError
            thresholds[task] = float(value)
        except ValueError:
            raise ValueError(f"--threshold {pair!r}: write TASK=P, e.g. intent=0.9") from None
    return thresholds


def read_rating_weights(calibration: str | None) -> list[float] | None:
    """The calibrated weights of the 1-5 ratings, None when the file has none."""
    if not calibration:
        return None
    return check_weights(json.loads(Path(calibration).read_text()).get("rating_weights"))


def read_cutoff(calibration: str | None, task: str = "dissatisfaction") -> float | None:
    """A decision cutoff from a calibration file, None when it has none for the task."""
    if not calibration:
        return None
    value = json.loads(Path(calibration).read_text()).get("cutoffs", {}).get(task)
    return None if value is None else float(value)
