"""One `labelgen label` job per output directory.

Two jobs on one output would each label the shards they find undone and rename their parts over
each other's. The job's launching process holds `fcntl.flock` on `_lock` in the output for its
whole life; a second job is refused at once, naming the holder. The kernel drops a flock when
its holder exits however it exits (kill -9 included), so a crashed job never blocks a rerun.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

LOCK = "_lock"
"""Leading underscore: Parquet readers skip it like the other bookkeeping."""

RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID")


class OutputLocked(Exception):
    """Another job holds the output directory."""


def launches_job() -> bool:
    """Whether this process is the job's global rank 0, from the environment alone.

    The lock is taken before the Trainer exists, so the rank cannot come from it. Lightning's
    launcher restarts the command for the other local ranks with LOCAL_RANK (and NODE_RANK,
    WORLD_SIZE) set; torchrun and SLURM set RANK / SLURM_PROCID in every process. Those
    processes belong to a job whose rank 0 holds the lock already: they must not ask for it.
    """
    return all(os.environ.get(key, "0") == "0" for key in RANK_VARIABLES)


@contextmanager
def output_lock(output: Path) -> Iterator[None]:
    """Holds `output/_lock` for the block; raises OutputLocked if another process holds it."""
    path = output / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputLocked(_refusal(output)) from None
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        try:
            yield
        finally:
            # The file stays (unlinking it would let a third job lock a new file while a second
            # still holds the old one); emptied, it names no one once the job is over.
            with suppress(OSError):
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)


def refuse_if_held(output: Path) -> None:
    """Raises OutputLocked now if a job holds `output`, before the seconds of importing torch
    that precede taking the lock. Only a check: the job still takes the lock itself."""
    try:
        fd = os.open(output / LOCK, os.O_RDONLY)
    except OSError:
        return  # no lock file, no job yet: run_label creates it or reports why it cannot
    try:
        # Shared: two checks never exclude each other, and a check beside a job's exclusive
        # flock fails. A job starting this instant may be refused: one of two still runs.
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise OutputLocked(_refusal(output)) from None
    finally:
        os.close(fd)


def _refusal(output: Path) -> str:
    return (
        f"{output} is being written by another labelgen label job ({_holder(output / LOCK)}); "
        "wait for it to finish or choose another --output"
    )


def _holder(path: Path) -> str:
    try:
        holder = json.loads(path.read_text())
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder["since"]))
        return f"pid {holder['pid']} on {holder['host']}, since {since}"
    except (OSError, ValueError, KeyError, TypeError):
        # Between the holder's flock and its write of who it is.
        return "holder not yet recorded"
