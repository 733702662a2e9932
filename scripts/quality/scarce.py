"""Stage 1 where labels are scarce: the two context arms fine-tuned again on a small share of
the SGD training sample (`--sgd-scarce`), in pairs (`--sgd-scarce-pairs`), while stage 1 still
reads its whole log, as a team with a large log and few labeled dialogues would train.

Why: with 1,800 labeled dialogues the arm with stage 1 and the arm without it are level in
every full run (sessions 6-30); pretraining is meant to pay where labels are few. Session 30's
probes on 200 labeled dialogues: stage 1 raised the held-out mean in both seeds.

A pair is both arms from one seed on one sample. Until session 46 the run trained two pairs on
one sample, and over six draws on one machine one pair read stage 1's slot gain below zero on
some log in four (sessions 43-45): two pairs of one sample measure the sample's luck as much
as stage 1. Now each pair labels its own dialogues (the k-th share of the shuffled training
sample, so pair 0's are those of before) and the summary is the mean over four pairs, with
each pair's difference beside it.

The pairs of one draw still shared its one stage 1, and moved together: in session 46's seed-1
draw every pair lost. With `--scarce-stage1 per-pair` each pair's arm with stage 1 starts from
a stage 1 of the pair's own seed (pair 0's is the run's), so the mean over pairs also averages
over stage 1's own seed: what stage 1 does, not what one stage 1 did.

Since session 51 the full run trains these pairs only when asked (`--sgd-scarce 200`): they
were about 18 of session 50's 63 minutes and had read no gain since session 47."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from labelgen.data.schema import Dialogue
from quality.pool import Job

SCARCE_ARMS = {"with_pretraining": "scarce-model", "no_pretraining": "scarce-no-pretraining"}
"""The two arms on the scarce sample, by the folder under sgd/ that holds each (with the seed)."""

SCARCE_PATIENCE = 4
"""Held-out checks without a better loss after which a model on scarce labels trained longer
than the run's models (`--scarce-epochs`) stops. Session 47, 64 epochs read every 4: the eight
models' best epochs were 23-43: 16 epochs without a better one end most of them well before
64."""


def scarce_samples(train: list[Dialogue], size: int, pairs: int) -> list[list[Dialogue]]:
    """Each pair's labeled dialogues: the k-th `size` of the (shuffled) training sample, taken
    on from its start again where the sample holds fewer than `pairs` times `size`."""
    if not train:
        return [[] for _ in range(pairs)]
    size = min(size, len(train))
    return [[train[(k * size + i) % len(train)] for i in range(size)] for k in range(pairs)]


def scarce_jobs(
    scarce_logs: list[Path],
    val_log: Path,
    tasks: dict[str, float],
    stage1: Job,
    stage1_start: dict[str, Any],
    heads: list[str],
    out: Path,
    args: argparse.Namespace,
) -> dict[str, Job]:
    """Each pair's two arms from its seed, on its log of `scarce_logs`, choosing their epochs
    on `val_log` (a share of the held-out dialogues every SGD model chooses on,
    `--sgd-scarce-val`); the arm with stage 1 starts from a stage 1 as `stage1_start` says
    (`--scarce-stage1-shrink`): the run's (the job "pretrain", `stage1`), or with
    `--scarce-stage1 per-pair` one like it from the pair's seed (for pair 0 the run's), whose
    jobs come first. With `--scarce-choose heads` the mean of the held-out figures `heads`
    chooses each model's epoch (and stops it), instead of the summed loss."""
    jobs = {}
    for seed in scarce_seeds(args):
        if stage1_name(seed, args) != "pretrain":
            # the run's stage 1 from another seed: the same log, epochs and corruptions
            options = {**stage1.options, "seed": seed}
            jobs[stage1_name(seed, args)] = replace(
                stage1, out=out / f"pretrain-seed{seed}", options=options
            )
    # with --scarce-epochs, as many held-out checks as the run's models make, further apart;
    # beyond the run's epochs a model stops after SCARCE_PATIENCE checks without a better
    # held-out loss (the learning-rate schedule still spans every epoch)
    epochs = args.scarce_epochs or args.epochs
    length = {"epochs": epochs, "val_every": max(1, epochs // args.epochs)}
    if epochs > args.epochs:
        length["patience"] = SCARCE_PATIENCE
    if args.scarce_choose == "heads":
        length["choose_on"] = heads
    for seed, scarce_log in zip(scarce_seeds(args), scarce_logs, strict=True):
        for arm, folder in SCARCE_ARMS.items():
            with_stage1 = arm == "with_pretraining"
            jobs[scarce_name(arm, seed)] = Job(
                out / f"{folder}-seed{seed}",
                scarce_log,
                val_log,
                tasks,
                {**(stage1_start if with_stage1 else {}), **length, "seed": seed},
                after=stage1_name(seed, args) if with_stage1 else None,
            )
    return jobs


def stage1_name(seed: int, args: argparse.Namespace) -> str:
    """The job whose stage 1 the pair of `seed` starts its arm with stage 1 from."""
    if args.scarce_stage1 == "per-pair" and seed != args.seed:
        return f"pretrain_seed{seed}"
    return "pretrain"


def scarce_seeds(args: argparse.Namespace) -> list[int]:
    """Each pair's seed: `--seed`, then the next, and so on."""
    return [args.seed + k for k in range(args.sgd_scarce_pairs)]


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
    `headline_mean` ("mean"), averaged over the pairs, and the arm with stage 1 minus the arm
    without, over the pairs and in each pair (by its seed), with the count of pairs where it
    is above zero; each model's figures and held-out loss (on the `chosen_on` held-out dialogues
    that chose its epoch) beside. `figures` by (model name, log), as the SGD half scores every
    model."""
    seeds = scarce_seeds(args)
    summary: dict[str, Any] = {
        "labeled_dialogues": labeled,
        "epochs_chosen_on_dialogues": chosen_on,
        "seeds": seeds,
    }
    for split in ["val", *splits]:
        # each model's figures on this log and their headline mean, by arm and seed
        scored = {
            (arm, seed): {**scores, "mean": headline_mean(scores)}
            for arm in SCARCE_ARMS
            for seed in seeds
            for scores in [figures[scarce_name(arm, seed), split]]
        }
        arms = {arm: _mean([scored[arm, seed] for seed in seeds]) for arm in SCARCE_ARMS}
        arms["with_minus_without"] = _difference(arms["with_pretraining"], arms["no_pretraining"])
        # each pair's own difference, and how many pairs read a gain: the mean over pairs can
        # be carried by one lucky pair
        by_pair = {
            str(seed): _difference(*(scored[arm, seed] for arm in SCARCE_ARMS)) for seed in seeds
        }
        arms["with_minus_without_by_pair"] = by_pair
        arms["pairs_with_gain"] = {
            key: sum(1 for pair in by_pair.values() if (pair[key] or 0.0) > 0.0)
            for key in arms["with_minus_without"]
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


def _difference(
    with_: dict[str, float | None], without: dict[str, float | None]
) -> dict[str, float | None]:
    """The arm with stage 1 minus the arm without, figure by figure (None where one lacks it)."""
    return {
        key: None if with_[key] is None or without[key] is None else with_[key] - without[key]
        for key in with_
    }


def _mean(rows: list[dict[str, float | None]]) -> dict[str, float | None]:
    """Each figure's mean over the rows that have it (None where none has)."""
    means: dict[str, float | None] = {}
    for key in rows[0]:
        values = [row[key] for row in rows if row.get(key) is not None]
        means[key] = sum(values) / len(values) if values else None
    return means
