"""The global shuffle for `tokens`: documents of the group shards permuted across the whole output."""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import math
import os
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from dolma import atomic, io
from dolma.errors import BadInputError, ConfigError, DolmaError
from dolma.paths import claim_dir, remove_claimed_dir
from mixers.tokens_verify import load_array, shard_paths
from mixers.tokens_write import ShardWriter

# The unit is the document (one index row): a training loader cuts the concatenated shards into fixed-length
# sequences, so after a global document shuffle every sequence mixes documents drawn from the whole corpus,
# and each index row still names one whole document that decodes back to its source line. The shuffle is
# external, in two passes over local scratch files: (1) every document of the group shards is streamed, in
# order, to one of `fanout` bucket files chosen by a seeded generator; (2) bucket by bucket, the order of its
# documents is permuted and they are written to the output shards. A bucket holding more than `window`
# documents is split the same way again (with a seed derived from its position), so at most `window`
# documents' index rows and offsets are in memory at once; their tokens are read through np.memmap.

MAX_FANOUT = 256


@dataclass
class ShuffleStats:
    documents: int = 0
    tokens: int = 0
    shards: int = 0
    buckets: int = 0
    splits: int = 0
    largest_bucket: int = 0
    bytes_out: int = 0


def shuffle_rng(seed: int, path: tuple[int, ...]) -> np.random.Generator:
    """A generator for one step of the shuffle, from the seed and the step's position (bucket path)."""
    key = f"dolma-tokens-global:{seed}:{'.'.join(map(str, path))}".encode()
    return np.random.Generator(np.random.PCG64(int.from_bytes(hashlib.sha256(key).digest()[:16], "little")))


def shuffle_fanout(documents: int, window: int, max_fanout: int = MAX_FANOUT) -> int:
    """Buckets for `documents`: about half a window each (so few need splitting), at most `max_fanout` files."""
    return max(2, min(max(2, max_fanout), math.ceil(2 * documents / max(1, window))))


class _Bucket:
    """Scratch files of one bucket: `.tok` token ids, `.len` int64 lengths, `.idx` CSV rows (id, src, loc)."""

    def __init__(self, base: str, dtype: np.dtype):
        self.base = base
        self.dtype = dtype
        self.documents = 0
        self.tokens = 0
        self._tok: Any = None
        self._len: Any = None
        self._idx: Any = None
        self._rows: Any = None
        self._lengths = array("q")

    def add(self, ids: np.ndarray, doc_id: str, src: str, loc: str) -> None:
        if self._tok is None:  # the files stay open across calls; close() (or remove()) closes them
            self._tok = open(self.base + ".tok", "wb", buffering=1 << 16)  # noqa: SIM115
            self._len = open(self.base + ".len", "wb")  # noqa: SIM115
            self._idx = open(self.base + ".idx", "w", encoding="utf-8", newline="", buffering=1 << 16)  # noqa: SIM115
            self._rows = csv.writer(self._idx, lineterminator="\n")
        self._tok.write(ids.astype(self.dtype, copy=False).tobytes())
        self._rows.writerow((doc_id, src, loc))
        self._lengths.append(len(ids))
        if len(self._lengths) >= 8192:
            self._lengths.tofile(self._len)
            del self._lengths[:]
        self.documents += 1
        self.tokens += len(ids)

    def close(self) -> None:
        if self._tok is not None:
            self._lengths.tofile(self._len)
            del self._lengths[:]
            for fh in (self._tok, self._len, self._idx):
                fh.close()
            self._tok = self._len = self._idx = self._rows = None

    def documents_iter(self) -> Iterator[tuple[np.ndarray, str, str, str]]:
        """The bucket's documents in the order they were added (tokens through a memory map)."""
        if not self.documents:
            return
        lengths = np.fromfile(self.base + ".len", dtype=np.int64)
        offsets = np.concatenate(([0], np.cumsum(lengths)))
        tokens = self.token_map()
        with open(self.base + ".idx", encoding="utf-8", newline="") as fh:
            for i, (doc_id, src, loc) in enumerate(csv.reader(fh)):
                yield tokens[offsets[i] : offsets[i + 1]], doc_id, src, loc

    def token_map(self) -> np.ndarray:
        if not self.tokens:
            return np.zeros(0, dtype=self.dtype)
        return np.memmap(self.base + ".tok", dtype=self.dtype, mode="r")

    def remove(self) -> None:
        self.close()
        for ext in (".tok", ".len", ".idx"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.base + ext)


def _scatter(
    docs: Iterator[tuple[np.ndarray, str, str, str]], base: str, fanout: int, rng: np.random.Generator, dtype
) -> list[_Bucket]:
    """Stream documents, in order, into `fanout` bucket files, each to a bucket drawn by `rng`."""
    buckets = [_Bucket(f"{base}-{b:03d}", dtype) for b in range(fanout)]
    draws = np.zeros(0, dtype=np.int64)
    pos = 0
    try:
        for doc in docs:
            if pos == len(draws):
                draws, pos = rng.integers(0, fanout, size=4096), 0
            buckets[int(draws[pos])].add(*doc)
            pos += 1
    finally:
        for bucket in buckets:
            bucket.close()
    return buckets


def _emit(
    bucket: _Bucket,
    path: tuple[int, ...],
    writer: ShardWriter,
    seed: int,
    window: int,
    max_fanout: int,
    stats: ShuffleStats,
) -> None:
    """Write a bucket's documents in a random order (splitting it first if it holds more than `window`)."""
    n = bucket.documents
    if n > window:
        stats.splits += 1
        fanout = shuffle_fanout(n, window, max_fanout)
        rng = shuffle_rng(seed, (*path, -1))
        parts = _scatter(bucket.documents_iter(), f"{bucket.base}.", fanout, rng, writer.dtype)
        bucket.remove()
        for b, part in enumerate(parts):
            _emit(part, (*path, b), writer, seed, window, max_fanout, stats)
        return
    stats.buckets += 1
    stats.documents += n
    stats.largest_bucket = max(stats.largest_bucket, n)
    if n:
        lengths = np.fromfile(bucket.base + ".len", dtype=np.int64)
        offsets = np.concatenate(([0], np.cumsum(lengths)))
        with open(bucket.base + ".idx", encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh))
        if len(rows) != n or len(lengths) != n:
            raise DolmaError(f"{bucket.base}: scratch bucket is inconsistent ({len(rows)} rows, {n} documents)")
        tokens = bucket.token_map()
        for j in shuffle_rng(seed, path).permutation(n):
            doc_id, src, loc = rows[j]
            writer.add(tokens[offsets[j] : offsets[j + 1]], doc_id, src, loc)
        del tokens
    bucket.remove()


def count_index_rows(path: str) -> int:
    """Rows of a (local) .csv.gz index (newlines inside quoted fields are counted too: only an estimate)."""
    with gzip.open(path, "rb") as fh:
        return sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 20), b""))


def _shard_documents(
    pairs: list[tuple[str, str]], dtype: np.dtype, scratch: str
) -> Iterator[tuple[np.ndarray, str, str, str]]:
    """Every document of the shards, in shard and row order; S3 shards are copied to `scratch` one at a time."""
    for npy_path, csv_path in pairs:
        local_npy, local_csv = npy_path, csv_path
        if io.is_s3(npy_path):
            local_npy, local_csv = os.path.join(scratch, "shard.npy"), os.path.join(scratch, "shard.csv.gz")
            atomic.copy(npy_path, local_npy)
            atomic.copy(csv_path, local_csv)
        arr = load_array(local_npy, dtype)
        with gzip.open(local_csv, "rt", encoding="utf-8", newline="") as fh:
            for n, rec in enumerate(csv.reader(fh), start=1):
                if len(rec) != 5:
                    raise BadInputError(csv_path, n, f"expected 5 columns start,end,id,src,loc, got {len(rec)}")
                start, end = int(rec[0]), int(rec[1])
                if not 0 <= start < end <= len(arr):
                    raise BadInputError(csv_path, n, f"range [{start}, {end}) is outside the array ({len(arr)})")
                yield arr[start:end], rec[2], rec[3], rec[4]
        del arr
        if io.is_s3(npy_path):
            os.remove(local_npy)
            os.remove(local_csv)


def global_shuffle(
    source: str,
    destination: str,
    dtype: np.dtype,
    max_size: int,
    seed: int,
    window: int,
    scratch: str,
    max_fanout: int = MAX_FANOUT,
    on_open: Callable[[list[str]], None] | None = None,
) -> ShuffleStats:
    """Permute the documents of every shard under `source` into `part-0-<NNNNN>` shards under `destination`.

    Seeded and reproducible (the same shards, seed and window give the same bytes); at most `window` documents'
    rows are held at once; scratch files go to the local directory `scratch`, which is claimed (created with
    an owner marker; a killed run's is emptied first) and removed after. Output shards are written atomically
    (S3: multipart uploads completed on close); `on_open` is told each one's names first.
    """
    if window < 1:
        raise ConfigError("global_shuffle.window must be at least 1 document")
    pairs = shard_paths(source)
    remove_claimed_dir(scratch)
    claim_dir(scratch, "tokens")
    stats = ShuffleStats()
    writer = ShardWriter(destination, 0, dtype, max_size, on_open)
    try:
        documents = 0
        for _npy_path, csv_path in pairs:
            if io.is_s3(csv_path):
                local = os.path.join(scratch, "count.csv.gz")
                atomic.copy(csv_path, local)
                documents += count_index_rows(local)
                os.remove(local)
            else:
                documents += count_index_rows(csv_path)
        fanout = shuffle_fanout(documents, window, max_fanout)
        docs = _shard_documents(pairs, dtype, scratch)
        buckets = _scatter(docs, os.path.join(scratch, "b"), fanout, shuffle_rng(seed, (-1,)), dtype)
        for b, bucket in enumerate(buckets):
            _emit(bucket, (b,), writer, seed, window, max_fanout, stats)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        remove_claimed_dir(scratch)
    stats.tokens = writer.tokens
    stats.shards = writer.shards
    stats.bytes_out = writer.bytes_written
    return stats
