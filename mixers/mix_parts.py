"""A mix unit's staged output: part files and manifests, the sampling decision, and the part writer.

The part writer cuts a unit's kept rows into numbered, compressed part files of at most `max_size_in_bytes`
(uncompressed) in the stream's staging directory; the manifest listing them is the unit's "done" marker.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import msgspec
import zstandard

from dolma import atomic, io
from dolma.errors import ConfigError

STAGING_PREFIX = ".mix-staging-"
SHARDS_RECORD_SUFFIX = ".mix-shards.json"

_EXTENSIONS = {"gzip": ".jsonl.gz", "zstd": ".jsonl.zst", None: ".jsonl"}
_COMPRESSION_NAMES = {
    None: "gzip",
    "gzip": "gzip",
    "gz": "gzip",
    "zstd": "zstd",
    "zst": "zstd",
    "none": None,
    "": None,
}


def compression_setting(value: str | None, where: str, default: str | None) -> str | None:
    key = value.lower() if isinstance(value, str) else value
    if key is None:
        return default
    if key not in _COMPRESSION_NAMES:
        raise ConfigError(f"{where}: unknown compression '{value}' (gzip, zstd or none)")
    return _COMPRESSION_NAMES[key]


# ----------------------------------------------------------------------------------------------------------
# Manifests
# ----------------------------------------------------------------------------------------------------------


class Part(msgspec.Struct):
    path: str
    bytes: int
    documents: int


class Manifest(msgspec.Struct):
    input: str
    parts: list[Part]
    counters: dict[str, int]


class ShardsRecord(msgspec.Struct):
    """`<path>/.<name>.mix-shards.json`: the shards a stream published into its output directory.

    It is what lets a rerun remove the shards of an earlier, longer output, and only those: while shards are
    being published it lists the old and the new ones (`complete` false), afterwards exactly the new ones.
    """

    shards: list[str]
    complete: bool = True


class StreamReport(msgspec.Struct):
    """What a stream did: documents in and kept, drops per rule, spans replaced, bytes, shards."""

    name: str
    files: int
    documents_in: int
    documents_kept: int
    documents_written: int
    dropped: dict[str, int]
    spans_replaced: int
    bytes_in: int
    bytes_out: int
    shards: list[str]
    sample_rate: float | None
    # e.g. a rule naming an attribute that no attribute file has (check_attribute_keys)
    warnings: list[str] = []


# ----------------------------------------------------------------------------------------------------------
# Sampling
# ----------------------------------------------------------------------------------------------------------


def sample_unit(seed: int, doc_id: str) -> float:
    """A uniform number in [0, 1) fixed by the seed and the document id (blake2b, stable across runs)."""
    digest = hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8, key=seed.to_bytes(8, "little", signed=True))
    return int.from_bytes(digest.digest(), "little") / 2.0**64


def copies_for(rate: float | None, seed: int, doc_id: str) -> int:
    """How many times a document is written: rate 0.3 keeps ~30%; rate 2.5 writes 2 or 3 copies (50% get 3)."""
    if rate is None or rate == 1.0:
        return 1
    whole = math.floor(rate)
    frac = rate - whole
    if frac == 0.0:
        return whole
    return whole + (1 if sample_unit(seed, doc_id) < frac else 0)


# ----------------------------------------------------------------------------------------------------------
# Part writer
# ----------------------------------------------------------------------------------------------------------


DEFAULT_GZIP_LEVEL = 5
"""zlib-ng level 5: about 5% larger than level 6 (the reference's size) at twice the compression speed."""

BLOCK = 4 << 20
"""Uncompressed bytes per compressed block (one gzip member or zstd frame)."""


def block_compressor(compression: str | None, level: int | None) -> Callable[[bytes], bytes] | None:
    """A function turning a block into a self-contained gzip member / zstd frame (None: plain output).

    Members and frames concatenate into one valid file, so blocks are compressed independently, on
    threads (zlib-ng and zstandard release the GIL), and written in order: the bytes do not depend on
    timing or on the number of threads.
    """
    if compression == "gzip":
        from zlib_ng import zlib_ng

        lvl = DEFAULT_GZIP_LEVEL if level is None else level
        return lambda data: zlib_ng.compress(data, lvl, wbits=31)
    if compression == "zstd":
        cctx_level = 3 if level is None else level
        local = threading.local()

        def compress(data: bytes) -> bytes:
            cctx = getattr(local, "cctx", None)
            if cctx is None:
                cctx = local.cctx = zstandard.ZstdCompressor(level=cctx_level)
            return cctx.compress(data)

        return compress
    return None


class PartWriter:
    """Writes rows to part-00000, part-00001, ... in a directory, starting a new part before the cap is passed.

    Rows are gathered into blocks that are compressed on a small thread pool while parsing continues.
    """

    def __init__(
        self,
        directory: str,
        extension: str,
        compression: str | None,
        max_size: int,
        level: int | None = None,
        threads: int = 2,
    ):
        self.directory = directory
        self.extension = extension
        self.max_size = max_size
        self.parts: list[Part] = []
        self._compress = block_compressor(compression, level)
        self._pool = ThreadPoolExecutor(max_workers=max(1, threads)) if self._compress and threads > 0 else None
        self._pending: deque[Future[bytes]] = deque()
        self._max_pending = 2 * max(1, threads)
        self._writer: atomic.AtomicWriter | None = None
        self._size = 0
        self._docs = 0
        self._buffer: list[bytes] = []
        self._buffered = 0

    def _open(self) -> None:
        path = io.join(self.directory, f"part-{len(self.parts):05d}{self.extension}")
        self._writer = atomic.AtomicWriter(path, compression=None)
        self._size = 0
        self._docs = 0

    def _drain(self, keep: int) -> None:
        assert self._writer is not None
        while len(self._pending) > keep:
            self._writer.write(self._pending.popleft().result())

    def _flush_buffer(self) -> None:
        if not self._buffer or self._writer is None:
            return
        data = b"".join(self._buffer)
        self._buffer.clear()
        self._buffered = 0
        if self._compress is None:
            self._writer.write(data)
        elif self._pool is None:
            self._writer.write(self._compress(data))
        else:
            self._pending.append(self._pool.submit(self._compress, data))
            self._drain(self._max_pending)

    def write(self, row: bytes) -> None:
        if self._writer is not None and self._size + len(row) > self.max_size and self._docs:
            self._close_current()
        if self._writer is None:
            self._open()
        self._buffer.append(row)
        self._buffered += len(row)
        self._size += len(row)
        self._docs += 1
        if self._buffered >= BLOCK:
            self._flush_buffer()

    def _close_current(self) -> None:
        assert self._writer is not None
        self._flush_buffer()
        self._drain(0)
        self._writer.close()
        self.parts.append(Part(path=self._writer.path, bytes=self._size, documents=self._docs))
        self._writer = None

    def close(self) -> list[Part]:
        try:
            if self._writer is not None:
                self._close_current()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
        return self.parts

    def abort(self) -> None:
        for fut in self._pending:
            fut.cancel()
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._writer is not None:
            self._writer.abort()
            self._writer = None
