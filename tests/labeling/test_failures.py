"""How `labelgen label` stops when it cannot or must not go on: too many rejects, an output
another job holds, a full disk, an unwritable directory. Whatever stops it, the shards done stay
whole and readable, nothing half-written is visible, and a plain rerun finishes the job."""

from __future__ import annotations

import errno
import json
import os
import socket
from contextlib import contextmanager
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import labelgen.data.atomic
from labelgen.cli import EXIT_LOCKED, EXIT_REJECTS, EXIT_USAGE, main
from labelgen.data.synth import synth_to_file
from labelgen.labeling.label import LabelJob, run_label
from labelgen.labeling.lock import OutputLocked
from tests.labeling.conftest import (
    assert_consistent,
    hidden_files,
    label,
    label_args,
    outcome,
    parts,
    spawn,
)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_model_dir, log) -> Path:
    """`log` labeled in one uninterrupted run."""
    out = tmp_path_factory.mktemp("reference") / "out"
    label(out, tiny_model_dir, log)
    return out


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("labelgen label: error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def broken_log(tmp_path_factory) -> Path:
    """80 records: 32 clean, 20 broken, 28 clean. In shards of 16, shard 2 is all rejects."""
    folder = tmp_path_factory.mktemp("broken")
    synth_to_file(folder / "clean.jsonl", 60, seed=6)
    lines = (folder / "clean.jsonl").read_text().splitlines()
    lines[32:32] = [f'{{"dialogue_id": "cut{i}", "turns": [' for i in range(20)]
    (folder / "log.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "log.jsonl"


def test_too_many_rejects_stop_the_job_and_a_rerun_finishes_it(
    tmp_path, tiny_model_dir, broken_log, capsys
):
    # The share of rejects in the shards done peaks at 16 of 48 after shard 2, then falls.
    under = tmp_path / "under"
    assert label(under, tiny_model_dir, broken_log, "--max-reject-fraction", "0.4")["shards"] == 5
    capsys.readouterr()
    out = tmp_path / "out"
    args = label_args(out, tiny_model_dir, broken_log, "--max-reject-fraction", "0.3")
    assert main(args) == EXIT_REJECTS
    # Shard 2 takes the count to 16 of 48: the job stops there, shards 3 and 4 never start.
    line = _error_line(capsys)
    assert "16 of 48 input records rejected (33.3%) in the 3 shards done" in line
    assert "0.3" in line and str(out / "_rejects") in line
    assert sorted(p.stem for p in (out / "_done").iterdir()) == [f"part-00000{i}" for i in range(3)]
    assert not (out / "_manifest.json").exists()
    assert_consistent(out)
    assert hidden_files(out) == []
    done = {name: data for name, data in parts(under).items() if name < "part-000003"}
    assert parts(out) == done  # the shards done are those of a run that did not stop
    assert pq.read_table(out).num_rows == sum(pq.read_table(under / n).num_rows for n in done)
    assert main(args) == EXIT_REJECTS  # the shards done still exceed it: stops at once
    capsys.readouterr()
    label(out, tiny_model_dir, broken_log)  # no limit: labels the rest
    assert outcome(out) == outcome(under)


_HOLD = """
import sys, time
from pathlib import Path
from labelgen.labeling.lock import output_lock
with output_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(600)
"""


def test_a_second_job_on_a_held_output_is_refused(tmp_path, tiny_model_dir, log, reference, capsys):
    out = tmp_path / "out"
    label(out, tiny_model_dir, log)
    (out / "_done" / "part-000001.json").unlink()  # work left for the second job
    holder = spawn([str(out)], "-c", _HOLD)
    try:
        assert holder.stdout.readline() == b"locked\n"
        before = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
        capsys.readouterr()
        # the command checks before its slow imports; the job itself takes the lock
        assert main(label_args(out, tiny_model_dir, log)) == EXIT_LOCKED
        line = _error_line(capsys)
        assert f"pid {holder.pid} on {socket.gethostname()}" in line
        with pytest.raises(OutputLocked, match=f"pid {holder.pid} on "):
            run_label(LabelJob(model=str(tiny_model_dir), input=str(log), output=str(out)))
        assert {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} == before
    finally:
        holder.kill()  # kill -9: the kernel drops its lock, nothing else has to
        holder.wait()
    label(out, tiny_model_dir, log)
    assert outcome(out) == outcome(reference)


class _FullDisk:
    """A file handle on a disk that fills up after `room` more bytes."""

    def __init__(self, handle, room: int) -> None:
        self.handle, self.room = handle, room

    def write(self, data):
        if len(data) > self.room:
            self.handle.write(data[: self.room])
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.handle.write(data)

    def __getattr__(self, name):
        return getattr(self.handle, name)


@pytest.mark.parametrize(
    "victim",
    ["part-000002.parquet", "_rejects/part-000002.jsonl", "_done/part-000002.json"],
)
def test_a_full_disk_mid_shard_keeps_the_shards_done(
    tmp_path, tiny_model_dir, log, reference, capsys, monkeypatch, victim
):
    out = tmp_path / "out"
    victim_tmp = f".{Path(victim).name}.tmp-"
    real_open = open

    def open_on_a_filling_disk(path, mode="r", **kwargs):
        handle = real_open(path, mode, **kwargs)
        return _FullDisk(handle, 20) if Path(path).name.startswith(victim_tmp) else handle

    monkeypatch.setattr(labelgen.data.atomic, "open", open_on_a_filling_disk, raising=False)
    assert main(label_args(out, tiny_model_dir, log)) == EXIT_USAGE
    line = _error_line(capsys)
    assert "No space left on device: shard 2 not written" in line
    assert "rerun" in line and "part-000002" in line
    # shards 0 and 1 done and whole; nothing of shard 2 in sight, not even a hidden temporary
    assert sorted(parts(out)) == ["part-000000.parquet", "part-000001.parquet"]
    assert sorted(p.name for p in (out / "_rejects").iterdir()) == [
        "part-000000.jsonl",
        "part-000001.jsonl",
    ]
    assert_consistent(out)
    assert hidden_files(out) == []
    assert not (out / "_manifest.json").exists()
    monkeypatch.undo()
    label(out, tiny_model_dir, log)
    assert outcome(out) == outcome(reference)


def _permissions_bind(folder: Path) -> bool:
    """False for root (or CAP_DAC_OVERRIDE): it writes into read-only directories anyway."""
    folder.chmod(0o555)
    try:
        (folder / "probe").touch()
    except PermissionError:
        return True
    finally:
        folder.chmod(0o755)
    return False


@contextmanager
def _read_only(monkeypatch, *folders: Path):
    """The folders read-only for the block: by their permissions where those bind, else (as
    root, CI's user) by refusing, as the OS would, to create a file directly inside them. Files
    already there, and their subfolders' files, stay writable either way."""
    if _permissions_bind(folders[0]):
        for folder in folders:
            folder.chmod(0o555)
        try:
            yield
        finally:
            for folder in folders:
                folder.chmod(0o755)
        return

    def refuse(path) -> None:
        if Path(path).parent in folders and not Path(path).exists():
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    real_open, real_os_open = open, os.open

    def opening(path, mode="r", **kwargs):
        if set(mode) & set("wax+"):
            refuse(path)
        return real_open(path, mode, **kwargs)

    def os_opening(path, flags, *args, **kwargs):
        if flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR):
            refuse(path)
        return real_os_open(path, flags, *args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(labelgen.data.atomic, "open", opening, raising=False)
        patched.setattr(os, "open", os_opening)
        yield


def test_a_read_only_output_is_one_line_and_keeps_the_shards_done(
    tmp_path, tiny_model_dir, log, reference, capsys, monkeypatch
):
    out = tmp_path / "out"
    label(out, tiny_model_dir, log)
    for name in ("part-000002.parquet", "part-000003.parquet", "_manifest.json"):
        (out / name).unlink()  # as a run killed after shard 1 leaves it
    for name in ("part-000002", "part-000003"):
        (out / "_done" / f"{name}.json").unlink()
        (out / "_rejects" / f"{name}.jsonl").unlink()
    before = outcome(out)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    capsys.readouterr()
    with _read_only(monkeypatch, out, fresh):
        assert main(label_args(out, tiny_model_dir, log)) == EXIT_USAGE
        assert "Permission denied: shard 2 not written" in _error_line(capsys)
        assert outcome(out) == before and hidden_files(out) == []
        assert main(label_args(fresh, tiny_model_dir, log)) == EXIT_USAGE
        assert _error_line(capsys).endswith(f"Permission denied ({fresh / '_lock'})")
    label(out, tiny_model_dir, log)
    assert outcome(out) == outcome(reference)
    assert json.loads((out / "_manifest.json").read_text())["input_records"] == 62
