"""Gzip logs that may be cut off or corrupt: every byte before the damage, then the damage.

`gzip.decompress` loses the whole file at the first bad byte, and `gzip.open` loses what it had
decompressed in the call that fails; a reader needs the longest readable prefix, so that a
truncated download still yields every record before the cut and reports the rest as a reject.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import BinaryIO

CHUNK = 1 << 16
MAX_OUT = 1 << 20
"""Bytes decompressed per step: a decompression bomb costs this much memory, not its ratio."""


class DamagedGzip(Exception):
    """The gzip data is corrupt or ends early; everything before the damage was yielded.

    `partial` is set by `split_lines`: the start of the line the damage cut.
    """

    partial: bytes = b""


def gunzip(handle: BinaryIO) -> Iterator[bytes]:
    """The decompressed bytes of a gzip stream, then `DamagedGzip` if the stream is damaged.

    Concatenated members (`cat a.gz b.gz`) are one stream and zero padding after a member is
    skipped, as `gzip.open` does.
    """
    decomp = zlib.decompressobj(wbits=31)
    started, members = False, 0
    while chunk := handle.read(CHUNK):
        while True:
            if not started:
                if members:
                    chunk = chunk.lstrip(b"\0")
                if not chunk:
                    break
                started = True
            try:
                out = decomp.decompress(chunk, MAX_OUT)
            except zlib.error as err:
                raise DamagedGzip(f"corrupt gzip data ({err})") from err
            if out:
                yield out
            if decomp.eof:
                chunk = decomp.unused_data
                decomp = zlib.decompressobj(wbits=31)
                started, members = False, members + 1
                continue
            chunk = decomp.unconsumed_tail
            # A full step may leave output pending inside zlib with no input left to feed.
            if not chunk and len(out) < MAX_OUT:
                break
    if started:
        raise DamagedGzip("gzip data ends before its end marker (the file is cut off)")


def split_lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Lines (without `\\n`) of a byte stream; a `DamagedGzip` from `chunks` is re-raised with
    the cut line's start in `partial`."""
    pending: list[bytes] = []
    try:
        for chunk in chunks:
            start = 0
            while (end := chunk.find(b"\n", start)) >= 0:
                pending.append(chunk[start:end])
                yield b"".join(pending)
                pending = []
                start = end + 1
            pending.append(chunk[start:])
    except DamagedGzip as err:
        err.partial = b"".join(pending)
        raise
    if last := b"".join(pending):
        yield last
