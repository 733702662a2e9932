"""Models that do not depend on each other, trained side by side (`--train-jobs`): each in a
process forked from this one once the frozen cache holds every turn they read, each with an
equal share of torch's threads.

Why: on 2 CPU cores a model this small keeps two threads poorly busy. Session 25 measured two
single-threaded trainings side by side doing 1.46 times the work of one two-threaded training.
Forked after the cache is filled, every process reads the parent's cached states (shared
memory, copied on write): nothing is encoded twice, and each model sees the very states it
would see trained in this process (`warm_cache`, in the order the models would fill it)."""

from __future__ import annotations

import argparse
import multiprocessing
import sys
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch

from labelgen.models.components.turn_encoder import restore_shared_caches, shared_cache_snapshot
from quality import runs
from quality.runs import MODEL_SECONDS, TIMINGS, timed, train, warm_cache

_WARMED: dict[tuple[str, int], frozenset[bytes]] = {}
"""The turns the frozen caches held when the training processes forked (`_side_by_side`)."""

K = TypeVar("K")
R = TypeVar("R")


@dataclass(frozen=True)
class Job:
    """One `train` call: its logs, task weights and keywords. `after`: another job of the same
    `train_all` call whose checkpoint this one starts from (its `init_from`)."""

    out: Path
    train_log: Path
    val_log: Path | None
    weights: dict[str, float]
    options: dict[str, Any] = field(default_factory=dict)
    after: str | None = None


def train_all(jobs: dict[str, Job], args: argparse.Namespace) -> dict[str, Path]:
    """Trains every job; returns each one's best checkpoint by name. One after another in
    this process when `args.train_jobs` is 1, for one job alone, and where processes cannot be
    forked (Windows): session 25's runs. A job starts once the job it comes `after` is done;
    jobs start in the order given."""
    names = list(jobs)
    for name, job in jobs.items():
        if job.after is not None and (
            job.after not in jobs or names.index(job.after) > names.index(name)
        ):
            raise ValueError(f"job {name} comes after {job.after}, which is not a job before it")
    side_by_side = getattr(args, "train_jobs", 1) > 1 and len(jobs) > 1
    if side_by_side and "fork" not in multiprocessing.get_all_start_methods():
        # spawned processes would start with an empty cache, each encoding every turn again
        print(
            "--train-jobs: this platform cannot fork a process; the models train one after another",
            file=sys.stderr,
        )
        side_by_side = False
    if not side_by_side:
        done: dict[str, Path] = {}
        for name, job in jobs.items():
            done[name] = train(*_inputs(job), args, **_options(job, done))
        return done
    return _side_by_side(jobs, args)


@timed("train")
def _side_by_side(jobs: dict[str, Job], args: argparse.Namespace) -> dict[str, Path]:
    if args.warm_cache:
        # every log a frozen model reads, in the order the jobs would warm them one after
        # another: the cache then holds the same states, batch for batch
        logs: list[Path] = []
        for job in jobs.values():
            if job.options.get("encoder_lr") is None:
                logs += [log for log in (job.train_log, job.val_log) if log and log not in logs]
        warm_cache(logs, args)
    workers = min(args.train_jobs, len(jobs))
    threads = max(1, torch.get_num_threads() // workers)
    _WARMED.clear()
    _WARMED.update(shared_cache_snapshot())  # what every process starts from, at its fork
    pending = dict(jobs)
    done: dict[str, Path] = {}
    running: dict[Future, str] = {}
    # fork, not spawn: the children share the cache (and everything imported) with this
    # process; with fork, Python starts every worker at the first job, after the warming
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("fork"),
        initializer=torch.set_num_threads,
        initargs=(threads,),
    )
    try:
        while pending or running:
            ready = [n for n, job in pending.items() if job.after is None or job.after in done]
            for name in ready[: workers - len(running)]:
                job = pending.pop(name)
                running[pool.submit(_train_child, job, _options(job, done), args)] = name
            if not running:  # unreachable: train_all checked every job's `after`
                raise RuntimeError(f"jobs {', '.join(pending)} wait for jobs that never run")
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                name = running.pop(future)
                done[name], seconds = future.result()
                MODEL_SECONDS.update(seconds)
    except BaseException:
        # a failed model stops the run: the queued jobs never start (the running one ends)
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return {name: done[name] for name in jobs}


def _train_child(
    job: Job, options: dict[str, Any], args: argparse.Namespace
) -> tuple[Path, dict[str, float]]:
    """`train` in a worker process: the checkpoint, and the seconds it took (by its folder)."""
    MODEL_SECONDS.clear()  # the parent's, inherited by the fork
    # Every job starts from the cache the processes forked with, whichever process runs it and
    # whatever ran there before. A stage 1 encodes its swapped turns as it trains; a second
    # stage 1 in that process (--scarce-stage1 per-pair) would read some of them as the first
    # one's batches encoded them, which differ in the last bits, and train another model
    # (session 47: two of three stage 1s read another held-out loss than trained first)
    restore_shared_caches(_WARMED)
    checkpoint = train(*_inputs(job), args, **options)
    return checkpoint, dict(MODEL_SECONDS)


def _inputs(job: Job) -> tuple[Path, Path, Path | None, dict[str, float]]:
    return job.out, job.train_log, job.val_log, job.weights


def _options(job: Job, done: dict[str, Path]) -> dict[str, Any]:
    if job.after is None:
        return job.options
    return {**job.options, "init_from": str(done[job.after])}


def map_side_by_side(
    fn: Callable[..., R],
    calls: dict[K, tuple[Any, ...]],
    args: argparse.Namespace,
    log: int = 1,
    by_log: bool = True,
    kind: str = "label",
) -> dict[K, R]:
    """`fn(*call)` for every call, each by key: side by side in `--train-jobs` processes forked
    from this one (each with an equal share of torch's threads), or one after another here as
    `train_all` decides. For labeling and scoring after training: each of the many label
    calls loads a model and runs its small heads, which keep two threads poorly busy, as
    training does. The calls that label the same log (`call[log]`) run in one process, one
    after another, so each log is encoded once (`label`'s memo, at that process's thread count:
    its labels are exactly those of `labelgen label` at that count), and read and featurized
    once (`LabelJob.batch_memo`); with `by_log` False (calls that encode nothing, e.g.
    scoring), each call goes alone. The logs go largest first to whichever process is free.
    Side by side, the whole map's seconds count as `kind` (into `TIMINGS`)."""
    workers = min(getattr(args, "train_jobs", 1), len(calls))
    if workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return {key: fn(*call) for key, call in calls.items()}
    groups: dict[Any, list[K]] = {}
    for key, call in calls.items():
        groups.setdefault(call[log] if by_log else key, []).append(key)
    return timed(kind)(_forked)(fn, calls, list(groups.values()), workers, log)


def _forked(
    fn: Callable[..., R],
    calls: dict[K, tuple[Any, ...]],
    groups: list[list[K]],
    workers: int,
    log: int,
) -> dict[K, R]:
    def size(keys: list[K]) -> int:
        path = Path(calls[keys[0]][log])
        return len(keys) * (path.stat().st_size if path.is_file() else 0)

    threads = max(1, torch.get_num_threads() // workers)
    with ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_child_threads,
        initargs=(threads, workers),
    ) as pool:
        futures = {
            tuple(keys): pool.submit(_in_turn, fn, [calls[key] for key in keys])
            for keys in sorted(groups, key=size, reverse=True)
        }
        try:
            done = {
                key: result
                for keys, future in futures.items()
                for key, result in zip(keys, future.result(), strict=True)
            }
        except BaseException:
            for future in futures.values():
                future.cancel()  # a failed call stops the run: the queued ones never start
            raise
    return {key: done[key] for key in calls}  # in the calls' order


def _in_turn(fn: Callable[..., R], calls: list[tuple[Any, ...]]) -> list[R]:
    return [fn(*call) for call in calls]


def _child_threads(threads: int, workers: int) -> None:
    torch.set_num_threads(threads)
    runs.LABEL_THREADS = threads
    # each process its share of the labeling memo: a log's states at a time (the largest log
    # here, SGD dev's unseen services, about 1.4 GB)
    runs.LABEL_MEMO_MB //= workers
    TIMINGS.clear()  # the parent's, inherited by the fork; the parent times the whole map
