"""Labels decided again under another calibration, without running the model.

What a calibration decides (the dissatisfaction side and the 1-5 rating, from the five rating
probabilities; which labels go to human review, from the labels' confidences) is a function
of what every label row keeps. A user who labels a large log, then rates a sample of it and
chooses a cutoff there (`labelgen evaluate` on the sample), applies it to every labeled turn
in the time it takes to read and write the shards. The output is what `labelgen label` with
the same `--calibration`, `--threshold` and `--dissatisfaction-cutoff` writes: the same shards,
`_done` markers, rejects and manifest (naming the labels it came from), and a `_job.json` of
that job, so a `labelgen label` into it resumes only with those settings.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from labelgen.labeling.label import JOB, check_decisions
from labelgen.labeling.shards import (
    DONE_DIR,
    MANIFEST,
    REJECTS_DIR,
    done_path,
    part_name,
    write_json_atomic,
)
from labelgen.labeling.writer import (
    LABEL_SCHEMA,
    decide_satisfaction,
    done_totals,
    read_done,
    review_tasks,
    shard_counts,
)


class RecalibrationError(ValueError):
    """The labels cannot be decided again as asked (incomplete input, occupied output)."""


def recalibrate(
    labels: Path,
    output: Path,
    thresholds: dict[str, float] | None = None,
    dissatisfaction_cutoff: float = 0.5,
    rating_weights: list[float] | None = None,
) -> dict[str, Any]:
    """Writes `labels` (complete `labelgen label` output) decided under these settings into
    `output`, which must not exist or be empty; returns its manifest.

    The output is built in a hidden folder beside it and renamed into place whole, so a crash
    leaves nothing under `output` (a temporary `.NAME.tmp-PID` folder at most)."""
    labels, output = Path(labels), Path(output)
    thresholds = dict(thresholds or {})
    rating_weights = check_decisions(thresholds, dissatisfaction_cutoff, rating_weights)
    source = _complete_manifest(labels)
    if output.resolve() == labels.resolve():
        raise RecalibrationError(f"{output} is the labels' own folder: write into another one")
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise RecalibrationError(f"{output} is not an empty directory: choose a new output")
    decisions = {
        "thresholds": thresholds,
        "dissatisfaction_cutoff": dissatisfaction_cutoff,
        "rating_weights": rating_weights,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    building = output.with_name(f".{output.name}.tmp-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    try:
        for done in read_done(labels):
            _shard(labels, building, done, decisions)
        manifest = {**source, **done_totals(read_done(building)), **decisions}
        manifest["recalibrated_from"] = str(labels)
        if (labels / JOB).is_file():
            write_json_atomic(
                building / JOB, {**json.loads((labels / JOB).read_text()), **decisions}
            )
        write_json_atomic(building / MANIFEST, manifest)
        if output.exists():
            output.rmdir()  # empty, checked above
        building.rename(output)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return manifest


def _complete_manifest(labels: Path) -> dict[str, Any]:
    """The labels' manifest, once every shard it counts is there."""
    if not (labels / MANIFEST).is_file():
        raise RecalibrationError(
            f"{labels} holds no {MANIFEST}: not complete `labelgen label` output (finish the "
            "labeling run first)"
        )
    manifest = json.loads((labels / MANIFEST).read_text())
    done = read_done(labels)
    parts = [labels / f"{part_name(d['shard'])}.parquet" for d in done]
    missing = [str(part) for part in parts if not part.is_file()]
    if len(done) != manifest.get("shards") or missing:
        raise RecalibrationError(
            f"{labels}: its manifest counts {manifest.get('shards')} shard(s), {len(done)} are "
            f"marked done{', missing ' + ', '.join(missing) if missing else ''}; label it again"
        )
    return manifest


def _shard(labels: Path, into: Path, done: dict[str, Any], decisions: dict[str, Any]) -> None:
    """One shard decided again: its part, its rejects as they were, then its marker."""
    name = part_name(done["shard"])
    rows = pq.read_table(labels / f"{name}.parquet").to_pylist()
    for row in rows:
        if row.get("satisfaction_probs") is not None:
            row.update(
                decide_satisfaction(
                    row["satisfaction_probs"],
                    decisions["dissatisfaction_cutoff"],
                    decisions["rating_weights"],
                )
            )
        row["review"] = review_tasks(row, decisions["thresholds"])
    (into / REJECTS_DIR).mkdir(parents=True, exist_ok=True)
    (into / DONE_DIR).mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=LABEL_SCHEMA), into / f"{name}.parquet")
    rejects = labels / REJECTS_DIR / f"{name}.jsonl"
    if rejects.is_file():
        shutil.copyfile(rejects, into / REJECTS_DIR / rejects.name)
    write_json_atomic(
        done_path(into, done["shard"]), shard_counts(done["shard"], rows, done["rejected"])
    )
