"""The attribute files of the `minhash` mode: one writer for the dedupe marks (local and Spark) and the
decontamination marks, and the dedupe's mark pass.

Every writer writes one attribute row per good line of a documents file (a skipped bad line gets none: the mixer
reads in lockstep), atomically, and counts the documents it marked. The Spark run and the decontamination read
the documents file with the toolkit's reader; the local dedupe's mark pass reads no documents: the band-key
file recorded each document's line, id and text length when it was signed, with the file's size and version
stamp, so a file changed since is refused. Every dedupe row is made by `_mark_row`, so both write the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import msgspec
import numpy as np

from dolma import _rust, atomic
from dolma import minhash as mh
from dolma.documents import AttributeRow, Document, ReadStats, read_records
from dolma.errors import DolmaError
from dolma.executors.base import CompletionRecord, Job, Progress, Unit, UnitStats

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
    records = read_records(path, decode, skip_bad_lines=skip_bad_lines, stats=stats)
    written, marked = _write_rows(output, annotate((n, rec) for n, rec, _ in records if rec is not None))
    return UnitStats(
        documents_in=stats.documents,
        documents_out=stats.documents,
        bad_lines=stats.bad_lines,
        bytes_in=stats.bytes,
        bytes_out=written,
        counters={counter: marked},
    )


def _write_rows(output: str, rows: Iterable[Row]) -> tuple[int, int]:
    """Writes `rows` atomically to `output`: (bytes written, rows marked)."""
    marked = 0
    buffer = bytearray()
    with atomic.AtomicWriter(output) as out:
        for doc_id, attributes, mark in rows:
            marked += mark
            _row.encode_into(AttributeRow(id=doc_id, attributes=attributes), buffer, -1)
            buffer += b"\n"
            if len(buffer) >= _FLUSH_BYTES:  # one compressor call per MiB, not per row (the same bytes out)
                out.write(bytes(buffer))
                buffer.clear()
        out.write(bytes(buffer))
    return out.bytes_written, marked


_FLUSH_BYTES = 1 << 20
_ROWS_PER_CALL = 1 << 15


def _mark_row(
    doc_id: str, length: int, member: tuple[int, int, float] | None, attribute: str, cluster_attribute: str
) -> Row:
    """The row of a document of `length` code points (member: its (ordinal, cluster id, similarity) if in one)."""
    attributes: dict[str, list[list[float | int]]] = {}
    if member is not None:
        ordinal, cluster, similarity = member
        if ordinal != cluster:
            attributes[attribute] = [[0, length, round(similarity, 6)]]
        attributes[cluster_attribute] = [[0, length, cluster]]
    return doc_id, attributes, attribute in attributes


_document = msgspec.json.Decoder(Document)


def write_marks(
    path: str,
    output: str,
    members: dict[int, tuple[int, int, float]],
    attribute: str,
    cluster_attribute: str,
    skip_bad_lines: bool,
) -> UnitStats:
    """The attributes file of `path` from its cluster members (line -> (ordinal, cluster id, similarity to the
    keeper, an f32 value)), and the unit's numbers. Shared by the local and Spark runs, so both write the same
    bytes and count alike."""

    def annotate(docs: Iterable[tuple[int, Document]]) -> Iterator[Row]:
        seen = 0
        for lineno, doc in docs:
            seen += 1
            member = members.get(lineno)
            yield _mark_row(doc.id, len(doc.text) if member is not None else 0, member, attribute, cluster_attribute)
        if len(members) > seen:  # raised inside the writer: the file is discarded
            raise DolmaError(
                f"{path}: {len(members)} of its documents are in clusters but the file has {seen}: it changed since "
                "it was signed; rerun with --ignore_existing"
            )

    return write_attribute_file(path, output, _document.decode, annotate, "documents marked", skip_bad_lines)


def write_recorded_marks(
    path: str,
    keys_file: str,
    output: str,
    members: dict[int, tuple[int, int, float]],
    attribute: str,
    cluster_attribute: str,
) -> UnitStats:
    """The attributes file of `path` from what its band-key file recorded (`path` itself is not read: only its
    size and version stamp are checked against the recorded ones), the same bytes `write_marks` writes."""
    header, lines, lengths, ids = mh.unit_documents(keys_file)
    if header["source"] != path:
        raise DolmaError(f"{keys_file}: made for {header['source']}, not {path}; rerun with --ignore_existing")
    if mh.source_stamp(path) != (header["source_size"], header["source_stamp"]):
        raise DolmaError(f"{path}: changed since it was signed; rerun with --ignore_existing")
    # Lines are strictly increasing: each member's index in the file by binary search.
    member_lines = np.fromiter(members.keys(), dtype=np.uint64, count=len(members))
    index = np.searchsorted(lines, member_lines)
    if len(members) and (
        index.max() >= len(lines) or not np.array_equal(lines[np.minimum(index, len(lines) - 1)], member_lines)
    ):
        raise DolmaError(
            f"{keys_file}: the clusters name lines of {path} its band-key file does not record; rerun with "
            "--ignore_existing"
        )
    rows: dict[int, bytes] = {}
    marked = 0
    for i, member in zip(index.tolist(), members.values()):
        doc_id, attributes, mark = _mark_row(ids[i], int(lengths[i]), member, attribute, cluster_attribute)
        rows[i] = _row.encode(AttributeRow(id=doc_id, attributes=attributes)) + b"\n"
        marked += mark
    # The rows of the other documents (most of them: `{"id":...,"attributes":{}}`) are made in Rust, the same bytes
    # `_write_rows` makes, a slice of documents at a time.
    with atomic.AtomicWriter(output) as out:
        for start in range(0, len(ids), _ROWS_PER_CALL):
            end = start + _ROWS_PER_CALL
            given = {i - start: row for i, row in rows.items() if start <= i < end}
            out.write(_rust.attribute_rows(ids[start:end], given))
    written = out.bytes_written
    return UnitStats(
        documents_in=header["documents"],
        documents_out=header["documents"],
        bad_lines=header["bad_lines"],
        bytes_in=header["bytes_read"],
        bytes_out=written,
        counters={"documents marked": marked},
    )


class MarkJob(Job):
    """Pass 3: a band-key file and its result file -> its documents file's attributes file, then its completion
    record (the documents file is not read)."""

    def __init__(
        self, keys: dict[str, str], results: dict[str, str], attribute: str, cluster_attribute: str, key: str
    ):
        self.keys = keys
        self.results = results
        self.attribute = attribute
        self.cluster_attribute = cluster_attribute
        self.run_key = key

    def run_unit(self, unit: Unit, progress: Progress) -> UnitStats:
        _, records = mh.read_results(self.results[unit.input])
        columns = (records[name].tolist() for name in ("line", "ordinal", "cluster", "similarity"))
        members = {line: (ordinal, cluster, similarity) for line, ordinal, cluster, similarity in zip(*columns)}
        stats = write_recorded_marks(
            unit.input, self.keys[unit.input], unit.outputs[0], members, self.attribute, self.cluster_attribute
        )
        assert unit.record is not None
        atomic.write_bytes(unit.record, msgspec.json.encode(CompletionRecord(completed=[self.run_key])))
        progress(stats.documents_in, stats.bytes_in)
        return stats
