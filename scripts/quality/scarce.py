"""Stage 1 where labels are scarce: the two context arms fine-tuned again on a small share of
the SGD training sample (`--sgd-scarce`), from two seeds each, while stage 1 still reads its
whole log, as a team with a large log and few labeled dialogues would train.

Why: with 1,800 labeled dialogues the arm with stage 1 and the arm without it are level in
every full run (sessions 6-30); pretraining is meant to pay where labels are few. Session 30's
probes on 200 labeled dialogues: stage 1 raised the held-out mean in both seeds. Two seeds
per arm because at 200 dialogues one seed alone moved the held-out mean by 0.035."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from quality.pool import Job

SCARCE_SEEDS = 2
"""Seeds of each arm on the scarce sample: `--seed` and the next."""

SCARCE_ARMS = {"with_pretraining": "scarce-model", "no_pretraining": "scarce-no-pretraining"}
"""The two arms on the scarce sample, by the folder under sgd/ that holds each (with the seed)."""


def scarce_jobs(
    scarce_log: Path,
    val_log: Path,
    tasks: dict[str, float],
    stage1_start: dict[str, Any],
    out: Path,
    args: argparse.Namespace,
) -> dict[str, Job]:
    """Each arm from each seed, on the scarce log, choosing its epoch on `val_log` (a share
    of the held-out dialogues every SGD model chooses on, `--sgd-scarce-val`); the arm with
    stage 1 starts from the run's stage 1 as `stage1_start` says (`--scarce-stage1-shrink`)."""
    jobs = {}
    for seed in scarce_seeds(args):
        for arm, folder in SCARCE_ARMS.items():
            with_stage1 = arm == "with_pretraining"
            jobs[scarce_name(arm, seed)] = Job(
                out / f"{folder}-seed{seed}",
                scarce_log,
                val_log,
                tasks,
                {**(stage1_start if with_stage1 else {}), "seed": seed},
                after="pretrain" if with_stage1 else None,
            )
    return jobs


def scarce_seeds(args: argparse.Namespace) -> list[int]:
    return [args.seed + k for k in range(SCARCE_SEEDS)]


def scarce_name(arm: str, seed: int) -> str:
    return f"scarce_{arm}_seed{seed}"


def scarce_summary(
    figures: dict[tuple[str, str], dict[str, float | None]],
    splits: list[str],
    losses: dict[str, dict[str, float]],
    labeled: int,
    chosen_on: int,
    headline_mean: Callable[[dict[str, float | None]], float],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Per log ("val": the held-out training dialogues), each arm's figures and their
    `headline_mean` ("mean"), averaged over the seeds, and the arm with stage 1 minus the arm
    without; each model's figures and held-out loss (on the `chosen_on` held-out dialogues
    that chose its epoch) beside. `figures` by (model name, log), as the SGD half scores every
    model."""
    seeds = scarce_seeds(args)
    summary: dict[str, Any] = {
        "labeled_dialogues": labeled,
        "epochs_chosen_on_dialogues": chosen_on,
        "seeds": seeds,
    }
    for split in ["val", *splits]:
        arms = {
            arm: _mean(
                [
                    {**scores, "mean": headline_mean(scores)}
                    for scores in (figures[scarce_name(arm, seed), split] for seed in seeds)
                ]
            )
            for arm in SCARCE_ARMS
        }
        with_, without = arms["with_pretraining"], arms["no_pretraining"]
        arms["with_minus_without"] = {
            key: None if with_[key] is None or without[key] is None else with_[key] - without[key]
            for key in with_
        }
        summary[split] = arms
    summary["by_seed"] = {
        scarce_name(arm, seed): {
            **{split: figures[scarce_name(arm, seed), split] for split in ["val", *splits]},
            "held_out_loss": losses[scarce_name(arm, seed)],
        }
        for arm in SCARCE_ARMS
        for seed in seeds
    }
    return summary


def _mean(rows: list[dict[str, float | None]]) -> dict[str, float | None]:
    """Each figure's mean over the rows that have it (None where none has)."""
    means: dict[str, float | None] = {}
    for key in rows[0]:
        values = [row[key] for row in rows if row.get(key) is not None]
        means[key] = sum(values) / len(values) if values else None
    return means
