"""The attribute files of the `minhash` mode: one writer for the dedupe marks (local and Spark) and the
decontamination marks, and the dedupe's mark pass.

Every writer reads a documents file with the toolkit's reader, writes one attribute row per good line (a skipped
bad line gets none: the mixer reads in lockstep), atomically, and counts the documents it marked; they differ
only in how a document's attributes are decided, which the caller passes as `annotate`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import msgspec

from dolma import atomic
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
    marked = 0
    records = read_records(path, decode, skip_bad_lines=skip_bad_lines, stats=stats)
    with atomic.AtomicWriter(output) as out:
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
            attributes: dict[str, list[list[float | int]]] = {}
            member = members.get(lineno)
            if member is not None:
                length = len(doc.text)
                ordinal, cluster, similarity = member
                if ordinal != cluster:
                    attributes[attribute] = [[0, length, round(similarity, 6)]]
                attributes[cluster_attribute] = [[0, length, cluster]]
            yield doc.id, attributes, attribute in attributes
        if len(members) > seen:  # raised inside the writer: the file is discarded
            raise DolmaError(
                f"{path}: {len(members)} of its documents are in clusters but the file has {seen}: it changed since "
                "it was signed; rerun with --ignore_existing"
            )

    return write_attribute_file(path, output, _document.decode, annotate, "documents marked", skip_bad_lines)


class MarkJob(Job):
    """Pass 3: a documents file and its result file -> its attributes file, then its completion record."""

    def __init__(self, results: dict[str, str], attribute: str, cluster_attribute: str, key: str, skip: bool):
        self.results = results
        self.attribute = attribute
        self.cluster_attribute = cluster_attribute
        self.run_key = key
        self.skip_bad_lines = skip

    def run_unit(self, unit: Unit, progress: Progress) -> UnitStats:
        _, records = mh.read_results(self.results[unit.input])
        members = {int(r["line"]): (int(r["ordinal"]), int(r["cluster"]), float(r["similarity"])) for r in records}
        stats = write_marks(
            unit.input, unit.outputs[0], members, self.attribute, self.cluster_attribute, self.skip_bad_lines
        )
        assert unit.record is not None
        atomic.write_bytes(unit.record, msgspec.json.encode(CompletionRecord(completed=[self.run_key])))
        progress(stats.documents_in, stats.bytes_in)
        return stats
