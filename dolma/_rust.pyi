"""Type stubs for `dolma._rust`, the compiled kernels (Rust crate `rust_ext/py` over `rust_ext/core`)."""

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, TypeAlias, final

# The exceptions the binding raises are the classes in dolma/errors.py (import them from there).

# What the module exports (pyo3 builds it from the registrations in rust_ext/py/src; stubtest compares them).
__all__ = [
    "BLOOM_FORMAT_VERSION",
    "MAX_HASHES",
    "MINHASH_MAX_ANCHORS",
    "MINHASH_RESULT_VERSION",
    "MINHASH_UNIT_VERSION",
    "MINHASH_XXH3_SEED",
    "PII_DIGITS_UNICODE_VERSION",
    "BloomFilter",
    "DedupeKeys",
    "Deduper",
    "MinHashFileWriter",
    "MinHashSigner",
    "__version__",
    "attribute_rows",
    "c4_stats_batch",
    "file_fingerprint",
    "find_key_repeats",
    "gopher_stats_batch",
    "json_path_steps",
    "minhash_cluster",
    "minhash_read_results",
    "minhash_shingles",
    "minhash_unit_documents",
    "minhash_unit_header",
    "pii_digit_ranges",
    "pii_scan_batch",
    "pii_set_digit_ranges",
    "repetitions_batch",
    "xxh3_64",
]

__version__: Final[str]
MAX_HASHES: Final[int]
"""Upper bound on `num_hashes` (32): more hashes cost time and barely lower the error rate."""
BLOOM_FORMAT_VERSION: Final[int]
"""File format version that `BloomFilter.save` writes and `BloomFilter.load` accepts."""

_Key: TypeAlias = bytes | str
"""A key is `bytes`, or `str` hashed as its UTF-8 encoding (so `"a"` and `b"a"` are the same key)."""

def xxh3_64(data: _Key, seed: int = 0) -> int:
    """XXH3-64 of `data`: the stable hash the Bloom filter uses, the same on every machine and build."""

@final
class BloomFilter:
    """A Bloom filter with stable, recorded xxh3 hashing that saves to a checked, versioned file.

    Safe to share between threads: batch calls run without the GIL, and `contains_or_insert_batch` gives
    the same answers whatever the thread count. Pickles (as its bytes) to travel to worker processes.
    """

    def __new__(
        cls,
        size_in_bytes: int | None = None,
        num_hashes: int | None = None,
        *,
        estimated_doc_count: int | None = None,
        desired_false_positive_rate: float | None = None,
        seed: int = 0,
    ) -> BloomFilter:
        """Size explicitly, or from the expected document count and false-positive rate, by `choose_params`
        (with no size floor); sized from `estimated_doc_count` alone, the rate is 0.001.

        Raises `BloomFilterError` for a missing or out-of-range parameter, `MemoryError` if the bits
        cannot be allocated.
        """

    @staticmethod
    def choose_params(
        size_in_bytes: int | None = None,
        num_hashes: int | None = None,
        *,
        estimated_doc_count: int | None = None,
        desired_false_positive_rate: float | None = None,
        min_size_in_bytes: int = 0,
    ) -> tuple[int, int]:
        """`(size_in_bytes, num_hashes)` of a new filter: the one sizing table (also `dolma dedupe`'s).

        - `size_in_bytes`: used as given (rounded up to 64-byte blocks); hashes: the best for
          `estimated_doc_count`, else `round(-log2(desired_false_positive_rate))`.
        - `estimated_doc_count` and `desired_false_positive_rate`: as `optimal_params`, but never below
          `min_size_in_bytes`; a filter raised to that floor gets the hash count that holds the most keys at
          the rate.
        - `num_hashes`, when given, always wins. Anything else raises `BloomFilterError` naming what to add.
        """

    @staticmethod
    def optimal_params(estimated_doc_count: int, desired_false_positive_rate: float) -> tuple[int, int]:
        """`(size_in_bytes, num_hashes)` for the count at the rate; `num_hashes` is capped at `MAX_HASHES`."""

    @staticmethod
    def optimal_num_hashes(size_in_bytes: int, estimated_doc_count: int) -> int:
        """Best `num_hashes` for a filter of `size_in_bytes` (rounded up to 64-byte blocks) holding the count."""

    @staticmethod
    def expected_false_positive_rate(size_in_bytes: int, num_hashes: int, count: int) -> float:
        """Expected false-positive rate of a (blocked) filter of this size and hash count after `count` inserts."""

    def contains(self, key: _Key) -> bool:
        """Whether the key is (probably) present; never False for an inserted key."""

    def __contains__(self, key: _Key, /) -> bool: ...
    def insert(self, key: _Key) -> bool:
        """Add the key; return whether it was (probably) present already."""

    def contains_or_insert(self, key: _Key) -> bool:
        """Same as `insert`: whether the key was present, then insert it."""

    def contains_batch(self, keys: Iterable[_Key]) -> list[bool]:
        """`contains` for each key, computed in parallel without holding the GIL."""

    def insert_batch(self, keys: Iterable[_Key]) -> int:
        """Insert every key without holding the GIL; return how many were new."""

    def contains_or_insert_batch(self, keys: Iterable[_Key]) -> list[bool]:
        """For each key in order: was it present, then insert it (a repeat within the batch reports True)."""

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically (`<path>.tmp-<pid>`, then rename). Raises `OSError` naming the path."""

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BloomFilter:
        """Read a saved filter. Raises `BloomFilterFormatError` for a foreign or corrupt file, `OSError`."""

    def to_bytes(self) -> bytes:
        """The filter in the file format (header, manifest, little-endian bit words, checksum of it all)."""

    @classmethod
    def from_bytes(cls, data: bytes) -> BloomFilter:
        """Parse `to_bytes` output. Raises `BloomFilterFormatError` if invalid."""

    def __reduce__(self) -> tuple[object, tuple[bytes]]: ...
    @property
    def manifest(self) -> str:
        """Text recorded with the filter and saved with it, under the file's checksum (empty unless set)."""

    def set_manifest(self, manifest: str) -> None:
        """Record the text saved with the filter (`dolma dedupe` stores the inputs and settings it holds)."""

    @property
    def size_in_bytes(self) -> int:
        """Size of the bit array in bytes (a multiple of 64)."""

    @property
    def num_bits(self) -> int:
        """Size of the bit array in bits (a multiple of 512)."""

    @property
    def num_hashes(self) -> int:
        """Bits probed per key."""

    @property
    def seeds(self) -> tuple[int, int]:
        """The two xxh3 seeds, recorded in the file so answers never change across builds."""

    @property
    def inserted(self) -> int:
        """How many inserts added a key that was not present yet."""

    def bits_set(self) -> int:
        """Number of bits set to one."""

    def estimated_false_positive_rate(self) -> float:
        """`(bits_set / num_bits) ** num_hashes`: the false-positive chance at the current fill."""

    def clear(self) -> None:
        """Reset every bit, the insert counter and the manifest."""

    def __len__(self) -> int:
        """Same as `inserted`."""

    def __bool__(self) -> bool:
        """Always True, even when empty: a filter is a configured resource, not a plain container."""

# ----------------------------------------------------------------------------------------------------------
# Dedupe pipeline (rust_ext/py/src/dedupe.rs)
# ----------------------------------------------------------------------------------------------------------

@final
class Deduper:
    """Deduplicates documents files end to end in Rust, given the JSON of the `dedupe` config section."""

    def __new__(cls, config_json: str, *, skip_bad_lines: bool = False, chunk_bytes: int | None = None) -> Deduper: ...
    @property
    def attribute(self) -> str:
        """The attribute key written for marked spans."""
    @property
    def key_settings(self) -> str:
        """The settings that decide which keys a document gives, as JSON: an object keyed by dotted config
        field (e.g. `dedupe.paragraphs.by_ngram.ngram_length`) plus `mode` and `key_format`."""
    def run(
        self,
        filter: BloomFilter,
        inputs: list[str],
        outputs: list[str],
        *,
        read_only: bool = False,
        threads: int = 1,
    ) -> dict[str, int | list[str]]:
        """Dedupe `inputs` in order (keys looked up in file, then line order) and write `outputs[i]` for
        `inputs[i]` atomically; returns statistics (files, documents, documents_marked, paragraphs,
        paragraphs_marked, bytes, bytes_marked, bad_lines, input_bytes) and `fingerprints`, the
        `file_fingerprint` of each completed file, taken while reading it.

        Python's signal handlers run while it works: an exception they raise stops the run at its next chunk. A
        KeyboardInterrupt (Ctrl-C or, in the CLI, SIGTERM) comes back as `DedupeStopped` (its `signal` is the
        original); other exceptions as they are. Errors of the run are `DedupeInputError` (a bad line),
        `DedupeIOError`, `DedupeConfigError`; they and `DedupeStopped` carry `completed_stats` (the statistics and
        fingerprints of the files completed before it) and `partial_file` (the filter holds part of the
        unfinished file's keys)."""

def file_fingerprint(path: str) -> str:
    """xxh3-128 of a local file's bytes as stored, as 32 hex digits (what `Deduper.run` reports per file)."""

def json_path_steps(path: str) -> list[str | int]:
    """The steps of a document key in the deduper's JSONPath subset (names, indexes); DedupeConfigError if bad."""

def attribute_rows(ids: Sequence[str], rows: Mapping[int, bytes]) -> bytes:
    """The attribute lines of documents `ids`, in order: `rows[i]` where given (a whole line, newline included),
    otherwise `{"id":<id>,"attributes":{}}` with the id escaped as msgspec escapes it."""

# Spark (distributed) dedupe: keys and attributes exactly as the local deduper computes them.

@final
class DedupeKeys:
    """The dedupe keys of a documents file and its attributes file, given which key occurrences repeat."""

    def __new__(cls, config_json: str, *, skip_bad_lines: bool = False) -> DedupeKeys: ...
    @property
    def attribute(self) -> str: ...
    def keys(
        self, path: str, raw: bytes, file_index: int, partitions: int, *, compressed: bool = True
    ) -> tuple[list[tuple[int, bytes]], bytes, dict[str, int]]:
        """(owner partition, blob of (key hash, position) records), the skeleton and counts for a file's
        content as stored (decompressed by the path's extension unless `compressed=False`)."""
    def keys_of_file(
        self, path: str, file_index: int, partitions: int
    ) -> tuple[list[tuple[int, bytes]], bytes, dict[str, int]]:
        """`keys` for a local file, read by Rust into a buffer kept between files."""
    def write_attributes(self, skeleton: bytes, duplicates: bytes, output: str) -> dict[str, int]:
        """Write the attributes file of a `keys` skeleton to the local path `output` given the blob of its
        duplicate positions."""

def find_key_repeats(blobs: list[bytes]) -> list[tuple[int, bytes]]:
    """Key blobs of one partition -> (file index, blob of the positions of every non-earliest occurrence)."""

# Text statistics of the rule-based quality taggers (rust_ext/core/src/textstats.rs). Each call copies the
# texts, computes without the GIL (in parallel, results in input order) and follows Python's str semantics.

def gopher_stats_batch(texts: list[str], *, v2: bool = False) -> list[list[float | None]]:
    """Gopher statistics per text, 19 values in the order of `taggers.gopher.GOPHER_STAT_NAMES`; the n-gram
    values are None when the text has fewer words than n. `v2` cuts lines at runs of newlines."""

def c4_stats_batch(
    texts: list[str], naughty_words: list[str], *, lowercase_offsets: bool = False
) -> list[tuple[list[tuple[int, int]], list[tuple[int, int]], int, bool, bool, bool, bool, bool]]:
    """C4 statistics per text: (lines without ending punctuation, lines with too few words, line count,
    has_naughty_word, "javascript" as a whole word, has_lorem_ipsum, has_curly_brace, "javascript" anywhere);
    lines as code-point spans (into the lower-cased text with `lowercase_offsets`, as the reference's c4_v2)."""

def repetitions_batch(texts: list[str], *, per_paragraph: bool = False) -> list[list[tuple[int, int, int]]]:
    """Repeated substrings per text as (start, end, copies) code-point spans, as
    `re.finditer(r"(.+?)(?:\\s?\\1){3,}", text)` finds them; `per_paragraph` searches each line alone."""

# PII scan of the pii_regex_* taggers (rust_ext/core/src/pii.rs), same spans as taggers/pii.py's Python code.

def pii_scan_batch(texts: list[str], *, by_line: bool = False) -> list[tuple[list[tuple[int, int, int]], int]]:
    """Per text: ([(start, end, kind)], words); code-point spans, kind 0 e-mail, 1 phone, 2 IP, in that
    order. Whole text (phone/IP near a "#" dropped, words = len(text.split())) or, with `by_line`, each line
    on its own (no "#" rule, words = 0)."""

PII_DIGITS_UNICODE_VERSION: str

def pii_digit_ranges() -> list[tuple[int, int]]:
    """Inclusive code-point ranges the scan's `\\d` stands for (Unicode PII_DIGITS_UNICODE_VERSION unless set)."""

def pii_set_digit_ranges(ranges: list[tuple[int, int]]) -> None:
    """Make `\\d` these ranges (the running Python's); before the first scan of the process (ValueError after)."""

# MinHash-LSH engine (rust_ext/py/src/minhash.rs over rust_ext/core/src/minhash). Use it through dolma.minhash,
# which builds the configuration JSON. Errors: dolma.errors.ConfigError (a bad parameter), CorruptFileError
# (path, reason) for a damaged or foreign band-key / result file, OSError for I/O.

MINHASH_MAX_ANCHORS: Final[int]
"""With `verify`, how many members of a bucket (its first, in document order) others are compared with."""
MINHASH_XXH3_SEED: Final[int]
"""Seed of the default (xxh3) MinHash base hash: the low 32 bits of `xxh3_64(shingle, MINHASH_XXH3_SEED)`."""
MINHASH_UNIT_VERSION: Final[int]
"""Format version of the band-key files this build writes and reads."""
MINHASH_RESULT_VERSION: Final[int]
"""Format version of the result files this build writes and reads."""

def minhash_shingles(text: str, *, ngram: int, tokenizer: str = "words") -> list[str]:
    """The shingles of `text` in order: `ngram` lower-cased Unicode words joined by one space (`words`), or
    `ngram` code points of the lower-cased, whitespace-collapsed text (`chars`); a shorter non-empty text has
    one shingle of all its units, a text without units none."""

@final
class MinHashSigner:
    """Signatures and band keys for one configuration (`dolma.minhash.MinHashParams.engine_json`). Pickles."""

    def __new__(cls, config_json: str) -> MinHashSigner: ...
    def signatures(self, texts: list[str], *, threads: int | None = None) -> tuple[bytes, list[int]]:
        """(values, shingle counts): `num_perm` little-endian uint32 values per text, row-major."""
    def shingle_sets(self, texts: list[str], *, threads: int | None = None) -> list[bytes]:
        """Per text, its shingle set for `verify: exact`: sorted, distinct little-endian uint64 hashes."""
    def band_keys(self, signatures: bytes) -> bytes:
        """`bands` little-endian uint64 keys per signature row (`num_perm` little-endian uint32 values)."""
    @property
    def fingerprint(self) -> int:
        """Hash of every parameter that makes signatures and band keys comparable (recorded in files)."""
    @property
    def num_perm(self) -> int: ...
    @property
    def config_json(self) -> str: ...

@final
class MinHashFileWriter:
    """Writes the band-key file of one documents file from batches of documents; appears only when finished."""

    def __new__(
        cls,
        signer: MinHashSigner,
        path: str | os.PathLike[str],
        file_index: int,
        source: str,
        *,
        source_size: int,
        source_stamp: int,
        threads: int | None = None,
    ) -> MinHashFileWriter: ...
    def add(self, lines: list[int], texts: list[str], ids: list[str], lengths: list[int]) -> None:
        """Add documents: their 1-based line numbers (increasing across calls), texts to sign, ids and the
        lengths in code points of their `text` fields."""
    def sign_documents(
        self, path: str, key: list[str | int], *, skip_bad_lines: bool, batch_chars: int
    ) -> dict[str, Any]:
        """Read the local documents file `path` in Rust and add its documents (the text at `key` is signed):
        {lines, bytes, bad: [(line, its bytes)], stopped, unkept, first_unkept} (stopped: the first bad line ended
        the read; unkept: skipped bad lines past the limit of those kept, counted only, the first at first_unkept)."""
    def finish(self, lines_read: int, bad_lines: int, bytes_read: int) -> dict[str, Any]:
        """Write the file atomically; returns its header (file_index, documents, lines, bad_lines, keyed,
        records, num_perm, bands, rows, shingle_sets, fingerprint, source, source_size, source_stamp,
        bytes_read)."""
    def abort(self) -> None:
        """Drop the unfinished file and its temporary files."""
    @property
    def documents(self) -> int: ...

def minhash_unit_header(path: str | os.PathLike[str], fingerprint: int | None = None) -> dict[str, Any]:
    """Open and fully verify a band-key file (made with `fingerprint`, if given); returns its header."""

def minhash_unit_documents(
    path: str | os.PathLike[str], fingerprint: int | None = None
) -> tuple[dict[str, Any], bytes, bytes, list[str]]:
    """The documents a verified band-key file records: (header, line numbers, text lengths, ids), numbers as
    packed little-endian uint64."""

def minhash_cluster(
    units: list[str],
    outputs: list[str],
    options_json: str,
    *,
    fingerprint: int | None = None,
    threads: int | None = None,
) -> dict[str, int]:
    """Cluster the documents of `units` (file i has file index i) and write `outputs[i]` for each; options:
    verify, threshold, memory_budget, spill_dir. Returns counts (files, documents, keyed, buckets,
    candidate_pairs, comparisons, rejected, clusters, duplicates, records, sort_runs, merge_passes,
    bytes_spilled)."""

def minhash_read_results(path: str | os.PathLike[str]) -> tuple[dict[str, Any], bytes]:
    """A verified result file: (header, records as packed 40-byte little-endian rows)."""
