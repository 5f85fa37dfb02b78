"""Global deduplication on Spark: the key space is split by hash so every partition owns one slice of it.

Why this design: one Bloom filter for a whole corpus must fit on one machine and is filled in one order. On
a cluster we instead shuffle every (key hash, position) pair to the partition that owns `hash % P`; each
partition sees every occurrence of the keys it owns, so the decision "is this the first occurrence?" is
exact and local to the partition. Positions are (file index in the sorted input list, line, slot within the
document), so the winner of every key is the first occurrence in the stable order of path, then line, then
key: the same choice the local deduper's sequential pass over the sorted files makes, whatever the number
of partitions, executors or task retries.

Keys are computed by the Rust core (`dolma._rust.DedupeKeys`, rust_ext/core/src/dedupe_keys.rs) with the
local deduper's parsing, JSONPath, paragraph splitting, n-grams and `skip_empty` / `min_length` /
`min_words` filters, and the attributes files are written by the same code in its exact serialization and
compression, so a Spark run's attribute files are byte-identical to `dolma dedupe` with `executor: local`
(up to the local Bloom filter's false positives, which the exact Spark run does not have).

Two stages:
1. one task per documents file emits its key occurrences as (hash, position) records, already grouped into
   one byte blob per owner partition (`hash % P`); `partitionBy` sends each blob to its owner, which sorts
   all its records in Rust (`find_key_repeats`) and emits, per file, a blob with the positions of every
   non-first occurrence (millions of keys cross the shuffle as a few large byte strings, not as Python
   objects);
2. those duplicate blobs are partitioned by file index (identity partitioner: partition i = file i), and
   one task per file rereads it and writes its attributes file atomically.

Memory: a stage-1 reduce task holds its whole key slice in memory, about (total keys / P) x 80 bytes (the
24-byte records as received, a copy, and the sort array), so choose P (`spark.default.parallelism`) so that
this fits comfortably in the executor's Python worker memory (for example 2 billion paragraph keys over
1000 partitions is 2 million keys, ~160 MB per task). Stage 2 holds one file's content and its duplicate
positions (16 bytes each). Outputs depend only on the inputs, so both stages can be retried or run
speculatively: the same bytes are written to the same names.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import msgspec

from dolma import io
from dolma.executor import Summary, Unit, UnitFailure, UnitStats
from dolma.spark_executor import _short_error, collect_with_progress

log = logging.getLogger("dolma")


def _key_maker(config_json: str, skip_bad_lines: bool) -> Any:
    from dolma._rust import DedupeKeys

    return DedupeKeys(config_json, skip_bad_lines=skip_bad_lines)


def _input_error(exc: BaseException) -> BaseException:
    """A bad documents line as BadInputError (file, line, field), so the driver reports it plainly."""
    from dolma._rust import DedupeInputError
    from dolma.errors import BadInputError

    if isinstance(exc, DedupeInputError):
        _message, path, line, field, reason = exc.args
        return BadInputError(path, line, reason, None if field == "(line)" else field)
    return exc


# ----------------------------------------------------------------------------------------------------------
# Stage functions (run on the executors)
# ----------------------------------------------------------------------------------------------------------


class EmitKeys:
    """Stage 1 map: one documents file -> (owner partition, blob of (hash, position) records) per partition."""

    def __init__(
        self,
        paths: Sequence[str],
        config_json: str,
        skip_bad_lines: bool,
        s3: Any,
        partitions: int,
        progress: Any = None,
    ):
        self.partitions = partitions
        self.paths = list(paths)
        self.config_json = config_json
        self.skip_bad_lines = skip_bad_lines
        self.s3 = s3
        self.progress = progress  # (files, documents, bytes) accumulators shown on the driver

    def __call__(self, file_index: int, _items: Iterable[Any]) -> Iterator[tuple[int, bytes]]:
        io.configure_s3(self.s3)
        path = self.paths[file_index]
        try:
            maker = _key_maker(self.config_json, self.skip_bad_lines)
            data = io.read_bytes(path)
            blobs, stats = maker.keys(path, data, file_index, self.partitions)
        except Exception as exc:
            raise _input_error(exc) from None
        if self.progress is not None:
            for acc, value in zip(self.progress, (1, stats["documents"], len(data))):
                acc.add(value)
        return iter(blobs)


def owner_partition(key: int) -> int:
    """Blobs are keyed by their owner partition (stage 1) or file index (stage 2): the identity partitioner."""
    return key


def mark_repeats(items: Iterable[tuple[int, bytes]]) -> Iterator[tuple[int, bytes]]:
    """Stage 1 reduce over one key slice: (file index, blob of positions) of every non-earliest occurrence."""
    from dolma._rust import find_key_repeats

    return iter(find_key_repeats([blob for _partition, blob in items]))


class WriteAttributes:
    """Stage 2: partition i holds the duplicate positions of file i; reread the file and write its attributes.

    `fail_marker` is a test hook: when set and the file does not exist yet, the first task to get there
    creates it and kills its Python worker mid-task, so Spark has to retry the task.
    """

    def __init__(
        self,
        paths: Sequence[str],
        outputs: Sequence[str],
        config_json: str,
        skip_bad_lines: bool,
        s3: Any,
        fail_marker: str | None = None,
    ):
        self.paths = list(paths)
        self.outputs = list(outputs)
        self.config_json = config_json
        self.skip_bad_lines = skip_bad_lines
        self.s3 = s3
        self.fail_marker = fail_marker

    def __call__(self, file_index: int, items: Iterable[tuple[int, bytes]]) -> Iterator[bytes]:
        io.configure_s3(self.s3)
        duplicates = b"".join(blob for _file, blob in items)
        path, output = self.paths[file_index], self.outputs[file_index]
        data = io.read_bytes(path)
        maker = _key_maker(self.config_json, self.skip_bad_lines)
        if self.fail_marker and not os.path.exists(self.fail_marker):
            open(self.fail_marker, "w").close()
            os._exit(17)
        if io.is_s3(output):
            with tempfile.TemporaryDirectory(prefix="dolma-dedupe-") as tmp:
                local = os.path.join(tmp, io.basename(output))
                stats = maker.write_attributes(path, data, duplicates, local)
                written = os.path.getsize(local)
                io.copy(local, output)
        else:
            stats = maker.write_attributes(path, data, duplicates, output)
            written = os.path.getsize(output)
        result = UnitStats(
            documents_in=stats["documents"],
            documents_out=stats["documents"],
            bad_lines=stats["bad_lines"],
            bytes_in=len(data),
            bytes_out=written,
            counters={
                "keys": stats["keys"],
                "keys marked": stats["keys_marked"],
                "documents marked": stats["documents_marked"],
            },
        )
        yield msgspec.msgpack.encode((file_index, result))


# ----------------------------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------------------------


def spark_dedupe(
    sc: Any,
    paths: Sequence[str],
    outputs: Sequence[str],
    config_json: str,
    num_partitions: int | None = None,
    skip_bad_lines: bool = False,
    s3: Any = None,
    fail_marker: str | None = None,
    quiet: bool = True,
) -> Summary:
    """Deduplicate `paths` (in this order: it decides winners) and write one attributes file per path.

    `sc` is a SparkContext (see dolma.spark_executor.get_context); `config_json` is the `dedupe` section as
    the Rust deduper takes it (dolma.commands.dedupe.rust_config). Returns a Summary like the executors';
    a failure in stage 1 fails the whole run before anything is written, stage 2 leaves complete files only.
    """
    if len(paths) != len(outputs):
        raise ValueError("spark_dedupe: one output per input path")
    _key_maker(config_json, skip_bad_lines)  # invalid configurations fail here, on the driver
    start = time.monotonic()
    summary = Summary(units=len(paths))
    if not paths:
        return summary
    partitions = int(num_partitions or sc.defaultParallelism)
    progress = (sc.accumulator(0), sc.accumulator(0), sc.accumulator(0))
    emit = EmitKeys(paths, config_json, skip_bad_lines, s3, partitions, progress)
    write = WriteAttributes(paths, outputs, config_json, skip_bad_lines, s3, fail_marker)
    sc.setJobDescription(f"dolma dedupe: {len(paths)} file(s), {partitions} key partition(s)")
    keyed = sc.parallelize(range(len(paths)), len(paths)).mapPartitionsWithIndex(emit)
    repeats = keyed.partitionBy(partitions, owner_partition).mapPartitions(mark_repeats)
    rdd = repeats.partitionBy(len(paths), owner_partition).mapPartitionsWithIndex(write)
    results, error = collect_with_progress(sc, rdd, progress, len(paths), "dedupe: keying files", quiet)
    if error is not None:
        reason = _short_error(error)
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
