"""Compression chosen by extension (gzip, zstd or plain) and the incremental decoder every reader uses."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any

import zstandard


def compression_of(path: str) -> str | None:
    """`gzip`, `zstd` or None (plain), from the last extension."""
    lower = path.lower()
    if lower.endswith(".gz") or lower.endswith(".gzip"):
        return "gzip"
    if lower.endswith(".zst") or lower.endswith(".zstd"):
        return "zstd"
    return None


class Decoder:
    """Incremental decompressor for concatenated gzip members or zstd frames; knows whether it ended cleanly.

    Output is produced in bounded pieces (gzip: at most `OUT_CHUNK` per piece; zstd: input is fed in small
    slices), so a highly compressible file does not balloon memory.
    """

    OUT_CHUNK = 1 << 20
    ZSTD_SLICE = 1 << 14

    def __init__(self, kind: str | None):
        self.kind = kind
        self._obj: Any = None
        self._fresh = True
        self._members = 0
        self._padding = False
        self._new()

    def _new(self) -> None:
        if self.kind == "gzip":
            self._obj = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        elif self.kind == "zstd":
            self._obj = zstandard.ZstdDecompressor().decompressobj()
        self._fresh = True

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self.kind is None:
            if data:
                yield data
            return
        if self.kind == "zstd":
            for start in range(0, len(data), self.ZSTD_SLICE):
                yield from self._feed_zstd(data[start : start + self.ZSTD_SLICE])
            return
        while data:
            if self._padding or (self._fresh and self._members and data[0] == 0):
                # Zero bytes after the last member (tape or block padding): gzip itself ignores them.
                self._padding = True
                if data.count(0) != len(data):
                    raise zlib.error("data after the zero padding that follows the last gzip member")
                return
            self._fresh = False
            out = self._obj.decompress(data, self.OUT_CHUNK)
            if out:
                yield out
            if self._obj.eof:
                data = self._obj.unused_data
                self._members += 1
                self._new()
            else:
                data = self._obj.unconsumed_tail
                if not data and not out:
                    return

    def _feed_zstd(self, data: bytes) -> Iterator[bytes]:
        while data:
            self._fresh = False
            out = self._obj.decompress(data)
            if out:
                yield out
            if self._obj.eof:
                data = self._obj.unused_data
                self._new()
            else:
                data = b""

    def finished_cleanly(self) -> bool:
        return self.kind is None or self._fresh
