"""Global deduplication on Spark: the key space is split by hash so every partition owns one slice of it.

Why this design: one Bloom filter for a whole corpus must fit on one machine and is filled in one order. On
a cluster we instead shuffle every (key hash, position) pair to the partition that owns `hash % P`; each
partition sees every occurrence of the keys it owns, so the decision "is this the first occurrence?" is
exact and local to the partition. Positions are (file index in the sorted input list, line, slot within the
document), so the winner of every key is the first occurrence in the stable order of path, then line, then
paragraph: the same choice a single sequential pass over the sorted files makes, whatever the number of
partitions, executors or task retries.

Two stages:
1. one task per documents file reads it and emits (hash, position) for every key (KeyExtractor.keys);
   `repartitionAndSortWithinPartitions` sends each hash to its owner partition and sorts it there (Spark's
   external sort spills to disk, so a slice larger than memory still works); each owner walks its sorted
   slice and emits the positions of every non-first occurrence, keyed by file index;
2. those duplicate positions are partitioned by file index (identity partitioner: partition i = file i),
   and one task per file rereads it and writes its attributes file atomically (KeyExtractor.row).

Memory: stage 1 holds about (total keys / P) x ~50 bytes per partition before spilling; choose
`num_partitions` so that slice fits in `spark.python.worker.memory` comfortably (for example 2 billion
paragraph keys over 400 partitions is 5 million keys, ~250 MB each). Stage 2 holds one file's duplicate
positions (only duplicates, 16 bytes each). Outputs depend only on the inputs, so both stages can be
retried or run speculatively: the same bytes are written to the same names.

The key functions here (documents mode on a JSON path, paragraphs mode) compute xxh3-64 hashes in Python;
any callable with the KeyExtractor interface can be plugged in (the Rust deduper's key functions, n-grams).
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import msgspec

from dolma import io
from dolma.documents import ReadStats, decode_raw
from dolma.errors import ConfigError
from dolma.executor import Summary, Unit, UnitFailure, UnitStats

log = logging.getLogger("dolma")

# Position of a key occurrence as one sortable int: file index, 1-based line, slot within the document.
_LINE_BITS = 40
_SLOT_BITS = 24
_SLOT_MASK = (1 << _SLOT_BITS) - 1
_LINE_MASK = (1 << _LINE_BITS) - 1


def pack_position(file_index: int, line: int, slot: int) -> int:
    if slot > _SLOT_MASK or line > _LINE_MASK:
        raise ValueError(f"position out of range: line {line}, slot {slot}")
    return (file_index << (_LINE_BITS + _SLOT_BITS)) | (line << _SLOT_BITS) | slot


def unpack_position(pos: int) -> tuple[int, int, int]:
    return pos >> (_LINE_BITS + _SLOT_BITS), (pos >> _SLOT_BITS) & _LINE_MASK, pos & _SLOT_MASK


KeySpan = tuple[int, int, int]
"""(start, end, key hash) of one key occurrence in a document."""


class DedupeRow(msgspec.Struct):
    """One attributes line, in the key order `dolma dedupe` writes: attributes, then id."""

    attributes: dict[str, list[list[int]]]
    id: str


class KeyExtractor(ABC):
    """Turns a document into dedupe keys, and a document plus its duplicate slots into an attributes row.

    Instances are pickled to the executors, so they hold only plain settings.
    """

    attribute_name: str

    @abstractmethod
    def keys(self, doc: dict[str, Any]) -> list[KeySpan] | None:
        """The keys of a document in slot order, or None when the document is skipped (e.g. empty)."""

    @abstractmethod
    def attributes(self, spans: list[KeySpan] | None, duplicate_slots: set[int]) -> dict[str, list[list[int]]]:
        """The attributes of a document given its keys and which of them are duplicates."""


def _hash(text: str) -> int:
    from dolma._rust import xxh3_64

    return xxh3_64(text.encode("utf-8", "surrogatepass"))


def _select(doc: dict[str, Any], path: str) -> Any:
    """A value at a simple JSONPath (`$.text`, `$.metadata.url`); None when absent."""
    parts = path[2:].split(".") if path.startswith("$.") else path.split(".")
    value: Any = doc
    for part in parts:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


class DocumentKeys(KeyExtractor):
    """documents mode: one key per document (the value at `key`); a repeat gets [[0, len, 1]].

    Follows what `dolma dedupe` writes: first occurrences get no attribute, skipped (empty) documents an
    empty list, and the span end is the key's length in UTF-8 bytes.
    """

    def __init__(self, attribute_name: str, key: str = "$.text", skip_empty: bool = True):
        if not key.startswith("$.") or any(ch in key for ch in "[]*?@"):
            raise ConfigError(f"dedupe.documents.key: only simple paths like $.text or $.metadata.url: {key!r}")
        self.attribute_name = attribute_name
        self.key = key
        self.skip_empty = skip_empty

    def keys(self, doc: dict[str, Any]) -> list[KeySpan] | None:
        value = _select(doc, self.key)
        if value is None:
            return None
        text = value if isinstance(value, str) else msgspec.json.encode(value).decode()
        if self.skip_empty and not text.strip():
            return None
        return [(0, len(text.encode("utf-8", "surrogatepass")), _hash(text))]

    def attributes(self, spans: list[KeySpan] | None, duplicate_slots: set[int]) -> dict[str, list[list[int]]]:
        if spans is None:
            return {self.attribute_name: []}
        if 0 in duplicate_slots:
            return {self.attribute_name: [[spans[0][0], spans[0][1], 1]]}
        return {}


class ParagraphKeys(KeyExtractor):
    """paragraphs mode: one key per paragraph; each repeated paragraph gets [start, end, 1].

    Paragraphs are the pieces between separators after dropping one trailing separator; a span includes its
    separator except for the last paragraph. Offsets are code points (the reference mixes bytes in).
    Documents with empty text get no attribute; blank paragraphs are not keys when `skip_empty`.
    """

    def __init__(self, attribute_name: str, separator: str = "\n", skip_empty: bool = True):
        if not separator:
            raise ConfigError("dedupe.paragraphs.paragraph_separator must not be empty")
        self.attribute_name = attribute_name
        self.separator = separator
        self.skip_empty = skip_empty

    def keys(self, doc: dict[str, Any]) -> list[KeySpan] | None:
        text = doc.get("text")
        if not isinstance(text, str) or not text:
            return None
        sep = self.separator
        body = text[: -len(sep)] if text.endswith(sep) else text
        out: list[KeySpan] = []
        start = 0
        pieces = body.split(sep)
        for idx, piece in enumerate(pieces):
            end = start + len(piece) + (len(sep) if idx < len(pieces) - 1 else 0)
            if not (self.skip_empty and not piece.strip()):
                out.append((start, end, _hash(piece)))
            start = end
        return out

    def attributes(self, spans: list[KeySpan] | None, duplicate_slots: set[int]) -> dict[str, list[list[int]]]:
        if spans is None:
            return {}
        return {self.attribute_name: [[s, e, 1] for slot, (s, e, _h) in enumerate(spans) if slot in duplicate_slots]}


# ----------------------------------------------------------------------------------------------------------
# Stage functions (run on the executors)
# ----------------------------------------------------------------------------------------------------------


def iter_document_keys(
    path: str, extractor: KeyExtractor, skip_bad_lines: bool, stats: ReadStats | None = None
) -> Iterator[tuple[int, str, list[KeySpan] | None]]:
    """(line, id, keys) for every document of a file; bad lines fail the file (or are counted and skipped)."""
    from dolma.errors import BadInputError

    stats = stats if stats is not None else ReadStats()
    for lineno, line in io.iter_lines(path):
        stats.lines += 1
        stats.bytes += len(line) + 1
        if not line.strip():
            continue
        try:
            doc = decode_raw(line, path, lineno)
            doc_id = doc.get("id")
            if not isinstance(doc_id, str):
                raise BadInputError(path, lineno, "missing or not a string", "id")
        except BadInputError:
            if not skip_bad_lines:
                raise
            stats.bad_lines += 1
            continue
        stats.documents += 1
        yield lineno, doc_id, extractor.keys(doc)


class EmitKeys:
    """Stage 1 map: one documents file -> (hash, packed position) for every key."""

    def __init__(self, paths: Sequence[str], extractor: KeyExtractor, skip_bad_lines: bool, s3: Any):
        self.paths = list(paths)
        self.extractor = extractor
        self.skip_bad_lines = skip_bad_lines
        self.s3 = s3

    def __call__(self, file_index: int, _items: Iterable[Any]) -> Iterator[tuple[int, int]]:
        io.configure_s3(self.s3)
        path = self.paths[file_index]
        for lineno, _doc_id, spans in iter_document_keys(path, self.extractor, self.skip_bad_lines):
            for slot, (_s, _e, key) in enumerate(spans or ()):
                yield key, pack_position(file_index, lineno, slot)


def owner_partition(key: int) -> int:
    """Keys are uniform 64-bit hashes: the owner of a key is simply its value modulo P (applied by Spark)."""
    return key


def mark_repeats(items: Iterable[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """Stage 1 reduce over a slice sorted by hash: every occurrence but the earliest is a duplicate.

    Yields (file index, position) for each duplicate.
    """
    current: int | None = None
    group: list[int] = []

    def flush() -> Iterator[tuple[int, int]]:
        if len(group) > 1:
            first = min(group)
            for pos in group:
                if pos != first:
                    yield pos >> (_LINE_BITS + _SLOT_BITS), pos
        group.clear()

    for key, pos in items:
        if key != current:
            yield from flush()
            current = key
        group.append(pos)
    yield from flush()


class WriteAttributes:
    """Stage 2: partition i holds the duplicate positions of file i; reread the file and write its attributes."""

    def __init__(
        self, paths: Sequence[str], outputs: Sequence[str], extractor: KeyExtractor, skip_bad_lines: bool, s3: Any
    ):
        self.paths = list(paths)
        self.outputs = list(outputs)
        self.extractor = extractor
        self.skip_bad_lines = skip_bad_lines
        self.s3 = s3

    def __call__(self, file_index: int, items: Iterable[tuple[int, int]]) -> Iterator[bytes]:
        io.configure_s3(self.s3)
        duplicates: dict[int, set[int]] = {}
        for _file, pos in items:
            _f, line, slot = unpack_position(pos)
            duplicates.setdefault(line, set()).add(slot)
        path = self.paths[file_index]
        stats = ReadStats()
        encode = msgspec.json.encode
        empty: set[int] = set()
        marked = 0
        with io.AtomicWriter(self.outputs[file_index]) as out:
            buf: list[bytes] = []
            for lineno, doc_id, spans in iter_document_keys(path, self.extractor, self.skip_bad_lines, stats):
                slots = duplicates.get(lineno, empty)
                marked += len(slots)
                buf.append(encode(DedupeRow(attributes=self.extractor.attributes(spans, slots), id=doc_id)))
                if len(buf) >= 1024:
                    out.write(b"\n".join(buf) + b"\n")
                    buf.clear()
            if buf:
                out.write(b"\n".join(buf) + b"\n")
            written = out.bytes_written
        result = UnitStats(
            documents_in=stats.documents,
            documents_out=stats.documents,
            bad_lines=stats.bad_lines,
            bytes_in=stats.bytes,
            bytes_out=written,
            counters={"duplicate keys marked": marked},
        )
        yield msgspec.msgpack.encode((file_index, result))


# ----------------------------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------------------------


def sequential_dedupe(
    paths: Sequence[str], extractor: KeyExtractor, skip_bad_lines: bool = False
) -> list[list[bytes]]:
    """The same result computed in one pass with an exact set (the definition the Spark version must match)."""
    seen: set[int] = set()
    out: list[list[bytes]] = []
    for path in paths:
        rows = []
        for _lineno, doc_id, spans in iter_document_keys(path, extractor, skip_bad_lines):
            dups = set()
            for slot, (_s, _e, key) in enumerate(spans or ()):
                if key in seen:
                    dups.add(slot)
                seen.add(key)
            rows.append(msgspec.json.encode(DedupeRow(attributes=extractor.attributes(spans, dups), id=doc_id)))
        out.append(rows)
    return out


def spark_dedupe(
    sc: Any,
    paths: Sequence[str],
    outputs: Sequence[str],
    extractor: KeyExtractor,
    num_partitions: int | None = None,
    skip_bad_lines: bool = False,
    s3: Any = None,
) -> Summary:
    """Deduplicate `paths` (in this order: it decides winners) and write one attributes file per path.

    `sc` is a SparkContext (see dolma.spark_executor.get_context). Returns a Summary like the executors';
    any failure fails the whole run before anything is written in stage 1, or leaves complete files only.
    """
    if len(paths) != len(outputs):
        raise ValueError("spark_dedupe: one output per input path")
    start = time.monotonic()
    summary = Summary(units=len(paths))
    if not paths:
        return summary
    partitions = int(num_partitions or max(sc.defaultParallelism, len(paths)))
    sorted_paths = list(paths)
    emit = EmitKeys(sorted_paths, extractor, skip_bad_lines, s3)
    write = WriteAttributes(sorted_paths, outputs, extractor, skip_bad_lines, s3)
    sc.setJobDescription(f"dolma dedupe: {len(paths)} file(s), {partitions} key partition(s)")
    try:
        keyed = sc.parallelize(range(len(paths)), len(paths)).mapPartitionsWithIndex(emit)
        repeats = keyed.repartitionAndSortWithinPartitions(partitions, owner_partition).mapPartitions(mark_repeats)
        results = repeats.partitionBy(len(paths), owner_partition).mapPartitionsWithIndex(write).collect()
    except Exception as exc:
        from dolma.spark_executor import _short_error

        reason = _short_error(exc)
        log.error("Spark dedupe failed: %s", reason)
        summary.failures = [
            UnitFailure(unit=Unit(input=p, outputs=(o,)), error=f"Spark job failed: {reason}", attempts=1)
            for p, o in zip(paths, outputs)
        ]
        summary.seconds = time.monotonic() - start
        return summary
    for packed in results:
        _idx, stats = msgspec.msgpack.decode(packed, type=tuple[int, UnitStats])
        summary.succeeded += 1
        summary.stats.add(stats)
    summary.seconds = time.monotonic() - start
    return summary
