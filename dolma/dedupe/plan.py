"""Planning a Bloom-filter dedupe: inputs and attribute outputs, the settings sent to Rust, the filter's size."""

from __future__ import annotations

import json

import msgspec

from dolma import io
from dolma._rust import BloomFilter, Deduper
from dolma.dedupe.config import MIN_FILTER_BYTES, BloomFilterConfig, DedupeConfig, DedupeSection
from dolma.documents import attributes_path
from dolma.errors import BloomFilterError, ConfigError, DedupeConfigError
from dolma.paths import check_name, check_outputs, check_path

# ----------------------------------------------------------------------------------------------------------
# Planning
# ----------------------------------------------------------------------------------------------------------


class Plan(msgspec.Struct, frozen=True):
    inputs: list[str]
    outputs: list[str]
    attribute_set: str


def _rust_config(section: DedupeSection) -> str:
    """The JSON that crosses into Rust: every field, with Python's defaults (Rust has none of its own and decodes
    it with deny_unknown_fields, so a field missing on either side is an error)."""
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
# Sizing the filter
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


def _requested_rate(cfg: BloomFilterConfig, size: int, hashes: int) -> float:
    """The rate the user asked for: given, or what the given size and count imply."""
    if cfg.desired_false_positive_rate:
        return cfg.desired_false_positive_rate
    if cfg.estimated_doc_count:
        return _expected_fp_rate(size, hashes, cfg.estimated_doc_count)
    return 1e-3


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:,.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n} B"
