"""Output files that are either complete or absent: written beside the target, then renamed."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


class AtomicFile:
    """A file written under a temporary name and renamed into place by `close(commit=True)`.

    A crash or an exception leaves no partial file under the final name; the temporary file
    (hidden, same directory so the rename is atomic) is removed on a clean abort.
    """

    def __init__(self, path: str | Path, mode: str = "w") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp_path = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        encoding = None if "b" in mode else "utf-8"
        self.handle: IO[Any] = open(self.tmp_path, mode, encoding=encoding)  # noqa: SIM115
        self._done = False

    def close(self, commit: bool = True) -> None:
        """Publish the file (`commit`) or discard it. Writers layered on the handle (Parquet,
        gzip) may have closed it already; their bytes are flushed by then."""
        if self._done:
            return
        self._done = True
        if not commit:
            self.handle.close()
            self.tmp_path.unlink(missing_ok=True)
            return
        try:
            if not self.handle.closed:
                self.handle.flush()
                os.fsync(self.handle.fileno())
                self.handle.close()
            os.replace(self.tmp_path, self.path)
        except BaseException:
            # a full disk mostly shows at the flush: the hidden temporary must not stay behind
            with contextlib.suppress(OSError):
                self.handle.close()
            self.tmp_path.unlink(missing_ok=True)
            raise


@contextlib.contextmanager
def committed(path: str | Path, mode: str = "w") -> Iterator[Any]:
    """A handle whose file appears under `path`, whole, when the block ends without error."""
    file = AtomicFile(path, mode)
    try:
        yield file.handle
        file.close()
    except BaseException:
        file.close(commit=False)  # a failed commit has removed its temporary itself
        raise
