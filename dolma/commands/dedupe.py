"""`dolma dedupe`: mark repeated documents, paragraphs or paragraph n-grams with a Bloom filter.

Python only plans and orchestrates: the file pipeline (decompress, parse, split, hash, test-and-insert,
write attributes) runs in Rust (`dolma._rust.Deduper`) with the GIL released and threads inside. Keys are
looked up in a stable order (sorted input files, then lines), so the first occurrence kept is the same
whatever the thread count. Non-read-only runs checkpoint the filter together with the number of completed
files, so a killed run resumes where it stopped and gives byte-identical attributes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from typing import Annotated

import msgspec
from msgspec import Meta

from dolma import io
from dolma._rust import (
    BloomFilter,
    BloomFilterError,
    CheckpointError,
    DedupeConfigError,
    DedupeInputError,
    Deduper,
    load_checkpoint,
    save_checkpoint,
)
from dolma.commands.common import RunOptions
from dolma.config import Base
from dolma.documents import attributes_path, check_output_paths
from dolma.errors import BadInputError, ConfigError, DolmaError
from dolma.executor import ProgressDisplay, os_error_text

log = logging.getLogger("dolma")

CHECKPOINT_SUFFIX = ".checkpoint"
CHECKPOINT_STATE_VERSION = 1
# A batch handed to Rust at once, bounded in files and compressed bytes: checkpoints are taken between batches
# (Rust streams each file in chunks, so memory does not depend on the batch).
BATCH_MAX_BYTES = 256 * 1024 * 1024
# Hidden knob (tests, memory experiments): decompressed bytes per chunk the Rust pipeline reads from a file.
CHUNK_BYTES_ENV = "DOLMA_DEDUPE_CHUNK_BYTES"


def _chunk_bytes() -> int | None:
    value = os.environ.get(CHUNK_BYTES_ENV, "").strip()
    if not value:
        return None
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n <= 0:
        raise ConfigError(f"{CHUNK_BYTES_ENV}={value!r}: expected a positive number of bytes")
    return n


class DocumentsDedupe(Base):
    attribute_name: Annotated[str, Meta(description="Attribute key written for duplicate documents.")]
    key: Annotated[str, Meta(description="JSONPath of the value to compare, e.g. '$.metadata.url' or '$.text'.")]


class NgramDedupe(Base):
    ngram_length: Annotated[int, Meta(description="Words (Unicode word boundaries) per n-gram.")] = 5
    stride: Annotated[
        int, Meta(description="Look up the first n-gram and then every stride-th one (1: all n-grams).")
    ] = 1
    overlap_threshold: Annotated[
        float,
        Meta(description="Mark a paragraph when at least this fraction of its n-grams was seen before."),
    ] = 1.0
    skip_short_paragraphs: Annotated[
        bool,
        Meta(description="Skip paragraphs with fewer than ngram_length words (otherwise they are compared whole)."),
    ] = False


class ParagraphsDedupe(Base):
    attribute_name: Annotated[str, Meta(description="Attribute key written for duplicate paragraphs.")]
    paragraph_separator: Annotated[str, Meta(description="String that separates paragraphs.")] = "\n"
    by_ngram: Annotated[
        NgramDedupe | None,
        Meta(description="Compare paragraphs by word n-gram overlap instead of exactly."),
    ] = None


class DedupeSection(Base):
    name: Annotated[str, Meta(description="Attribute set: output goes to <root>/attributes/<name>/...")]
    documents: Annotated[DocumentsDedupe | None, Meta(description="Deduplicate whole documents by a key.")] = None
    paragraphs: Annotated[ParagraphsDedupe | None, Meta(description="Deduplicate paragraphs.")] = None
    skip_empty: Annotated[
        bool, Meta(description="Do not look up empty (whitespace-only) documents keys / paragraphs.")
    ] = False
    min_length: Annotated[
        int, Meta(description="Do not look up keys / paragraphs shorter than this many characters.")
    ] = 0
    min_words: Annotated[
        int, Meta(description="Do not look up keys / paragraphs with fewer words (Unicode word boundaries).")
    ] = 0
    num_partitions: Annotated[
        int | None,
        Meta(description="Split the work into this many partitions (by key hash, or by file with file_partition)."),
    ] = None
    partition_index: Annotated[int | None, Meta(description="The partition this run handles, 0-based.")] = None
    file_partition: Annotated[bool, Meta(description="Partition by input file instead of by key (span).")] = False
    document_dir: Annotated[str, Meta(description="Name of the documents directory level.")] = "documents"


class BloomFilterConfig(Base):
    file: Annotated[str, Meta(description="Filter file (local or s3://); loaded if it exists.")]
    read_only: Annotated[
        bool, Meta(description="Only look keys up; the filter file must exist and is never rewritten.")
    ] = False
    size_in_bytes: Annotated[
        int | None, Meta(description="Filter size; 0/unset: derived from estimated_doc_count and the rate.")
    ] = None
    estimated_doc_count: Annotated[
        int | None, Meta(description="Expected number of keys (documents, paragraphs or n-grams).")
    ] = None
    desired_false_positive_rate: Annotated[
        float | None, Meta(description="Target false-positive rate at estimated_doc_count keys.")
    ] = None
    seed: Annotated[int, Meta(description="Hash seed of a new filter (recorded in the file).")] = 0


class CompressionConfig(Base):
    input: Annotated[str | None, Meta(description="Reference-compatible; compression follows the extension.")] = None
    output: Annotated[str | None, Meta(description="Reference-compatible; compression follows the extension.")] = None


class DedupeConfig(RunOptions, kw_only=True):
    documents: Annotated[
        list[str], Meta(description="Globs of documents files (local paths or s3:// URLs; ** recurses).")
    ]
    dedupe: Annotated[DedupeSection, Meta(description="What to deduplicate and how.")]
    bloom_filter: Annotated[BloomFilterConfig, Meta(description="The Bloom filter file and its size.")]
    compression: Annotated[CompressionConfig, Meta(description="Reference-compatible.")] = msgspec.field(
        default_factory=CompressionConfig
    )
    is_s3_volume: Annotated[bool, Meta(description="Reference-compatible; not needed here.")] = False
    checkpoint_interval: Annotated[
        float,
        Meta(
            description="Seconds between filter checkpoints (0: after every batch of files). A killed run "
            "resumes from the last checkpoint."
        ),
    ] = 300.0


CONFIG = DedupeConfig


# ----------------------------------------------------------------------------------------------------------
# Planning
# ----------------------------------------------------------------------------------------------------------


class Plan(msgspec.Struct, frozen=True):
    inputs: list[str]
    outputs: list[str]
    attribute_set: str
    fingerprint: str


def _rust_config(section: DedupeSection) -> str:
    """The JSON that crosses into Rust (decoded there with deny_unknown_fields)."""
    data = msgspec.to_builtins(section)
    data["num_partitions"] = section.num_partitions or 1
    data["partition_index"] = section.partition_index or 0
    return json.dumps(data, sort_keys=True)


def plan(config: DedupeConfig) -> Plan:
    section = config.dedupe
    if not config.documents:
        raise ConfigError("dedupe: no documents given (set 'documents')")
    if section.documents is None and section.paragraphs is None:
        raise ConfigError("dedupe: set one of 'dedupe.documents' or 'dedupe.paragraphs'")
    if section.documents is not None and section.paragraphs is not None:
        raise ConfigError("dedupe: set only one of 'dedupe.documents' and 'dedupe.paragraphs'")
    partitions = section.num_partitions or 1
    index = section.partition_index or 0
    if partitions < 1 or not 0 <= index < partitions:
        raise ConfigError(f"dedupe: partition_index must be in [0, {partitions}), got {index}")
    if section.min_length < 0 or section.min_words < 0:
        raise ConfigError("dedupe: min_length and min_words must not be negative")
    if config.processes < 1:
        raise ConfigError(f"dedupe: processes must be at least 1, got {config.processes}")
    # Validates the mode, the JSONPath key and the n-gram options before any file is touched.
    try:
        Deduper(_rust_config(section))
    except DedupeConfigError as exc:
        raise ConfigError(f"dedupe: {exc}") from None

    inputs: list[str] = []
    for pattern in config.documents:
        files = io.glob(io.normalize(pattern))
        if not files:
            raise ConfigError(f"dedupe: no files match documents pattern '{pattern}'")
        inputs.extend(files)
    inputs = sorted(set(inputs))
    if partitions > 1 and section.file_partition:
        inputs = [path for i, path in enumerate(inputs) if i % partitions == index]
    attribute_set = section.name if partitions == 1 else f"{section.name}_{index}"
    outputs = [attributes_path(path, attribute_set, section.document_dir) for path in inputs]
    check_output_paths(inputs, outputs, section.document_dir)
    filter_path = io.normalize(config.bloom_filter.file)
    if filter_path in inputs or filter_path in outputs:
        raise ConfigError(f"dedupe: bloom_filter.file {filter_path} is also an input or output file")
    digest = hashlib.sha256()
    digest.update(_rust_config(section).encode())
    for path in inputs:
        digest.update(b"\0" + path.encode())
    return Plan(inputs=inputs, outputs=outputs, attribute_set=attribute_set, fingerprint=digest.hexdigest())


# ----------------------------------------------------------------------------------------------------------
# The filter
# ----------------------------------------------------------------------------------------------------------


def filter_params(cfg: BloomFilterConfig) -> tuple[int, int]:
    """(size_in_bytes, num_hashes) of a new filter, from the reference's three sizing fields."""
    size = cfg.size_in_bytes or 0
    count = cfg.estimated_doc_count or 0
    rate = cfg.desired_false_positive_rate
    if size < 0 or count < 0:
        raise ConfigError("bloom_filter: size_in_bytes and estimated_doc_count must not be negative")
    if rate is not None and not 0.0 < rate < 1.0:
        raise ConfigError(f"bloom_filter.desired_false_positive_rate must be in (0, 1), got {rate}")
    size = -(-size // 64) * 64  # whole 64-byte blocks, as the filter allocates them
    try:
        if size > 0 and count > 0:
            return size, _optimal_hashes(size, count)
        if size > 0 and rate is not None:
            return size, max(1, min(32, round(-math.log2(rate))))
        if count > 0 and rate is not None:
            return BloomFilter.optimal_params(count, rate)
    except BloomFilterError as exc:
        raise ConfigError(f"bloom_filter: {exc}") from None
    raise ConfigError(
        "bloom_filter: give size_in_bytes and one of estimated_doc_count / desired_false_positive_rate, or "
        "estimated_doc_count and desired_false_positive_rate"
    )


def _optimal_hashes(size: int, count: int) -> int:
    return BloomFilter.optimal_num_hashes(size, count)


def _expected_fp_rate(size: int, hashes: int, count: int) -> float:
    """The blocked filter's expected rate (all bits of a key in one 64-byte block; see dolma/_rust)."""
    return BloomFilter.expected_false_positive_rate(size, hashes, count)


class _Staging:
    """Local copies of S3 files: the Rust pipeline reads and writes local paths only."""

    def __init__(self) -> None:
        self.dir: str | None = None

    def path(self, name: str) -> str:
        if self.dir is None:
            self.dir = tempfile.mkdtemp(prefix="dolma-dedupe-")
        return os.path.join(self.dir, name)

    def close(self) -> None:
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)


def _checkpoint_path(filter_path: str) -> str:
    return filter_path + CHECKPOINT_SUFFIX


def _load_filter(path: str, staging: _Staging) -> BloomFilter:
    local = path
    if io.is_s3(path):
        local = staging.path("filter.bin")
        io.copy(path, local)
    try:
        return BloomFilter.load(local)
    except BloomFilterError as exc:
        raise DolmaError(f"bloom_filter.file {path}: {exc}") from None


def _save_filter(bf: BloomFilter, path: str, staging: _Staging) -> None:
    if io.is_s3(path):
        local = staging.path("filter-out.bin")
        bf.save(local)
        io.copy(local, path)
    else:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        bf.save(path)


def _read_checkpoint(path: str, plan_: Plan, staging: _Staging) -> tuple[BloomFilter, int] | None:
    if not io.exists(path):
        return None
    local = path
    if io.is_s3(path):
        local = staging.path("checkpoint.bin")
        io.copy(path, local)
    try:
        bf, state_text = load_checkpoint(local)
        state = json.loads(state_text)
    except (CheckpointError, ValueError) as exc:
        raise DolmaError(f"{path}: cannot resume from this checkpoint ({exc}); delete it to start over") from None
    if state.get("version") != CHECKPOINT_STATE_VERSION or state.get("fingerprint") != plan_.fingerprint:
        raise DolmaError(
            f"{path}: the checkpoint belongs to a different configuration or input list; delete it (or pass "
            "--ignore_existing) to start over"
        )
    completed = int(state.get("completed", 0))
    if not 0 <= completed <= len(plan_.inputs):
        raise DolmaError(f"{path}: corrupt checkpoint (completed={completed})")
    return bf, completed


def _write_checkpoint(bf: BloomFilter, path: str, plan_: Plan, completed: int, staging: _Staging) -> None:
    state = json.dumps({"version": CHECKPOINT_STATE_VERSION, "fingerprint": plan_.fingerprint, "completed": completed})
    try:
        if io.is_s3(path):
            local = staging.path("checkpoint-out.bin")
            save_checkpoint(local, bf, state)
            io.copy(local, path)
        else:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            save_checkpoint(path, bf, state)
    except (OSError, CheckpointError) as exc:
        reason = os_error_text(exc) if isinstance(exc, OSError) else str(exc)
        raise DolmaError(
            f"cannot write the dedupe checkpoint {path} ({reason}); free space or make the location writable and "
            "rerun: the run resumes from the last checkpoint written"
        ) from None


# ----------------------------------------------------------------------------------------------------------
# Running
# ----------------------------------------------------------------------------------------------------------


def _batches(inputs: list[str], start: int, max_files: int) -> list[tuple[int, int]]:
    """Consecutive [begin, end) ranges of files bounded in count and in compressed bytes."""
    out = []
    begin = start
    while begin < len(inputs):
        end = begin
        total = 0
        while end < len(inputs) and end - begin < max_files:
            size = io.size(inputs[end]) if not io.is_s3(inputs[end]) else 0
            if end > begin and total + size > BATCH_MAX_BYTES:
                break
            total += size
            end += 1
        out.append((begin, end))
        begin = end
    return out


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:,.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n} B"


def _translate(exc: BaseException) -> BaseException:
    if isinstance(exc, DedupeInputError):
        _message, path, line, field, reason = exc.args
        return BadInputError(path, line, reason, None if field == "(line)" else field)
    if isinstance(exc, CheckpointError):
        return DolmaError(str(exc))
    if isinstance(exc, OSError) and not isinstance(exc, (FileNotFoundError, PermissionError)):
        return DolmaError(str(exc))
    return exc


def run(config: DedupeConfig) -> int:
    io.configure_s3(config.s3)
    if config.executor == "spark":
        _check_spark(config)
    plan_ = plan(config)
    if config.executor == "spark":
        return _run_spark(config, plan_)
    cfg = config.bloom_filter
    filter_path = io.normalize(cfg.file)
    checkpoint = _checkpoint_path(filter_path)
    threads = 1 if config.debug else config.processes
    staging = _Staging()
    try:
        return _run(config, plan_, filter_path, checkpoint, threads, staging)
    finally:
        staging.close()


def _run(config: DedupeConfig, plan_: Plan, filter_path: str, checkpoint: str, threads: int, staging: _Staging) -> int:
    cfg = config.bloom_filter
    read_only = cfg.read_only
    existing = io.exists(filter_path)
    if read_only and not existing:
        raise ConfigError(f"bloom_filter.read_only is set but the filter file {filter_path} does not exist")

    if config.dryrun:
        if existing:
            size = io.size(filter_path) if not io.is_s3(filter_path) else 0
            print(f"bloom filter: existing file {filter_path} ({_human(size)} on disk, loaded into memory)")
        else:
            size, hashes = filter_params(cfg)
            count = cfg.estimated_doc_count or 0
            expected = f", expected false-positive rate {_expected_fp_rate(size, hashes, count):.3g}" if count else ""
            print(f"bloom filter: new, {size:,} bytes ({_human(size)} of memory), {hashes} hashes{expected}")
        for src, dst in zip(plan_.inputs, plan_.outputs):
            print(f"{src} -> {dst}")
        print(f"{len(plan_.inputs)} file(s), attribute set '{plan_.attribute_set}'")
        return 0

    io.remove_dead_temporaries([*(io.dirname(path) for path in plan_.outputs), io.dirname(filter_path)])
    deduper = Deduper(_rust_config(config.dedupe), skip_bad_lines=config.skip_bad_lines, chunk_bytes=_chunk_bytes())
    start = 0
    resumed = None if (read_only or config.ignore_existing) else _read_checkpoint(checkpoint, plan_, staging)
    if resumed is not None:
        bf, start = resumed
        log.info("resuming from checkpoint %s: %d of %d file(s) already done", checkpoint, start, len(plan_.inputs))
    elif existing:
        bf = _load_filter(filter_path, staging)
    else:
        size, hashes = filter_params(cfg)
        try:
            bf = BloomFilter(size, hashes, seed=cfg.seed)
        except (BloomFilterError, MemoryError) as exc:
            raise ConfigError(f"bloom_filter: cannot allocate {size:,} bytes: {exc}") from None
    log.info(
        "bloom filter %s: %s, %d hashes, %d keys inserted so far%s",
        filter_path,
        _human(bf.size_in_bytes),
        bf.num_hashes,
        bf.inserted,
        " (read-only)" if read_only else "",
    )

    todo = list(range(start, len(plan_.inputs)))
    if read_only and not config.ignore_existing:
        # A read-only run changes no state, so each output stands alone: resume by skipping finished files.
        todo = [i for i in todo if not io.exists(plan_.outputs[i])]
    display = ProgressDisplay(len(plan_.inputs), f"dedupe {plan_.attribute_set}", config.quiet)
    display.update(units=len(plan_.inputs) - len(todo))
    totals: dict[str, int] = {}
    last_checkpoint = time.monotonic()
    checkpointed = start
    # The first `completed` files have their keys in the filter and their outputs written; `clean`: the filter
    # holds exactly their keys (true between batches).
    completed = start
    clean = True
    try:
        for begin, end in _batches_of(todo, plan_.inputs, max(4, 4 * threads)):
            indices = todo[begin:end]
            inputs, outputs, uploads = _stage(plan_, indices, staging)
            clean = False
            try:
                stats = deduper.run(bf, inputs, outputs, read_only=read_only, threads=threads)
            except BaseException as exc:
                # Ctrl-C / SIGTERM (KeyboardInterrupt: the run stopped between chunks) or an error.
                done = indices[0] + int(getattr(exc, "completed_stats", {}).get("files", 0))
                if getattr(exc, "partial_file", False):
                    # The filter holds the first chunks of the failing file: it is not the state after `done`
                    # files, so keep the last checkpoint (a rerun redoes the files after it).
                    log.warning(
                        "the filter holds part of an unfinished file's keys; not checkpointed: a rerun resumes "
                        "after %d file(s)",
                        checkpointed,
                    )
                elif not read_only and done > checkpointed:
                    # Keep what the files before the failing one inserted: a rerun resumes after them.
                    _write_checkpoint(bf, checkpoint, plan_, done, staging)
                    checkpointed = done
                if isinstance(exc, KeyboardInterrupt):
                    raise
                raise _translate(exc) from None
            for local, remote in uploads:
                io.copy(local, remote)
                os.remove(local)
            for key, value in stats.items():
                totals[key] = totals.get(key, 0) + value
            display.update(docs=stats["documents"], nbytes=stats["input_bytes"], units=len(indices))
            done = completed = indices[-1] + 1
            clean = True
            now = time.monotonic()
            if not read_only and done < len(plan_.inputs) and now - last_checkpoint >= config.checkpoint_interval:
                _write_checkpoint(bf, checkpoint, plan_, done, staging)
                checkpointed = done
                last_checkpoint = time.monotonic()
    except KeyboardInterrupt:
        # Stopped between batches: the filter holds exactly the completed files, so a rerun resumes after them.
        if clean and not read_only and completed > checkpointed:
            log.warning("stopping: checkpointing %d completed file(s) so that a rerun resumes after them", completed)
            _write_checkpoint(bf, checkpoint, plan_, completed, staging)
        raise
    finally:
        display.close()
    if not read_only:
        _save_final_filter(bf, filter_path, staging, len(plan_.inputs))
        with contextlib.suppress(FileNotFoundError):
            io.remove(checkpoint)
    _print_stats(plan_, totals, bf, config.quiet)
    return 0


def _save_final_filter(bf: BloomFilter, filter_path: str, staging: _Staging, files: int) -> None:
    """Save the filter after every attribute file is written; a failure (full or read-only disk) says what to do."""
    try:
        _save_filter(bf, filter_path, staging)
    except (OSError, BloomFilterError, DolmaError) as exc:
        reason = os_error_text(exc) if isinstance(exc, OSError) else str(exc)
        raise DolmaError(
            f"cannot save the Bloom filter to {filter_path} ({reason}). The attributes of all {files} file(s) are "
            "written, but without the saved filter a later run would not know their keys: free space or make the "
            "location writable (or point bloom_filter.file elsewhere) and rerun the same command"
        ) from None


def _batches_of(todo: list[int], inputs: list[str], max_files: int) -> list[tuple[int, int]]:
    """Batches over positions in `todo` (contiguous runs of file indices, bounded in size)."""
    return _batches([inputs[i] for i in todo], 0, max_files)


def _stage(plan_: Plan, indices: list[int], staging: _Staging) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """Local input/output paths for a batch; S3 inputs are downloaded and S3 outputs uploaded afterwards."""
    inputs, outputs, uploads = [], [], []
    for i in indices:
        src, dst = plan_.inputs[i], plan_.outputs[i]
        if io.is_s3(src):
            local = staging.path(f"in-{i}-{io.basename(src)}")
            io.copy(src, local)
            src = local
        if io.is_s3(dst):
            local = staging.path(f"out-{i}-{io.basename(dst)}")
            uploads.append((local, dst))
            dst = local
        inputs.append(src)
        outputs.append(dst)
    return inputs, outputs, uploads


def _print_stats(plan_: Plan, totals: dict[str, int], bf: BloomFilter, quiet: bool) -> None:
    if quiet:
        return
    docs = totals.get("documents", 0)
    paras = totals.get("paragraphs", 0)
    nbytes = totals.get("bytes", 0)

    def pct(part: int, whole: int) -> str:
        return f"{100.0 * part / whole:.2f}%" if whole else "-"

    lines = [
        f"dolma dedupe: attribute set '{plan_.attribute_set}'",
        f"  files       {totals.get('files', 0):>14,}",
        f"  documents   {docs:>14,}  marked {totals.get('documents_marked', 0):>12,} "
        f"({pct(totals.get('documents_marked', 0), docs)})",
        f"  keys        {paras:>14,}  marked {totals.get('paragraphs_marked', 0):>12,} "
        f"({pct(totals.get('paragraphs_marked', 0), paras)})",
        f"  text bytes  {nbytes:>14,}  marked {totals.get('bytes_marked', 0):>12,} "
        f"({pct(totals.get('bytes_marked', 0), nbytes)})",
        f"  bad lines   {totals.get('bad_lines', 0):>14,}",
        f"  filter      {bf.inserted:,} keys, estimated false-positive rate {bf.estimated_false_positive_rate():.3g}",
    ]
    print("\n".join(lines), file=sys.stdout)


# ----------------------------------------------------------------------------------------------------------
# executor: spark (global exact dedupe, dolma.spark_dedupe)
# ----------------------------------------------------------------------------------------------------------


def _check_spark(config: DedupeConfig) -> None:
    """Options of the local Bloom filter run that have no meaning on Spark are errors, not silently ignored."""
    section = config.dedupe
    if (section.num_partitions or 1) > 1 or section.partition_index or section.file_partition:
        raise ConfigError(
            "dedupe.num_partitions / partition_index / file_partition split a local run by hand; with executor "
            "spark the key space is partitioned automatically (set spark.conf spark.default.parallelism)"
        )
    if config.bloom_filter.read_only:
        raise ConfigError(
            "bloom_filter.read_only: executor spark dedupes the documents among themselves and does not use a "
            "Bloom filter; run read-only lookups with executor local"
        )
    filter_path = io.normalize(config.bloom_filter.file)
    if io.exists(filter_path):
        raise ConfigError(
            f"bloom_filter.file {filter_path} exists: executor spark neither reads nor writes a Bloom filter, so "
            "keys inserted by earlier runs would not be found; delete the file, point bloom_filter.file at a new "
            "path, or use executor local"
        )


def _run_spark(config: DedupeConfig, plan_: Plan) -> int:
    from dolma.executor import print_summary
    from dolma.spark_dedupe import spark_dedupe
    from dolma.spark_executor import get_context, remove_stale_temporaries, remove_temporaries_after_stop

    if config.dryrun:
        for src, dst in zip(plan_.inputs, plan_.outputs):
            print(f"{src} -> {dst}")
        print(
            f"{len(plan_.inputs)} file(s), attribute set '{plan_.attribute_set}', executor spark "
            f"(master {config.spark.master or 'local[*]'}); no Bloom filter is used"
        )
        return 0
    remove_stale_temporaries(plan_.outputs)
    sc, created = get_context(config.spark)
    try:
        summary = spark_dedupe(
            sc,
            plan_.inputs,
            plan_.outputs,
            _rust_config(config.dedupe),
            skip_bad_lines=config.skip_bad_lines,
            s3=config.s3,
            quiet=config.quiet,
        )
    except KeyboardInterrupt:
        if created:
            sc.stop()
            created = False
        remove_temporaries_after_stop(plan_.outputs)
        raise
    finally:
        if created:
            sc.stop()
    remove_stale_temporaries(plan_.outputs)
    print_summary(summary, f"dolma dedupe (spark): attribute set '{plan_.attribute_set}'", quiet=config.quiet)
    return 0 if summary.ok else 1
