"""Global deduplication on Spark: the key space is split by hash so every partition owns one slice of it.

Why this design: one Bloom filter for a whole corpus must fit on one machine and is filled in one order. On
a cluster we instead shuffle every (key hash, position) pair to the partition that owns `hash % P`; each
partition sees every occurrence of the keys it owns, so the decision "is this the first occurrence?" is
exact and local to the partition. Positions are (file index in the sorted input list, line, slot within the
document), so the winner of every key is the first occurrence in the stable order of path, then line, then
key: the same choice the local deduper's sequential pass over the sorted files makes, whatever the number
of partitions, executors or task retries.

Keys are computed by the Rust core (`dolma._rust.DedupeKeys`, rust_ext/core/src/dedupe/spark_keys.rs) with the
local deduper's parsing, JSONPath, paragraph splitting, n-grams and `skip_empty` / `min_length` /
`min_words` filters, and the attributes files are written by the same code in its exact serialization and
compression, so a Spark run's attribute files are byte-identical to `dolma dedupe` with `executor: local`
(up to the local Bloom filter's false positives, which the exact Spark run does not have).

Two stages:
1. each documents file is read once (decompression, parsing and hashing in Rust; files are grouped into at
   most 4 tasks per core, since a PySpark task has a fixed cost of tens of ms) and emits its key
   occurrences as (hash, position) records, already grouped into one byte blob per owner partition
   (`hash % P`), plus the file's "skeleton": its ids, line numbers, spans and key counts without the text
   (a few % of the file's size). `partitionBy` sends each key blob to its owner, which sorts all its records
   in Rust (`find_key_repeats`) and emits, per file, a blob with the positions of every non-first
   occurrence (millions of keys cross the shuffle as a few large byte strings, not as Python objects);
   skeletons travel through S extra partitions (S = min(P, files)) and are passed on unchanged;
2. those duplicate blobs and skeletons are partitioned by file index (partition = index % tasks), and each
   file's attributes file is written atomically from its skeleton, without reading the documents again.

Memory: a stage-1 reduce task holds its whole key slice in memory, about (total keys / P) x 80 bytes (the
24-byte records as received, a copy, and the sort array), so choose P (`spark.default.parallelism`) so that
this fits comfortably in the executor's Python worker memory (for example 2 billion paragraph keys over
1000 partitions is 2 million keys, ~160 MB per task). A stage-1 map task holds one file's raw and
decompressed content; a stage-2 task holds one file's skeleton and its duplicate positions (16 bytes each).
Outputs depend only on the inputs, so both stages can be retried or run speculatively: the same bytes are
written to the same names.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import msgspec

from dolma import atomic, io
from dolma.executors.base import Summary, Unit, UnitFailure, UnitStats
from dolma.executors.spark import _short_error, collect_with_progress

log = logging.getLogger("dolma")

# Stage-1 and stage-2 tasks per core (files are grouped when there are more).
TASKS_PER_CORE = 4


@functools.lru_cache(maxsize=4)
def _key_maker(config_json: str, skip_bad_lines: bool) -> Any:
    """One key maker per configuration and Python worker (it keeps its decompression buffer between files)."""
    from dolma._rust import DedupeKeys

    return DedupeKeys(config_json, skip_bad_lines=skip_bad_lines)


# ----------------------------------------------------------------------------------------------------------
# Stage functions (run on the executors)
# ----------------------------------------------------------------------------------------------------------


class EmitKeys:
    """Stage 1 map: one documents file -> its key records, one blob per owner partition, and its skeleton.

    The file is read as stored and decompressed, parsed and hashed in Rust, once. Records are
    `(owner partition, blob)` for key blobs and `(P + file index % S, (file index, skeleton, path, output))`
    for the skeleton, which travels through the skeleton partitions P..P+S-1 to the file's stage-2 task.
    Paths come with the data (one `(file index, path, output)` per task), not in the task's closure, so a
    task's pickled command stays small whatever the number of files.
    """

    def __init__(
        self,
        config_json: str,
        skip_bad_lines: bool,
        s3: Any,
        partitions: int,
        skeleton_partitions: int,
        progress: Any = None,
    ):
        self.partitions = partitions
        self.skeleton_partitions = skeleton_partitions
        self.config_json = config_json
        self.skip_bad_lines = skip_bad_lines
        self.s3 = s3
        self.progress = progress  # (files, documents, bytes) accumulators shown on the driver

    def __call__(self, files: Iterable[tuple[int, str, str]]) -> Iterator[tuple[int, Any]]:
        io.configure_s3(self.s3)
        maker = _key_maker(self.config_json, self.skip_bad_lines)
        for file_index, path, output in files:
            # A bad documents line raises DedupeInputError, a BadInputError (file, line, field).
            if io.is_s3(path):
                with io.open_raw_read(path) as fh:
                    raw = fh.read()
                blobs, skeleton, stats = maker.keys(path, raw, file_index, self.partitions)
            else:
                blobs, skeleton, stats = maker.keys_of_file(path, file_index, self.partitions)
            if self.progress is not None:
                for acc, value in zip(self.progress, (1, stats["documents"], stats["bytes"])):
                    acc.add(value)
            yield from blobs
            yield self.partitions + file_index % self.skeleton_partitions, (file_index, skeleton, path, output)


def owner_partition(key: int) -> int:
    """Records are keyed by their partition (stage 1) or file index (stage 2, partition = index % tasks)."""
    return key


class MarkRepeats:
    """Stage 1 reduce. Partitions below P hold one key slice each: emit (file index, blob of the positions of
    every non-earliest occurrence). The others hold skeletons, passed on as (file index, (skeleton, path,
    output)): the tuple tells them from duplicate blobs in stage 2."""

    def __init__(self, partitions: int):
        self.partitions = partitions

    def __call__(self, index: int, items: Iterable[tuple[int, Any]]) -> Iterator[tuple[int, Any]]:
        if index >= self.partitions:
            return ((record[0], record[1:]) for _partition, record in items)
        from dolma._rust import find_key_repeats

        return iter(find_key_repeats([blob for _partition, blob in items]))


class WriteAttributes:
    """Stage 2: a partition holds the skeletons (with paths) of its files (file index % partitions) and their
    duplicate positions; write each file's attributes file.

    `fail_marker` is a test hook: when set and the file does not exist yet, the first task to get there
    creates it and kills its Python worker mid-task, so Spark has to retry the task.
    """

    def __init__(self, config_json: str, skip_bad_lines: bool, s3: Any, fail_marker: str | None = None):
        self.config_json = config_json
        self.skip_bad_lines = skip_bad_lines
        self.s3 = s3
        self.fail_marker = fail_marker

    def __call__(self, items: Iterable[tuple[int, Any]]) -> Iterator[bytes]:
        io.configure_s3(self.s3)
        skeletons: dict[int, tuple[bytes, str, str]] = {}
        duplicates: dict[int, list[bytes]] = {}
        for file_index, value in items:
            if isinstance(value, tuple):
                if file_index in skeletons:
                    raise RuntimeError(f"file #{file_index}: two skeletons in its attributes task")
                skeletons[file_index] = value
            else:
                duplicates.setdefault(file_index, []).append(value)
        if set(duplicates) - set(skeletons):
            raise RuntimeError(f"files {sorted(set(duplicates) - set(skeletons))}: duplicates without a skeleton")
        maker = _key_maker(self.config_json, self.skip_bad_lines)
        if self.fail_marker and not os.path.exists(self.fail_marker):
            open(self.fail_marker, "w").close()
            os._exit(17)
        for file_index in sorted(skeletons):
            skeleton, _path, output = skeletons[file_index]
            yield msgspec.msgpack.encode((file_index, self.write(maker, skeleton, duplicates.get(file_index), output)))

    @staticmethod
    def write(maker: Any, skeleton: bytes, duplicates: list[bytes] | None, output: str) -> UnitStats:
        positions = b"".join(duplicates or ())
        if io.is_s3(output):
            with tempfile.TemporaryDirectory(prefix="dolma-dedupe-") as tmp:
                local = os.path.join(tmp, io.basename(output))
                stats = maker.write_attributes(skeleton, positions, local)
                written = os.path.getsize(local)
                atomic.copy(local, output)
        else:
            stats = maker.write_attributes(skeleton, positions, output)
            written = os.path.getsize(output)
        return UnitStats(
            documents_in=stats["documents"],
            documents_out=stats["documents"],
            bad_lines=stats["bad_lines"],
            bytes_in=stats["bytes"],
            bytes_out=written,
            counters={
                "keys": stats["keys"],
                "keys marked": stats["keys_marked"],
                "documents marked": stats["documents_marked"],
            },
        )


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
    tasks: int | None = None,
) -> Summary:
    """Deduplicate `paths` (in this order: it decides winners) and write one attributes file per path.

    `sc` is a SparkContext (see dolma.executors.spark.get_context); `config_json` is the `dedupe` section as
    the Rust deduper takes it (dolma.dedupe.plan._rust_config). Returns a Summary like the executors';
    a failure in stage 1 fails the whole run before anything is written, stage 2 leaves complete files only.
    `num_partitions` is P (key slices; default `sc.defaultParallelism`), `tasks` the number of tasks the
    files are grouped into in stages 1 and 2 (default 4 per core, at most one per file).
    """
    if len(paths) != len(outputs):
        raise ValueError("spark_dedupe: one output per input path")
    _key_maker(config_json, skip_bad_lines)  # invalid configurations fail here, on the driver
    start = time.monotonic()
    summary = Summary(units=len(paths))
    if not paths:
        return summary
    partitions = int(num_partitions or sc.defaultParallelism)
    skeleton_partitions = max(1, min(partitions, len(paths)))
    progress = (sc.accumulator(0), sc.accumulator(0), sc.accumulator(0))
    emit = EmitKeys(config_json, skip_bad_lines, s3, partitions, skeleton_partitions, progress)
    write = WriteAttributes(config_json, skip_bad_lines, s3, fail_marker)
    sc.setJobDescription(f"dolma dedupe: {len(paths)} file(s), {partitions} key partition(s)")
    files = [(i, path, output) for i, (path, output) in enumerate(zip(paths, outputs))]
    # Per-file work is grouped into at most TASKS_PER_CORE tasks per core in stages 1 and 2: a PySpark task
    # costs tens of ms whatever its size, and bigger groups would balance the cores less well.
    tasks = max(1, min(len(files), tasks or TASKS_PER_CORE * int(sc.defaultParallelism)))
    keyed = sc.parallelize(files, tasks).mapPartitions(emit)
    repeats = keyed.partitionBy(partitions + skeleton_partitions, owner_partition).mapPartitionsWithIndex(
        MarkRepeats(partitions)
    )
    rdd = repeats.partitionBy(tasks, owner_partition).mapPartitions(write)
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
        idx, stats = msgspec.msgpack.decode(packed, type=tuple[int, UnitStats])
        summary.record(Unit(input=paths[idx], outputs=(outputs[idx],)), stats)
    summary.seconds = time.monotonic() - start
    return summary
