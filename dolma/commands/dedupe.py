"""`dolma dedupe`: mark repeated documents, paragraphs or paragraph n-grams with a Bloom filter.

(`dedupe.minhash`, near-duplicate documents, is its own mode: `dolma.dedupe_minhash`; `run` hands it over.)

Python only plans and orchestrates: the file pipeline (decompress, parse, split, hash, test-and-insert,
write attributes) runs in Rust (`dolma._rust.Deduper`) with the GIL released and threads inside. Keys are
looked up in a stable order (sorted input files, then lines), so the first occurrence kept is the same
whatever the thread count.

The filter file records what went into it (its manifest, under the file's checksum): the settings that decide
the keys, and every input whose keys it holds, by path, size and content fingerprint. That is the one rerun
rule: an input recorded in the filter is complete (not redone; redoing it would find all of its own keys and
mark everything), an input not recorded is deduped against the filter and added. So a finished run reruns as
a no-op, new crawl batches are deduped against earlier ones, and a killed run resumes after the last save of
the filter (saved every `checkpoint_interval` seconds) with byte-identical results. What cannot be answered
correctly (a recorded input changed or lost its attributes, other key settings) is an error saying what to do.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from dolma import io
from dolma._rust import (
    BloomFilter,
    BloomFilterError,
    DedupeConfigError,
    DedupeInputError,
    Deduper,
    file_fingerprint,
)
from dolma.commands.common import RunOptions
from dolma.config import Base
from dolma.dedupe_minhash import MinHashDedupe
from dolma.documents import attributes_path
from dolma.errors import BadInputError, ConfigError, DolmaError
from dolma.executors.base import ProgressDisplay, Summary, UnitStats, os_error_text
from dolma.executors.summary import (
    BloomFilterStats,
    DedupeStats,
    ModeCounts,
    Source,
    finish_run,
)
from dolma.executors.summary import now as summary_now
from dolma.paths import check_name, check_outputs, check_path

log = logging.getLogger("dolma")

# Left next to the filter by earlier versions (which checkpointed to a separate file); now ignored.
LEGACY_CHECKPOINT_SUFFIX = ".checkpoint"
# A filter sized from estimated_doc_count is never smaller: an estimate far below the real number of keys
# (the reference's own n-gram fixture declares 1000 documents for thousands of n-grams) would give a filter of
# a few KB that fills up and marks nearly everything. The reference also starts at 1 MiB.
MIN_FILTER_BYTES = 1 << 20
# A run fails when the filter's estimated false-positive rate passes max(SATURATED_RATE, SATURATED_FACTOR x
# the requested rate), unless bloom_filter.allow_saturated; above the requested rate alone it warns.
SATURATED_RATE = 0.01
SATURATED_FACTOR = 10.0
MANIFEST_FORMAT = "dolma-dedupe-filter-manifest/1"
# Inputs on S3 are looked up (HEAD) this many at a time.
S3_INFO_THREADS = 16
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
    minhash: Annotated[
        MinHashDedupe | None,
        Meta(description="Mark near-duplicate documents by MinHash-LSH (no bloom_filter; see docs/minhash.md)."),
    ] = None
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
    file: Annotated[
        str,
        Meta(
            description="Filter file (local or s3://). If it exists it is loaded, and inputs it already holds are "
            "skipped (it records them); new inputs are deduped against it and added."
        ),
    ]
    read_only: Annotated[
        bool, Meta(description="Only look keys up; the filter file must exist and is never rewritten.")
    ] = False
    size_in_bytes: Annotated[
        int | None,
        Meta(description="Filter size; 0/unset: derived from estimated_doc_count and the rate (at least 1 MiB)."),
    ] = None
    estimated_doc_count: Annotated[
        int | None, Meta(description="Expected number of keys (documents, paragraphs or n-grams).")
    ] = None
    desired_false_positive_rate: Annotated[
        float | None, Meta(description="Target false-positive rate at estimated_doc_count keys.")
    ] = None
    seed: Annotated[
        int, Meta(description="Hash seed of a new filter (recorded in the file; an existing filter must match).")
    ] = 0
    allow_saturated: Annotated[
        bool,
        Meta(
            description="Finish even when the filter is so full that its estimated false-positive rate passes "
            f"max({SATURATED_RATE:g}, {SATURATED_FACTOR:g} x the requested rate): marks are then unreliable. "
            "Without it such a run fails and the filter is not saved."
        ),
    ] = False


class CompressionConfig(Base):
    input: Annotated[str | None, Meta(description="Reference-compatible; compression follows the extension.")] = None
    output: Annotated[str | None, Meta(description="Reference-compatible; compression follows the extension.")] = None


class DedupeConfig(RunOptions, kw_only=True):
    documents: Annotated[
        list[str], Meta(description="Globs of documents files (local paths or s3:// URLs; ** recurses).")
    ]
    dedupe: Annotated[DedupeSection, Meta(description="What to deduplicate and how.")]
    bloom_filter: Annotated[
        BloomFilterConfig | None,
        Meta(description="The Bloom filter file and its size (documents and paragraphs modes)."),
    ] = None
    compression: Annotated[CompressionConfig, Meta(description="Reference-compatible.")] = msgspec.field(
        default_factory=CompressionConfig
    )
    is_s3_volume: Annotated[bool, Meta(description="Reference-compatible; not needed here.")] = False
    checkpoint_interval: Annotated[
        float,
        Meta(
            description="Seconds between saves of the filter during a run, with the inputs it holds so far "
            "(0: after every batch of files). A killed run resumes after the last save."
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


def _rust_config(section: DedupeSection) -> str:
    """The JSON that crosses into Rust (decoded there with deny_unknown_fields)."""
    data = msgspec.to_builtins(section)
    data.pop("minhash", None)  # its own mode (dolma.dedupe_minhash), never a Bloom filter run
    data["num_partitions"] = section.num_partitions or 1
    data["partition_index"] = section.partition_index or 0
    return json.dumps(data, sort_keys=True)


def _require_filter(config: DedupeConfig) -> BloomFilterConfig:
    if config.bloom_filter is None:
        raise ConfigError("bloom_filter: the documents and paragraphs modes need a bloom_filter section (file: ...)")
    return config.bloom_filter


def plan(config: DedupeConfig) -> Plan:
    section = config.dedupe
    if not config.documents:
        raise ConfigError("dedupe: no documents given (set 'documents')")
    if section.documents is None and section.paragraphs is None:
        raise ConfigError("dedupe: set one of 'dedupe.documents', 'dedupe.paragraphs' or 'dedupe.minhash'")
    if section.documents is not None and section.paragraphs is not None:
        raise ConfigError("dedupe: set only one of 'dedupe.documents' and 'dedupe.paragraphs'")
    _require_filter(config)
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

    check_name(section.name, "dedupe.name")
    check_name(section.document_dir, "dedupe.document_dir")
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
    filter_path = io.normalize(check_path(config.bloom_filter.file, "bloom_filter.file"))
    if filter_path in outputs:
        raise ConfigError(f"dedupe: bloom_filter.file {filter_path} is also an output file")
    # A read-only filter is an input; otherwise the filter (which is also the run's checkpoint) is an output.
    written = [] if config.bloom_filter.read_only else [filter_path]
    check_outputs("dedupe", inputs, [*outputs, *written], document_dir=section.document_dir)
    return Plan(inputs=inputs, outputs=outputs, attribute_set=attribute_set)


# ----------------------------------------------------------------------------------------------------------
# The filter and its manifest
# ----------------------------------------------------------------------------------------------------------


def filter_params(cfg: BloomFilterConfig) -> tuple[int, int]:
    """(size_in_bytes, num_hashes) of a new filter, from the reference's three sizing fields (0: not given).

    The decision table is `BloomFilter.choose_params` (Rust), shared with the `BloomFilter` constructor.
    """
    try:
        return BloomFilter.choose_params(
            cfg.size_in_bytes or None,
            estimated_doc_count=cfg.estimated_doc_count or None,
            desired_false_positive_rate=cfg.desired_false_positive_rate,
            min_size_in_bytes=MIN_FILTER_BYTES,
        )
    except BloomFilterError as exc:
        raise ConfigError(f"bloom_filter: {exc}") from None


def _expected_fp_rate(size: int, hashes: int, count: int) -> float:
    """The blocked filter's expected rate (all bits of a key in one 64-byte block; see dolma/_rust)."""
    return BloomFilter.expected_false_positive_rate(size, hashes, count)


class FilterInput(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    """An input whose keys are in the filter, with what tells whether it is still the same file."""

    path: str
    size: int
    # xxh3-128 of the file's bytes as stored (dolma._rust.file_fingerprint), taken while it was deduped.
    fingerprint: str
    # The attributes file written for it (named in errors when it is missing).
    attributes: str
    # Cheap version stamps: when they are unchanged the content is taken as unchanged without rereading it.
    mtime_ns: int | None = None
    etag: str | None = None


class FilterManifest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What a filter file records about its contents (stored in the file, under its checksum)."""

    format: str = MANIFEST_FORMAT
    # The settings that decide the keys (Deduper.key_settings: dotted config fields -> values).
    settings: dict[str, Any]
    # bloom_filter.seed the filter was created with.
    seed: int
    # The false-positive rate requested when the filter was created (saturation warnings compare to it).
    false_positive_rate: float
    # Every input whose keys are in the filter, in the order they went in.
    inputs: list[FilterInput] = msgspec.field(default_factory=list)


class _Filter:
    """The filter of a run: its bits, its manifest and where it is saved."""

    def __init__(self, bf: BloomFilter, manifest: FilterManifest, path: str, created: bool, requested_rate: float):
        self.bf = bf
        self.manifest = manifest
        self.path = path
        self.created = created
        self.requested_rate = requested_rate

    @property
    def bound(self) -> float:
        """Estimated false-positive rate above which the run fails (unless allow_saturated)."""
        return max(SATURATED_RATE, SATURATED_FACTOR * self.requested_rate)

    def record(self, inputs: list[FilterInput]) -> None:
        self.manifest.inputs.extend(inputs)

    def save(self, staging: _Staging) -> None:
        self.bf.set_manifest(msgspec.json.encode(self.manifest).decode())
        _save_filter(self.bf, self.path, staging)


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


def _load_filter(path: str, staging: _Staging) -> BloomFilter:
    local = path
    if io.is_s3(path):
        local = staging.path("filter.bin")
        io.copy(path, local)
    try:
        return BloomFilter.load(local)
    except BloomFilterError as exc:
        raise DolmaError(f"bloom_filter.file {path}: {exc}") from None
    finally:
        if local != path:
            os.remove(local)


def _save_filter(bf: BloomFilter, path: str, staging: _Staging) -> None:
    if io.is_s3(path):
        local = staging.path("filter-out.bin")
        bf.save(local)
        io.copy(local, path)
        os.remove(local)
    else:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        bf.save(path)


def _requested_rate(cfg: BloomFilterConfig, size: int, hashes: int) -> float:
    """The rate the user asked for: given, or what the given size and count imply."""
    if cfg.desired_false_positive_rate:
        return cfg.desired_false_positive_rate
    if cfg.estimated_doc_count:
        return _expected_fp_rate(size, hashes, cfg.estimated_doc_count)
    return 1e-3


def _open_filter(config: DedupeConfig, settings: dict[str, Any], staging: _Staging) -> _Filter:
    """The saved filter with its manifest, checked against this configuration, or a new empty one."""
    cfg = config.bloom_filter
    path = io.normalize(cfg.file)
    if (cfg.read_only or not config.ignore_existing) and io.exists(path):
        return _checked_filter(config, settings, _load_filter(path, staging), path)
    size, hashes = filter_params(cfg)
    try:
        bf = BloomFilter(size, hashes, seed=cfg.seed)
    except (BloomFilterError, MemoryError) as exc:
        raise ConfigError(f"bloom_filter: cannot allocate {size:,} bytes: {exc}") from None
    rate = _requested_rate(cfg, size, hashes)
    manifest = FilterManifest(settings=settings, seed=cfg.seed, false_positive_rate=rate)
    return _Filter(bf, manifest, path, created=True, requested_rate=rate)


def _checked_filter(config: DedupeConfig, settings: dict[str, Any], bf: BloomFilter, path: str) -> _Filter:
    cfg = config.bloom_filter
    if not bf.manifest:
        # Built with the BloomFilter API, not by this command: nothing to check it against.
        log.warning(
            "bloom_filter.file %s records no dedupe settings or inputs (it was not written by `dolma dedupe`): its "
            "keys are used as they are, and this run records its own settings and inputs in it",
            path,
        )
        rate = cfg.desired_false_positive_rate or 1e-3
        manifest = FilterManifest(settings=settings, seed=cfg.seed, false_positive_rate=rate)
        return _Filter(bf, manifest, path, created=False, requested_rate=rate)
    try:
        manifest = msgspec.json.decode(bf.manifest, type=FilterManifest)
    except msgspec.ValidationError as exc:
        raise DolmaError(
            f"bloom_filter.file {path}: its manifest is not one this version writes ({exc}); rebuild the filter "
            "with --ignore_existing"
        ) from None
    except msgspec.DecodeError:
        raise DolmaError(
            f"bloom_filter.file {path}: its manifest is not JSON; rebuild it with --ignore_existing"
        ) from None
    differences = _setting_differences(manifest, settings, cfg.seed)
    if differences:
        fix = (
            "build a separate filter with these settings"
            if cfg.read_only
            else "point bloom_filter.file at another filter, or rerun with --ignore_existing to rebuild this one "
            "from empty over the inputs"
        )
        raise ConfigError(
            f"bloom_filter.file {path} was built with a different configuration: {'; '.join(differences)}. Keys "
            f"made with these settings would not match the ones in the filter, so the marks would be wrong. Use "
            f"the filter's settings, or {fix}"
        )
    rate = cfg.desired_false_positive_rate or manifest.false_positive_rate
    return _Filter(bf, manifest, path, created=False, requested_rate=rate)


def _setting_differences(manifest: FilterManifest, settings: dict[str, Any], seed: int) -> list[str]:
    def show(value: Any) -> str:
        return "unset" if value is None else json.dumps(value)

    old = manifest.settings
    names = ["mode"] if old.get("mode") != settings.get("mode") else sorted(set(old) | set(settings))
    out = [
        f"{name} is {show(old.get(name))} in the filter and {show(settings.get(name))} in this configuration"
        for name in names
        if old.get(name) != settings.get(name)
    ]
    if manifest.seed != seed:
        out.append(f"bloom_filter.seed is {manifest.seed} in the filter and {seed} in this configuration")
    return out


# ----------------------------------------------------------------------------------------------------------
# Which inputs are complete
# ----------------------------------------------------------------------------------------------------------


def _infos(paths: list[str]) -> list[io.FileInfo]:
    if not any(io.is_s3(p) for p in paths):
        return [io.info(p) for p in paths]
    with ThreadPoolExecutor(S3_INFO_THREADS) as pool:
        return list(pool.map(io.info, paths))


def _exist(paths: list[str]) -> list[bool]:
    if not any(io.is_s3(p) for p in paths):
        return [io.exists(p) for p in paths]
    with ThreadPoolExecutor(S3_INFO_THREADS) as pool:
        return list(pool.map(io.exists, paths))


def _fingerprint(path: str, staging: _Staging) -> str:
    if not io.is_s3(path):
        return file_fingerprint(path)
    local = staging.path("fingerprint-" + io.basename(path))
    io.copy(path, local)
    try:
        return file_fingerprint(local)
    finally:
        os.remove(local)


def _unchanged(record: FilterInput, info: io.FileInfo, staging: _Staging) -> bool:
    """Whether an input still has the content whose keys went into the filter."""
    if info.size != record.size:
        return False
    if info.mtime_ns is not None and info.mtime_ns == record.mtime_ns:
        return True
    if info.etag is not None and info.etag == record.etag:
        return True
    return _fingerprint(record.path, staging) == record.fingerprint


def _listing(paths: list[str]) -> str:
    shown = ", ".join(paths[:5])
    return shown + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")


def _complete_inputs(plan_: Plan, filt: _Filter, infos: list[io.FileInfo], staging: _Staging) -> list[int]:
    """Indices of the inputs already in the filter with their attributes written; errors for the inputs that are
    in the filter but changed or lost their attributes (redoing them would mark every key of theirs)."""
    recorded = {r.path: r for r in filt.manifest.inputs}
    known = [i for i, path in enumerate(plan_.inputs) if path in recorded]
    have_attributes = dict(zip(known, _exist([plan_.outputs[i] for i in known])))
    complete, changed, missing = [], [], []
    for i in known:
        path = plan_.inputs[i]
        if not _unchanged(recorded[path], infos[i], staging):
            changed.append(path)
        elif not have_attributes[i]:
            missing.append(i)
        else:
            complete.append(i)
    if changed:
        raise DolmaError(
            f"{len(changed)} input file(s) changed since their keys went into the Bloom filter {filt.path}: "
            f"{_listing(changed)}. A Bloom filter cannot forget keys, so their old content would still be found. "
            "Restore the original files, or rerun with --ignore_existing to rebuild the filter from empty over the "
            "current inputs (every input is redone)"
        )
    if missing:
        where = [recorded[plan_.inputs[i]].attributes for i in missing]
        raise DolmaError(
            f"{len(missing)} input file(s) are already in the Bloom filter {filt.path} but their attributes are "
            f"missing: {_listing([plan_.inputs[i] for i in missing])} (they were written to {_listing(where)}). "
            "Deduping them again would find every one of their own keys and mark every document as a repeat. "
            "Choose one: restore those attribute files; rerun with --ignore_existing to rebuild the filter from "
            "empty and redo every input; point bloom_filter.file at a new filter; or look them up without "
            "inserting (bloom_filter.read_only: true) to mark what the filter already held"
        )
    return complete


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
    if isinstance(exc, OSError) and not isinstance(exc, (FileNotFoundError, PermissionError)):
        return DolmaError(str(exc))
    return exc


def run(config: DedupeConfig) -> int:
    if config.dedupe.minhash is not None:
        from dolma import dedupe_minhash

        return dedupe_minhash.run(config)
    _require_filter(config)
    io.configure_s3(config.s3)
    if config.executor == "spark":
        _check_spark(config)
    plan_ = plan(config)
    if config.executor == "spark":
        return _run_spark(config, plan_)
    threads = 1 if config.debug else config.processes
    staging = _Staging()
    try:
        return _run(config, plan_, threads, staging)
    finally:
        staging.close()


def _dryrun(config: DedupeConfig, plan_: Plan, filter_path: str) -> int:
    cfg = config.bloom_filter
    if io.exists(filter_path) and (cfg.read_only or not config.ignore_existing):
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


def _run(config: DedupeConfig, plan_: Plan, threads: int, staging: _Staging) -> int:
    started = summary_now()
    cfg = config.bloom_filter
    read_only = cfg.read_only
    filter_path = io.normalize(cfg.file)
    if read_only and not io.exists(filter_path):
        raise ConfigError(f"bloom_filter.read_only is set but the filter file {filter_path} does not exist")
    if config.dryrun:
        return _dryrun(config, plan_, filter_path)
    if io.exists(filter_path + LEGACY_CHECKPOINT_SUFFIX):
        log.warning(
            "%s%s was left by an earlier version of this toolkit and is ignored (runs now resume from the filter "
            "file itself); delete it",
            filter_path,
            LEGACY_CHECKPOINT_SUFFIX,
        )
    # Runs killed on this machine may have left temporaries beside the attributes and the filter.
    io.remove_dead_temporaries([*(io.dirname(path) for path in plan_.outputs), io.dirname(filter_path)])

    deduper = Deduper(_rust_config(config.dedupe), skip_bad_lines=config.skip_bad_lines, chunk_bytes=_chunk_bytes())
    filt = _open_filter(config, json.loads(deduper.key_settings), staging)
    bf = filt.bf
    infos = _infos(plan_.inputs)
    if read_only:
        # A read-only run changes no state, so each output stands alone: finished files are those with outputs.
        recorded = {r.path for r in filt.manifest.inputs}
        if any(path in recorded for path in plan_.inputs):
            log.warning(
                "%d input file(s) are themselves in the read-only filter %s: every one of their keys is found",
                sum(1 for path in plan_.inputs if path in recorded),
                filter_path,
            )
        exist = [False] * len(plan_.outputs) if config.ignore_existing else _exist(plan_.outputs)
        complete = [i for i, there in enumerate(exist) if there]
    else:
        complete = [] if filt.created else _complete_inputs(plan_, filt, infos, staging)
    done = set(complete)
    todo = [i for i in range(len(plan_.inputs)) if i not in done]
    log.info(
        "bloom filter %s: %s, %d hashes, %d keys inserted so far%s; %d of %d input file(s) already complete",
        filter_path,
        _human(bf.size_in_bytes),
        bf.num_hashes,
        bf.inserted,
        " (read-only)" if read_only else "",
        len(complete),
        len(plan_.inputs),
    )
    if not todo:
        why = "their attributes exist" if read_only else f"their keys are recorded in {filter_path}"
        log.info("every input file is already complete (%s); nothing to do", why)
        _finish(config, plan_, {}, filt, bf.estimated_false_positive_rate(), complete, [], started)
        return 0
    if not filt.created or read_only:
        _check_saturation(filt, bf.estimated_false_positive_rate(), cfg.allow_saturated, None)

    display = ProgressDisplay(len(plan_.inputs), f"dedupe {plan_.attribute_set}", config.quiet)
    display.update(units=len(complete))
    totals: dict[str, int] = {}
    last_save = time.monotonic()
    saved = len(filt.manifest.inputs)
    # `clean`: the filter's bits hold exactly the keys of the inputs its manifest records (true between batches),
    # so it may be saved as the state a rerun resumes from.
    clean = True
    try:
        for begin, end in _batches_of(todo, plan_.inputs, max(4, 4 * threads)):
            indices = todo[begin:end]
            inputs, outputs, uploads = _stage(plan_, indices, staging)
            clean = False
            try:
                stats = deduper.run(bf, inputs, outputs, read_only=read_only, threads=threads)
            except BaseException as exc:
                # An error, or Ctrl-C / SIGTERM (a KeyboardInterrupt: the run stopped at its next chunk). Errors of
                # the run carry what it completed; without that (a signal that arrived as the run returned) the
                # filter may hold keys of files not recorded, so the last save stays the state to resume from.
                completed = getattr(exc, "completed_stats", None)
                partial = bool(getattr(exc, "partial_file", False))
                if completed is not None:
                    # The files before the failing one are complete: their S3 outputs go up before anything
                    # records them as done.
                    _upload(uploads, indices[: completed.get("files", 0)])
                if partial:
                    # The filter holds the first chunks of the unfinished file: it is not the state after the
                    # files before it, so keep the last save (a rerun redoes the files after it).
                    log.warning(
                        "the filter holds part of an unfinished file's keys; not checkpointed: a rerun resumes "
                        "after the %d file(s) saved in it",
                        saved,
                    )
                elif completed is not None and not read_only:
                    # Keep what the files before the failing one inserted: a rerun resumes after them (a stop
                    # saves on its way out, below).
                    filt.record(_records(plan_, indices, infos, completed.get("fingerprints", [])))
                    clean = True
                    if not isinstance(exc, KeyboardInterrupt):
                        _save_before_failing(filt, staging, saved, cfg.allow_saturated)
                if isinstance(exc, KeyboardInterrupt):
                    raise
                raise _translate(exc) from None
            _upload(uploads, indices)
            for key, value in stats.items():
                if isinstance(value, int):
                    totals[key] = totals.get(key, 0) + value
            display.update(docs=stats["documents"], nbytes=stats["input_bytes"], units=len(indices))
            if read_only:
                continue
            filt.record(_records(plan_, indices, infos, stats["fingerprints"]))
            clean = True
            _check_saturation(filt, _rate_now(bf), cfg.allow_saturated, (totals, infos, complete))
            now = time.monotonic()
            if indices[-1] != todo[-1] and now - last_save >= config.checkpoint_interval:
                _save_during_run(filt, staging)
                saved = len(filt.manifest.inputs)
                last_save = time.monotonic()
    except KeyboardInterrupt:
        # Stopped (Ctrl-C, SIGTERM) where the filter holds exactly the inputs it records: save it, so that a
        # rerun resumes after them.
        if clean and not read_only and len(filt.manifest.inputs) > saved:
            log.warning(
                "stopping: saving the filter with %d completed file(s) so that a rerun resumes after them",
                len(filt.manifest.inputs),
            )
            _save_before_failing(filt, staging, saved, cfg.allow_saturated)
        raise
    finally:
        display.close()
    final_rate = bf.estimated_false_positive_rate()
    if not read_only:
        _check_saturation(filt, final_rate, cfg.allow_saturated, (totals, infos, complete))
        _save_final_filter(filt, staging, len(plan_.inputs))
    warning = _filter_warning(filt, final_rate, cfg.allow_saturated)
    _finish(config, plan_, totals, filt, final_rate, complete, [warning] if warning else [], started)
    return 0


def dedupe_modes(section: DedupeSection, counters: dict[str, int]) -> dict[str, ModeCounts]:
    """Marks per mode for the run summary: `documents` (whole documents by key) and `paragraphs` or `ngrams`.
    `documents_marked` counts documents with any mark (the runs do not tell the modes apart there)."""
    modes: dict[str, ModeCounts] = {}
    docs = counters.get("documents_marked", 0)
    if section.documents is not None:
        modes["documents"] = ModeCounts(units_marked=docs, documents_marked=docs)
    if section.paragraphs is not None:
        name = "ngrams" if section.paragraphs.by_ngram is not None else "paragraphs"
        modes[name] = ModeCounts(units_marked=counters.get("paragraphs_marked", 0), documents_marked=docs)
    return modes


# Rust's totals, named as the summary table shows them (the Spark path counts under the same names)
_COUNTER_NAMES = {
    "documents_marked": "documents marked",
    "paragraphs": "keys",
    "paragraphs_marked": "keys marked",
    "bytes": "text bytes",
    "bytes_marked": "text bytes marked",
}


def _finish(
    config: DedupeConfig,
    plan_: Plan,
    totals: dict[str, int],
    filt: _Filter,
    rate: float,
    complete: list[int],
    degraded: list[str],
    started: Any,
) -> None:
    """Write and print the run summary of a Bloom filter run: the Rust run's totals (per run, not per file) and
    the filter's state."""
    bf = filt.bf
    done = set(complete)
    processed = [i for i in range(len(plan_.inputs)) if i not in done][: totals.get("files", 0)]
    summary = Summary(units=len(plan_.inputs), skipped=len(complete), succeeded=len(processed))
    summary.stats = UnitStats(
        documents_in=totals.get("documents", 0),
        documents_out=totals.get("documents", 0),
        bad_lines=totals.get("bad_lines", 0),
        bytes_in=totals.get("input_bytes", 0),
        bytes_out=sum(io.size(plan_.outputs[i]) for i in processed),
        counters={name: totals.get(key, 0) for key, name in _COUNTER_NAMES.items()} | {"filter keys": bf.inserted},
    )
    fill = rate ** (1.0 / bf.num_hashes) if bf.num_hashes else 0.0
    bloom = BloomFilterStats(
        size_in_bytes=bf.size_in_bytes,
        hash_functions=bf.num_hashes,
        fill_ratio=min(max(fill, 0.0), 1.0),
        estimated_false_positive_rate=min(max(rate, 0.0), 1.0),
    )
    roots = sorted({io.glob_base(io.normalize(p)) for p in config.documents}) if config.documents else []
    name = ", ".join(roots) or plan_.attribute_set
    s = summary.stats
    extra = {
        "dedupe": DedupeStats(modes=dedupe_modes(config.dedupe, totals), bloom_filter=bloom),
        "sources": [
            Source(
                name=name,
                documents_in=s.documents_in,
                documents_out=s.documents_out,
                bytes_in=s.bytes_in,
                bytes_out=s.bytes_out,
            )
        ],
        "degraded": degraded,
    }
    finish_run(
        summary,
        command="dedupe",
        title=f"dolma dedupe: attribute set '{plan_.attribute_set}'",
        config=config,
        outputs=plan_.outputs,
        started=started,
        extra=extra,
    )


def _save_reason(exc: BaseException) -> str:
    return os_error_text(exc) if isinstance(exc, OSError) else str(exc)


def _save_during_run(filt: _Filter, staging: _Staging) -> None:
    """A save between batches (the state a killed run resumes from); a failure (full or read-only disk) stops the
    run with what to do."""
    try:
        filt.save(staging)
    except (OSError, BloomFilterError, DolmaError) as exc:
        raise DolmaError(
            f"cannot save the Bloom filter to {filt.path} ({_save_reason(exc)}); free space or make the location "
            "writable and rerun: the run resumes after the files of the last save"
        ) from None


def _save_before_failing(filt: _Filter, staging: _Staging, saved: int, allow_saturated: bool) -> None:
    """On the way out of a failed or stopped run: save the files completed since the last save, if any. A save
    that fails is logged, and the run's own error is the one reported."""
    if len(filt.manifest.inputs) <= saved or not (_rate_now(filt.bf) <= filt.bound or allow_saturated):
        return
    try:
        filt.save(staging)
    except (OSError, BloomFilterError, DolmaError) as exc:
        log.warning(
            "cannot save the Bloom filter to %s (%s): a rerun resumes after the %d file(s) of the last save",
            filt.path,
            _save_reason(exc),
            saved,
        )


def _save_final_filter(filt: _Filter, staging: _Staging, files: int) -> None:
    """Save the filter after every attribute file is written; a failure (full or read-only disk) says what to do."""
    try:
        filt.save(staging)
    except (OSError, BloomFilterError, DolmaError) as exc:
        raise DolmaError(
            f"cannot save the Bloom filter to {filt.path} ({_save_reason(exc)}). The attributes of all {files} "
            "file(s) are written, but the filter that records which inputs it holds is not: free space or make the "
            "location writable (or point bloom_filter.file elsewhere) and rerun the same command (it redoes the "
            "files after the last save)"
        ) from None


def _records(plan_: Plan, indices: list[int], infos: list[io.FileInfo], fingerprints: list[str]) -> list[FilterInput]:
    """Manifest entries for the first len(fingerprints) files of a batch (the ones the Rust run completed)."""
    return [
        FilterInput(
            path=plan_.inputs[i],
            size=infos[i].size,
            fingerprint=fingerprint,
            attributes=plan_.outputs[i],
            mtime_ns=infos[i].mtime_ns,
            etag=infos[i].etag,
        )
        for i, fingerprint in zip(indices, fingerprints)
    ]


def _rate_now(bf: BloomFilter) -> float:
    """Expected false-positive rate for the keys inserted so far (cheap: no pass over the bits)."""
    return _expected_fp_rate(bf.size_in_bytes, bf.num_hashes, bf.inserted)


def _check_saturation(
    filt: _Filter,
    rate: float,
    allowed: bool,
    progress: tuple[dict[str, int], list[io.FileInfo], list[int]] | None,
) -> None:
    """Fails the run once the filter is too full to tell repeats from new keys (unless allowed)."""
    if rate <= filt.bound:
        return
    if allowed:
        return
    size = _human(filt.bf.size_in_bytes)
    found = (
        f"the Bloom filter {filt.path} is saturated: with {filt.bf.inserted:,} keys in {size} its estimated "
        f"false-positive rate is {rate:.3g}, above the limit of {filt.bound:.3g} (the requested rate is "
        f"{filt.requested_rate:.3g}), so new keys would be marked as repeats by mistake"
    )
    if progress is None:
        raise DolmaError(
            f"{found}. Rebuild it larger from its inputs (--ignore_existing and a larger bloom_filter."
            "estimated_doc_count or size_in_bytes), or set bloom_filter.allow_saturated to accept unreliable marks"
        )
    totals, infos, complete = progress
    estimate = ""
    processed = totals.get("input_bytes", 0)
    if processed:
        # Keys inserted so far, scaled to all the inputs of this run (a lower bound: a full filter misses some).
        skipped = set(complete)
        remaining = sum(info.size for i, info in enumerate(infos) if i not in skipped)
        keys = int(filt.bf.inserted * max(remaining, processed) / processed)
        estimate = f" (these inputs give at least {keys:,} keys)"
    raise DolmaError(
        f"{found}. The filter is not saved: rerun with --ignore_existing and a larger "
        f"bloom_filter.estimated_doc_count or size_in_bytes{estimate}, or set bloom_filter.allow_saturated to "
        "accept unreliable marks"
    )


def _batches_of(todo: list[int], inputs: list[str], max_files: int) -> list[tuple[int, int]]:
    """Batches over positions in `todo` (contiguous runs of file indices, bounded in size)."""
    return _batches([inputs[i] for i in todo], 0, max_files)


def _stage(
    plan_: Plan, indices: list[int], staging: _Staging
) -> tuple[list[str], list[str], dict[int, tuple[str, str]]]:
    """Local input/output paths for a batch; S3 inputs are downloaded, S3 outputs uploaded afterwards (`uploads`:
    input index -> (local file, S3 URL))."""
    inputs: list[str] = []
    outputs: list[str] = []
    uploads: dict[int, tuple[str, str]] = {}
    for i in indices:
        src, dst = plan_.inputs[i], plan_.outputs[i]
        if io.is_s3(src):
            local = staging.path(f"in-{i}-{io.basename(src)}")
            io.copy(src, local)
            src = local
        if io.is_s3(dst):
            local = staging.path(f"out-{i}-{io.basename(dst)}")
            uploads[i] = (local, dst)
            dst = local
        inputs.append(src)
        outputs.append(dst)
    return inputs, outputs, uploads


def _upload(uploads: dict[int, tuple[str, str]], indices: list[int]) -> None:
    """Uploads the staged S3 outputs of the files `indices` (written by Rust into the staging directory)."""
    for i in indices:
        if i in uploads:
            local, remote = uploads.pop(i)
            io.copy(local, remote)
            os.remove(local)


def _filter_warning(filt: _Filter, rate: float, allowed: bool) -> str | None:
    """Why the marks of this run are less reliable than asked (an over-full or allowed saturated filter), if so."""
    if rate > filt.bound and allowed:
        return (
            f"the Bloom filter {filt.path} is saturated (allowed by bloom_filter.allow_saturated): estimated "
            f"false-positive rate {rate:.3g}, the requested {filt.requested_rate:.3g}; many marks are repeats by "
            "mistake"
        )
    if rate > filt.requested_rate:
        return (
            f"the Bloom filter {filt.path} is over-full: estimated false-positive rate {rate:.3g} exceeds the "
            f"requested {filt.requested_rate:.3g}, so some marks are repeats by mistake; rebuild it larger "
            "(--ignore_existing and a larger bloom_filter.estimated_doc_count or size_in_bytes)"
        )
    return None


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
    from dolma.executors.spark import remove_stale_temporaries, spark_context
    from dolma.spark_dedupe import spark_dedupe

    if config.dryrun:
        for src, dst in zip(plan_.inputs, plan_.outputs):
            print(f"{src} -> {dst}")
        print(
            f"{len(plan_.inputs)} file(s), attribute set '{plan_.attribute_set}', executor spark "
            f"(master {config.spark.master or 'local[*]'}); no Bloom filter is used"
        )
        return 0
    started = summary_now()
    remove_stale_temporaries(plan_.outputs)
    with spark_context(config.spark, plan_.outputs) as sc:
        summary = spark_dedupe(
            sc,
            plan_.inputs,
            plan_.outputs,
            _rust_config(config.dedupe),
            skip_bad_lines=config.skip_bad_lines,
            s3=config.s3,
            quiet=config.quiet,
        )
    remove_stale_temporaries(plan_.outputs)
    counters = summary.stats.counters
    marks = {
        "documents_marked": counters.get("documents marked", 0),
        "paragraphs_marked": counters.get("keys marked", 0),
    }
    finish_run(
        summary,
        command="dedupe",
        title=f"dolma dedupe (spark): attribute set '{plan_.attribute_set}'",
        config=config,
        outputs=plan_.outputs,
        started=started,
        extra={"dedupe": DedupeStats(modes=dedupe_modes(config.dedupe, marks))},
    )
    return 0 if summary.ok else 1
