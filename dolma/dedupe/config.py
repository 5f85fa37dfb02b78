"""The `dedupe` config (modes, Bloom filter, compression) and the constants the Bloom-filter run is tuned by."""

from __future__ import annotations

import os
from typing import Annotated

import msgspec
from msgspec import Meta

from dolma.commands.common import RunOptions
from dolma.config import Base
from dolma.dedupe_minhash import MinHashDedupe
from dolma.errors import ConfigError

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
