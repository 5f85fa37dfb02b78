"""Writing for `tokens`: the shard writer (token array + index) and one group tokenized into shards."""

from __future__ import annotations

import csv
import io as _pyio
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from dolma import atomic, io
from dolma.documents import ReadStats
from mixers.tokenizer import Tokenizer
from mixers.tokens import CSV_FLUSH_ROWS, group_rng, part_name
from mixers.tokens_read import SourceDoc, _doc_decoder, read_source, ring_documents

# ----------------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------------


class ShardWriter:
    """Appends documents to `part-<group>-<NNNNN>` shards of at most `max_size` tokens each.

    A document is never split across shards; one longer than `max_size` is written alone in its own shard
    (the reference loops forever on such a document). Both files of a shard are written atomically.
    """

    def __init__(
        self,
        destination: str,
        group: int,
        dtype: np.dtype,
        max_size: int,
        on_open: Callable[[list[str]], None] | None = None,
    ):
        self.destination = destination
        self.on_open = on_open
        self.group = group
        self.dtype = dtype
        self.max_size = max(1, int(max_size))
        self.part = 0
        self.count = 0
        self.shards = 0
        self.oversize = 0
        self.tokens = 0
        self.bytes_written = 0
        self._npy: atomic.AtomicWriter | None = None
        self._csv: atomic.AtomicWriter | None = None
        self._rows = _pyio.StringIO()
        self._row_writer = csv.writer(self._rows, lineterminator="\n")
        self._pending_rows = 0

    def paths(self, part: int) -> tuple[str, str]:
        base = io.join(self.destination, part_name(self.group, part))
        return f"{base}.npy", f"{base}.csv.gz"

    def _open(self) -> None:
        npy_path, csv_path = self.paths(self.part)
        if self.on_open is not None:
            self.on_open([io.basename(npy_path), io.basename(csv_path)])
        self._npy = atomic.AtomicWriter(npy_path, compression=None)
        self._csv = atomic.AtomicWriter(csv_path, compression="gzip")
        self.count = 0

    def _flush_rows(self) -> None:
        if self._pending_rows and self._csv is not None:
            self._csv.write(self._rows.getvalue().encode("utf-8"))
            self._rows.seek(0)
            self._rows.truncate()
            self._pending_rows = 0

    def _close_part(self) -> None:
        if self._npy is None or self._csv is None:
            return
        self._flush_rows()
        self._npy.close()
        self._csv.close()
        self.bytes_written += self._npy.bytes_written + self._csv.bytes_written
        self._npy = self._csv = None
        self.part += 1
        self.shards += 1

    def add(self, ids: np.ndarray, doc_id: str, src: str, loc: int) -> None:
        n = len(ids)
        if self._npy is not None and self.count + n > self.max_size:
            self._close_part()
        if self._npy is None:
            self._open()
        assert self._npy is not None
        self._npy.write(ids.astype(self.dtype, copy=False).tobytes())
        self._row_writer.writerow((self.count, self.count + n, doc_id, src, loc))
        self._pending_rows += 1
        self.count += n
        self.tokens += n
        if self._pending_rows >= CSV_FLUSH_ROWS:
            self._flush_rows()
        if n > self.max_size:
            self.oversize += 1
            self._close_part()

    def close(self) -> None:
        self._close_part()

    def abort(self) -> None:
        for writer in (self._npy, self._csv):
            if writer is not None:
                writer.abort()
        self._npy = self._csv = None


# ----------------------------------------------------------------------------------------------------------
# One group
# ----------------------------------------------------------------------------------------------------------


@dataclass
class GroupSettings:
    destination: str
    dtype: np.dtype
    max_size: int
    batch_size: int
    ring_size: int
    shuffle_window: int
    seed: int
    bos_token_id: int | None
    eos_token_id: int | None
    segment_before_tokenization: bool
    text_field: str = "text"
    id_field: str = "id"
    skip_bad_lines: bool = False


@dataclass
class GroupStats:
    read: ReadStats = field(default_factory=ReadStats)
    empty: int = 0
    documents_out: int = 0
    tokens: int = 0
    shards: int = 0
    oversize: int = 0
    bytes_out: int = 0


_PARAGRAPH_END = re.compile(r"(?<=\n)")


def encode_documents(tokenizer: Tokenizer, texts: list[str], segment: bool) -> list[list[int]]:
    """Token ids per text; with `segment`, each line (newline kept) is encoded on its own and concatenated."""
    if not segment:
        return tokenizer.encode_batch(texts)
    pieces: list[str] = []
    bounds: list[int] = []
    for text in texts:
        parts = [p for p in _PARAGRAPH_END.split(text) if p]
        pieces.extend(parts)
        bounds.append(len(parts))
    encoded = tokenizer.encode_batch(pieces)
    out: list[list[int]] = []
    pos = 0
    for count in bounds:
        ids: list[int] = []
        for piece in encoded[pos : pos + count]:
            ids.extend(piece)
        out.append(ids)
        pos += count
    return out


def tokenize_group(
    group: int,
    files: list[str],
    tokenizer: Tokenizer,
    settings: GroupSettings,
    progress=None,
    on_open: Callable[[list[str]], None] | None = None,
) -> GroupStats:
    """Tokenize one group of files into its shards (atomically), mixing documents across its files.

    `on_open` is told the names of each shard before it is created (see `ShardLedger`).
    """
    stats = GroupStats()
    rng = group_rng(settings.seed, group)
    decoder = _doc_decoder(settings.text_field, settings.id_field)
    fields = (settings.text_field, settings.id_field)

    def reader(path: str) -> Iterator[SourceDoc]:
        return read_source(path, decoder, fields, settings.skip_bad_lines, stats.read)

    writer = ShardWriter(settings.destination, group, settings.dtype, settings.max_size, on_open)
    window: list[tuple[np.ndarray, str, str, int]] = []
    window_size = max(0, settings.shuffle_window)
    prefix = [settings.bos_token_id] if settings.bos_token_id is not None else []
    suffix = [settings.eos_token_id] if settings.eos_token_id is not None else []
    dtype = settings.dtype
    last_bytes = 0

    def emit(item: tuple[np.ndarray, str, str, int]) -> None:
        writer.add(*item)

    def process(batch: list[SourceDoc]) -> None:
        nonlocal last_bytes
        encoded = encode_documents(tokenizer, [d.text for d in batch], settings.segment_before_tokenization)
        for doc, ids in zip(batch, encoded):
            arr = np.array(prefix + ids + suffix, dtype=dtype) if (prefix or suffix) else np.array(ids, dtype=dtype)
            window.append((arr, doc.id, doc.src, doc.loc))
            while len(window) > window_size:
                j = rng.randrange(len(window))
                window[j], window[-1] = window[-1], window[j]
                emit(window.pop())
        if progress is not None:
            progress(len(batch), stats.read.bytes - last_bytes)
            last_bytes = stats.read.bytes

    try:
        batch: list[SourceDoc] = []
        for doc in ring_documents(files, settings.ring_size, rng, reader):
            text = doc.text.strip()
            if not text:
                stats.empty += 1
                continue
            doc.text = text
            batch.append(doc)
            if len(batch) >= settings.batch_size:
                process(batch)
                batch = []
        if batch:
            process(batch)
        rng.shuffle(window)
        for item in window:
            emit(item)
        window.clear()
        writer.close()
    except BaseException:
        writer.abort()
        raise
    stats.documents_out = stats.read.documents - stats.empty
    stats.tokens = writer.tokens
    stats.shards = writer.shards
    stats.oversize = writer.oversize
    stats.bytes_out = writer.bytes_written
    return stats
