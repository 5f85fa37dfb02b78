"""The one attribute-file writer of the `minhash` mode: dedupe marks (local and Spark) and decontamination marks.

Both read a documents file with the toolkit's reader, write one attribute row per good line (a skipped bad line
gets none: the mixer reads in lockstep), atomically, and count the documents they marked; they differ only in
how a document's attributes are decided, which the caller passes as `annotate`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import msgspec

from dolma import io
from dolma.documents import AttributeRow, ReadStats, read_records
from dolma.executors.base import UnitStats

T = TypeVar("T")

# (document id, its attributes, whether it counts as marked)
Row = tuple[str, dict[str, Any], bool]

_row = msgspec.json.Encoder()


def write_attribute_file(
    path: str,
    output: str,
    decode: Callable[[bytes], T],
    annotate: Callable[[Iterable[tuple[int, T]]], Iterator[Row]],
    counter: str,
    skip_bad_lines: bool,
) -> UnitStats:
    """The attributes file of `path`: `annotate` turns its (line number, decoded record) pairs, in order, into one
    row each. An exception from `annotate` (even after the last row) discards the file."""
    stats = ReadStats()
    marked = 0
    records = read_records(path, decode, skip_bad_lines=skip_bad_lines, stats=stats)
    with io.AtomicWriter(output) as out:
        for doc_id, attributes, mark in annotate((n, rec) for n, rec, _ in records if rec is not None):
            marked += mark
            out.write(_row.encode(AttributeRow(id=doc_id, attributes=attributes)) + b"\n")
    return UnitStats(
        documents_in=stats.documents,
        documents_out=stats.documents,
        bad_lines=stats.bad_lines,
        bytes_in=stats.bytes,
        bytes_out=out.bytes_written,
        counters={counter: marked},
    )
