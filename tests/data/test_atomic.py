from __future__ import annotations

import errno
import os

import pytest

from labelgen.data.atomic import AtomicFile


def test_a_failed_commit_leaves_neither_the_file_nor_its_temporary(tmp_path, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    part = AtomicFile(tmp_path / "a.jsonl")
    part.handle.write("x" * 100)
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space"):
        part.close()
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()

    ok = AtomicFile(tmp_path / "a.jsonl")
    ok.handle.write("y")
    ok.close()
    assert [p.name for p in tmp_path.iterdir()] == ["a.jsonl"]
    assert (tmp_path / "a.jsonl").read_text() == "y"
