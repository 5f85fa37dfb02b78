"""The attribute files of the `minhash` mode: one row writer (`write_id_rows`) for the dedupe marks (local and
Spark) and the decontamination marks, and the dedupe's mark pass.

Every writer writes one attribute row per good line of a documents file (a skipped bad line gets none: the mixer
reads in lockstep), atomically, and counts the documents it marked. The Spark run and the decontamination read
the documents file with the toolkit's reader; the local dedupe's mark pass reads no documents: the band-key
file recorded each document's line, id and text length when it was signed, with the file's size and version
stamp, so a file changed since is refused. A marked document's row is `attribute_row` (a cluster member's is made
by `_add_member_row`), every other row (`{"id":...,"attributes":{}}`) is made in Rust by `write_id_rows`.
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np

from dolma import _rust, atomic
from dolma import minhash as mh
from dolma.documents import AttributeRow, Document, ReadStats, read_records
from dolma.errors import DolmaError
from dolma.executors.base import CompletionRecord, Job, Progress, Unit, UnitStats

_row = msgspec.json.Encoder()


def attribute_row(doc_id: str, attributes: dict[str, Any]) -> bytes:
    """The attribute row of a document with attributes, newline included (the others are made by
    `write_id_rows`)."""
    return _row.encode(AttributeRow(id=doc_id, attributes=attributes)) + b"\n"


_ROWS_PER_CALL = 1 << 15


def marked_file_stats(read: ReadStats, bytes_out: int, marked: int, counter: str = "documents marked") -> UnitStats:
    """The numbers of a unit that wrote one attribute row per document of a file it read (`read`): every
    document in is out, `marked` of them marked (counted as `counter`)."""
    return UnitStats(
        documents_in=read.documents,
        documents_out=read.documents,
        bad_lines=read.bad_lines,
        bytes_in=read.bytes,
        bytes_out=bytes_out,
        counters={counter: marked},
    )


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
    keeper, an f32 value)), and the unit's numbers, reading the documents file (the Spark run's writer; the local
    run's mark pass reads the band-key file instead, `write_recorded_marks`: the same bytes)."""
    stats = ReadStats()
    ids: list[str] = []
    rows: dict[int, bytes] = {}
    marked = 0
    for lineno, doc, _ in read_records(path, _document.decode, skip_bad_lines=skip_bad_lines, stats=stats):
        if doc is None:
            continue
        member = members.get(lineno)
        if member is not None:
            marked += _add_member_row(rows, len(ids), doc.id, len(doc.text), member, attribute, cluster_attribute)
        ids.append(doc.id)
    if len(rows) != len(members):
        raise DolmaError(
            f"{path}: {len(members)} of its documents are in clusters but {len(rows)} of those lines hold one: it "
            "changed since it was signed; rerun with --ignore_existing"
        )
    return marked_file_stats(stats, write_id_rows(output, ids, rows), marked)


def _add_member_row(
    rows: dict[int, bytes],
    index: int,
    doc_id: str,
    length: int,
    member: tuple[int, int, float],
    attribute: str,
    cluster_attribute: str,
) -> bool:
    """Encodes into `rows` the row of the document at `index`, of `length` code points, a cluster member
    ((ordinal, cluster id, similarity)); whether it counts as marked (not its cluster's keeper)."""
    ordinal, cluster, similarity = member
    attributes: dict[str, list[list[float | int]]] = {}
    if ordinal != cluster:
        attributes[attribute] = [[0, length, round(similarity, 6)]]
    attributes[cluster_attribute] = [[0, length, cluster]]
    rows[index] = attribute_row(doc_id, attributes)
    return ordinal != cluster


def write_id_rows(output: str, ids: list[str], rows: dict[int, bytes]) -> int:
    """Writes one row per id atomically to `output`: `rows[i]` for the given ones (`attribute_row`),
    `{"id":...,"attributes":{}}` for the others (most of them, made in Rust: the bytes `attribute_row` makes for
    no attributes), a slice of ids at a time; returns the bytes written."""
    given = sorted(rows.items())
    k = 0
    with atomic.AtomicWriter(output) as out:
        for start in range(0, len(ids), _ROWS_PER_CALL):
            end = start + _ROWS_PER_CALL
            chunk: dict[int, bytes] = {}
            while k < len(given) and given[k][0] < end:
                chunk[given[k][0] - start] = given[k][1]
                k += 1
            out.write(_rust.attribute_rows(ids[start:end], chunk))
    return out.bytes_written


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
        marked += _add_member_row(rows, i, ids[i], int(lengths[i]), member, attribute, cluster_attribute)
    read = ReadStats(documents=header["documents"], bad_lines=header["bad_lines"], bytes=header["bytes_read"])
    return marked_file_stats(read, write_id_rows(output, ids, rows), marked)


class MarkJob(Job):
    """Pass 3: a band-key file and its result file -> its documents file's attributes file, then its completion
    record (the documents file is not read)."""

    def __init__(
        self,
        keys: dict[str, str],
        results: dict[str, str],
        attribute: str,
        cluster_attribute: str,
        key: str,
        unit_threads: int = 1,
    ):
        # A unit's time is in Rust (reading the band-key file, making rows), zlib and fsync, all without the GIL.
        self.unit_threads = unit_threads
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
