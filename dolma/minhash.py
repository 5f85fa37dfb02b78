"""MinHash-LSH near-duplicate detection: signatures compatible with `datasketch`, LSH parameters equal to those
`datasketch.MinHashLSH` chooses, and the two engine steps a dedupe command runs.

Longer than 400 lines because it is the one public surface users import as `dolma.minhash` (parameters,
datasketch-compatible helpers, the engine steps and their reader), which the dedupe mode builds on.

1. `sign_file`: one documents file -> one band-key file (signatures, band keys, optionally shingle sets), a
   resumable unit written atomically.
2. `cluster`: all band-key files, in the stable order (input file order, then line) -> one result file per
   documents file, with memory bounded by `memory_budget` (external sort) plus 4 bytes and 1 bit per document.

The Rust core (`rust_ext/core/src/minhash`) documents the shingle rules and the file formats. Python owns the
defaults and the parameters datasketch would choose (`dolma.minhash_params`, computed without importing it): the
permutation parameters (drawn from `numpy.random.RandomState(seed)`) and the bands x rows of its optimiser,
computed once per configuration and handed to Rust in `MinHashParams.engine_json`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import threading
from collections.abc import Iterator, Sequence
from queue import Empty, Full, Queue
from typing import TYPE_CHECKING, Annotated, Literal, TypeVar

import msgspec
import numpy as np
from msgspec import Meta

from dolma import _rust, io
from dolma.config import Base
from dolma.documents import (
    DOCUMENT_FIELDS,
    BadLine,
    ReadStats,
    bad_line_found,
    bad_lines_not_explained,
    has_document_fields,
    read_documents,
    read_records,
)
from dolma.errors import ConfigError
from dolma.minhash_params import MAX_NUM_PERM, SchemeName, lsh_params, permutations

if TYPE_CHECKING:
    from datasketch import LeanMinHash

Tokenizer = Literal["words", "chars"]
HashName = Literal["xxh3", "sha1"]
VerifyName = Literal["none", "signature", "exact"]
T = TypeVar("T")

DEFAULT_NUM_PERM = 128
DEFAULT_SEED = 1
DEFAULT_NGRAM = 5
DEFAULT_THRESHOLD = 0.8
DEFAULT_MEMORY_BUDGET = 1 << 30
MAX_SEED = (1 << 32) - 1
XXH3_SEED: int = _rust.MINHASH_XXH3_SEED
"""Seed of the default base hash: `hash="xxh3"` signatures equal `datasketch.MinHash(num_perm, seed,
hashfunc=lambda b: xxh3_64(b, XXH3_SEED) & 0xFFFFFFFF)`, with `xxh3_64` = `dolma._rust.xxh3_64`."""
MAX_ANCHORS: int = _rust.MINHASH_MAX_ANCHORS
"""With verification, a bucket member is compared with at most this many earlier members (the bucket's first)."""

RESULT_DTYPE = np.dtype(
    [
        ("line", "<u8"),
        ("ordinal", "<u8"),
        ("cluster", "<u8"),
        ("keeper_line", "<u8"),
        ("keeper_file", "<u4"),
        ("similarity", "<f4"),
    ]
)
"""One record of a result file: a document in a cluster of two or more (the keeper has ordinal == cluster)."""


class MinHashParams(Base):
    """Everything that decides signatures, band keys and verification (one source of truth for Rust)."""

    num_perm: Annotated[int, Meta(description="Signature length (datasketch's num_perm).")] = DEFAULT_NUM_PERM
    seed: Annotated[
        int, Meta(description="Seed of the permutations (numpy RandomState, as datasketch); 0 to 2^32-1.")
    ] = DEFAULT_SEED
    ngram: Annotated[int, Meta(description="Shingle size, in words or characters.")] = DEFAULT_NGRAM
    tokenizer: Annotated[
        Tokenizer, Meta(description="words: Unicode words, lower-cased, no punctuation; chars: code points.")
    ] = "words"
    hash: Annotated[
        HashName, Meta(description="Shingle hash: xxh3 (fast) or sha1 (bit-identical to datasketch.MinHash).")
    ] = "xxh3"
    scheme: Annotated[
        SchemeName, Meta(description="datasketch permutation scheme: affine32 (datasketch >= 2) or legacy.")
    ] = "affine32"
    threshold: Annotated[
        float, Meta(description="Jaccard threshold: chooses bands x rows (unless given) and verification.")
    ] = DEFAULT_THRESHOLD
    weights: Annotated[
        tuple[float, float], Meta(description="(false positive, false negative) weights of the band optimiser.")
    ] = (0.5, 0.5)
    bands: Annotated[int | None, Meta(description="Number of LSH bands (with rows; else from threshold).")] = None
    rows: Annotated[int | None, Meta(description="Signature values per band (with bands).")] = None
    verify: Annotated[
        VerifyName,
        Meta(description="Drop LSH false positives: none, signature (estimated Jaccard) or exact (shingle sets)."),
    ] = "none"

    def __post_init__(self) -> None:
        if not 1 <= self.num_perm <= MAX_NUM_PERM:
            raise ConfigError(f"minhash.num_perm: must be between 1 and {MAX_NUM_PERM}, got {self.num_perm}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ConfigError(f"minhash.seed: must be between 0 and 2^32 - 1 (numpy's RandomState), got {self.seed}")
        if self.ngram < 1:
            raise ConfigError(f"minhash.ngram: must be at least 1, got {self.ngram}")
        if not (0.0 < self.threshold < 1.0):
            raise ConfigError(f"minhash.threshold: must be strictly between 0 and 1, got {self.threshold}")
        fp, fn = self.weights
        if fp < 0 or fn < 0 or fp + fn != 1.0:
            raise ConfigError(f"minhash.weights: two non-negative weights summing to 1, got {list(self.weights)}")
        if (self.bands is None) != (self.rows is None):
            raise ConfigError("minhash.bands: give both bands and rows, or neither (then threshold chooses them)")
        if (
            self.bands is not None
            and self.rows is not None
            and (self.bands < 1 or self.rows < 1 or self.bands * self.rows > self.num_perm)
        ):
            raise ConfigError(
                f"minhash.bands: bands x rows = {self.bands} x {self.rows} must be positive and use at most "
                f"num_perm = {self.num_perm} values"
            )

    def band_rows(self) -> tuple[int, int]:
        """(bands, rows): as given, or datasketch's choice for the threshold and weights."""
        if self.bands is not None and self.rows is not None:
            return self.bands, self.rows
        return lsh_params(self.threshold, self.num_perm, self.weights)

    def engine_json(self) -> str:
        """The complete configuration of the Rust engine (every field given, permutations included)."""
        a, b = permutations(self.num_perm, self.seed, self.scheme)
        bands, rows = self.band_rows()
        return json.dumps(
            {
                "num_perm": self.num_perm,
                "seed": self.seed,
                "ngram": self.ngram,
                "tokenizer": self.tokenizer,
                "hash": self.hash,
                "scheme": self.scheme,
                "permutations": [a, b],
                "bands": bands,
                "rows": rows,
                "shingle_sets": self.verify == "exact",
            }
        )

    @property
    def dtype(self) -> np.dtype:
        """datasketch's dtype for these signatures (uint32 for affine32, uint64 for legacy)."""
        return np.dtype(np.uint32 if self.scheme == "affine32" else np.uint64)


@functools.lru_cache(maxsize=16)
def _signer(engine_json: str) -> _rust.MinHashSigner:
    return _rust.MinHashSigner(engine_json)


def signer(params: MinHashParams) -> _rust.MinHashSigner:
    """The Rust signer for `params` (cached: building it runs the band optimiser once)."""
    return _signer(params.engine_json())


def shingles(text: str, ngram: int = DEFAULT_NGRAM, tokenizer: Tokenizer = "words") -> list[str]:
    """The shingles of `text`, in order (feed them, UTF-8 encoded, to another MinHash to compare)."""
    return _rust.minhash_shingles(text, ngram=ngram, tokenizer=tokenizer)


def signatures(
    texts: Sequence[str],
    num_perm: int = DEFAULT_NUM_PERM,
    seed: int = DEFAULT_SEED,
    ngram: int = DEFAULT_NGRAM,
    tokenizer: Tokenizer = "words",
    hash: HashName = "xxh3",
    scheme: SchemeName = "affine32",
    *,
    threads: int | None = None,
) -> np.ndarray:
    """MinHash signatures of `texts`: an array `(len(texts), num_perm)` of datasketch's dtype (uint32 for
    affine32, uint64 for legacy). With `hash="sha1"`, row `i` equals `datasketch.MinHash(num_perm, seed,
    scheme=scheme)` updated with `shingles(texts[i])` as UTF-8 bytes. A text without shingles gets the empty
    signature (every value 2^32 - 1). Computed in Rust on `threads` threads (default: all cores)."""
    params = MinHashParams(
        num_perm=num_perm, seed=seed, ngram=ngram, tokenizer=tokenizer, hash=hash, scheme=scheme, bands=1, rows=1
    )
    values, _ = signer(params).signatures(list(texts), threads=threads)
    out = np.frombuffer(values, dtype="<u4").reshape(len(texts), num_perm)
    return out.astype(params.dtype)


def band_keys(sigs: np.ndarray, params: MinHashParams) -> np.ndarray:
    """The LSH band keys `(n, bands)` (uint64) of signatures computed with `params`."""
    sigs = np.ascontiguousarray(sigs, dtype="<u4")
    if sigs.ndim != 2 or sigs.shape[1] != params.num_perm:
        raise ValueError(f"signatures must have shape (n, {params.num_perm}), got {sigs.shape}")
    keys = signer(params).band_keys(sigs.tobytes())
    return np.frombuffer(keys, dtype="<u8").reshape(len(sigs), -1).astype(np.uint64)


def to_lean_minhash(row: np.ndarray, seed: int = DEFAULT_SEED, scheme: SchemeName = "affine32") -> LeanMinHash:
    """One signature as a `datasketch.LeanMinHash` (for users who build their own datasketch index)."""
    from datasketch import LeanMinHash

    return LeanMinHash(seed=seed, hashvalues=row, scheme=scheme)


def to_lean_minhashes(
    sigs: np.ndarray, seed: int = DEFAULT_SEED, scheme: SchemeName = "affine32"
) -> list[LeanMinHash]:
    """Every row of `signatures(...)` as a `datasketch.LeanMinHash`."""
    return [to_lean_minhash(row, seed, scheme) for row in sigs]


# ----------------------------------------------------------------------------------------------------------
# Engine steps
# ----------------------------------------------------------------------------------------------------------


class SignStats(msgspec.Struct):
    """What `sign_file` read and wrote."""

    lines: int
    documents: int
    bad_lines: int
    keyed: int
    records: int
    bytes: int


class ClusterStats(msgspec.Struct):
    """What `cluster` found (see `rust_ext/core/src/minhash/cluster.rs` for each count)."""

    files: int
    documents: int
    keyed: int
    buckets: int
    candidate_pairs: int
    comparisons: int
    rejected: int
    clusters: int
    duplicates: int
    records: int
    sort_runs: int
    merge_passes: int
    bytes_spilled: int


def _local(path: str, what: str) -> str:
    if io.is_s3(path):
        raise ConfigError(f"{path}: {what} are local working files (stage them to S3 separately)")
    return path


def sign_file(
    path: str,
    output: str,
    file_index: int,
    params: MinHashParams,
    *,
    skip_bad_lines: bool = False,
    batch_bytes: int = 2 << 20,
    threads: int | None = None,
    key: Sequence[str | int] = ("text",),
    engine: _rust.MinHashSigner | None = None,
) -> SignStats:
    """Signatures and band keys of every document of `path` (local or S3) -> the band-key file `output`.

    Documents are read by the toolkit's reader rules (a local file in Rust, `dolma._rust.MinHashFileWriter.
    sign_documents`; on S3 with `read_documents`): a bad line raises `BadInputError` naming the file, line and
    field, or with `skip_bad_lines` is skipped, logged and counted; both give the same band-key file. The file
    appears only when complete (a killed run leaves nothing, so a resumed run redoes exactly the missing files),
    and its bytes do not depend on `batch_bytes` or `threads`. `file_index` is the file's position in the run's
    stable order. `key` is the path to the text in each document (`dolma._rust.json_path_steps` of a JSONPath);
    a document where it is missing or not a string has no shingles (never a duplicate). `engine`: `signer(params)`
    if already built (it pickles as its engine JSON, so a worker process that receives it runs no band optimiser).
    """
    engine = engine if engine is not None else signer(params)
    size, stamp = source_stamp(path)  # before reading: a change made while it is read is seen by the mark pass
    output = _local(output, "band-key files")
    writer = _rust.MinHashFileWriter(
        engine, output, file_index, path, source_size=size, source_stamp=stamp, threads=threads
    )
    stats = ReadStats()
    try:
        if io.is_s3(path):
            _add_read_in_python(writer, path, skip_bad_lines, stats, batch_bytes, tuple(key))
        else:
            _add_read_in_rust(writer, path, skip_bad_lines, stats, batch_bytes, tuple(key))
        header = writer.finish(stats.lines, stats.bad_lines, stats.bytes)
    except BaseException:
        writer.abort()
        raise
    return SignStats(
        lines=stats.lines,
        documents=header["documents"],
        bad_lines=stats.bad_lines,
        keyed=header["keyed"],
        records=header["records"],
        bytes=stats.bytes,
    )


def _add_read_in_python(
    writer: _rust.MinHashFileWriter,
    path: str,
    skip_bad_lines: bool,
    stats: ReadStats,
    batch_bytes: int,
    key: tuple[str | int, ...],
) -> None:
    """Documents are read and decoded (with the GIL) in a second thread while Rust signs the previous batch
    (without it): the two overlap. Batches keep their order, so the file is the same either way."""
    for batch in _prefetched(_batches(path, skip_bad_lines, stats, batch_bytes, key)):
        writer.add(*batch)


def _add_read_in_rust(
    writer: _rust.MinHashFileWriter,
    path: str,
    skip_bad_lines: bool,
    stats: ReadStats,
    batch_bytes: int,
    key: tuple[str | int, ...],
) -> None:
    """A local file is read, parsed and signed in Rust (reading overlapped with signing, without the GIL), by
    the Python reader's rules; its bad lines come back to be explained, raised or logged here in its words."""
    read = writer.sign_documents(path, list(key), skip_bad_lines=skip_bad_lines, batch_chars=batch_bytes)
    stats.lines, stats.bytes = read["lines"], read["bytes"]
    for line, raw in read["bad"]:  # skipped, or (without skipping) the one that stopped the read: raised
        bad_line_found(path, line, raw, DOCUMENT_FIELDS, skip_bad_lines and not read["stopped"], stats)
    if read["unkept"]:  # skipped past the reader's limit on bad lines kept
        bad_lines_not_explained(path, read["unkept"], read["first_unkept"], len(read["bad"]), stats)
    stats.documents = writer.documents


def source_stamp(path: str) -> tuple[int, int]:
    """What identifies a documents file's version without reading it: (size, stamp), the stamp its mtime in
    nanoseconds (local) or a hash of its ETag (S3). Recorded when it is signed, compared when it is marked."""
    info = io.info(path)
    if info.mtime_ns is not None:
        return info.size, info.mtime_ns & 0xFFFF_FFFF_FFFF_FFFF
    return info.size, _rust.xxh3_64((info.etag or "").encode())


def text_at(obj: object, key: tuple[str | int, ...]) -> str:
    """The string at a parsed JSONPath `key` (steps of field names and list indexes) in a decoded document; ""
    when the path is missing or does not end at a string (such a document has no shingles)."""
    value = obj
    for step in key:
        if isinstance(step, str) and isinstance(value, dict):
            value = value.get(step)
        elif isinstance(step, int) and isinstance(value, list) and step < len(value):
            value = value[step]
        else:
            return ""
    return value if isinstance(value, str) else ""


# (line, text at the key, id, length of `text` in code points): what the band-key file records of a document
Signed = tuple[int, str, str, int]


def _texts(path: str, skip_bad_lines: bool, stats: ReadStats, key: tuple[str | int, ...]) -> Iterator[Signed]:
    """Every document of `path` as signed and recorded, with the toolkit's one bad-line policy."""
    if key == ("text",):
        for lineno, doc in read_documents(path, skip_bad_lines=skip_bad_lines, stats=stats):
            yield lineno, doc.text, doc.id, len(doc.text)
        return

    def decode(line: bytes) -> tuple[str, str, int]:
        obj = msgspec.json.decode(line)
        if not isinstance(obj, dict) or not has_document_fields(obj):
            raise BadLine
        return text_at(obj, key), obj["id"], len(obj["text"])

    for lineno, found, _ in read_records(path, decode, skip_bad_lines=skip_bad_lines, stats=stats):
        if found is not None:
            yield lineno, *found


def _batches(
    path: str, skip_bad_lines: bool, stats: ReadStats, batch_bytes: int, key: tuple[str | int, ...] = ("text",)
) -> Iterator[tuple[list[int], list[str], list[str], list[int]]]:
    """(lines, texts, ids, lengths) in batches of about `batch_bytes` characters of text."""
    lines: list[int] = []
    texts: list[str] = []
    ids: list[str] = []
    lengths: list[int] = []
    pending = 0
    for lineno, text, doc_id, length in _texts(path, skip_bad_lines, stats, key):
        lines.append(lineno)
        texts.append(text)
        ids.append(doc_id)
        lengths.append(length)
        pending += len(text)
        if pending >= batch_bytes:
            yield lines, texts, ids, lengths
            lines, texts, ids, lengths, pending = [], [], [], [], 0
    if texts:
        yield lines, texts, ids, lengths


_DONE = object()


def _prefetched(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """`items`, produced by a background thread up to `depth` ahead; its exceptions are raised here. If the
    consumer stops early, the thread is told to stop and joined."""
    queue: Queue[object] = Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        queue.put((item, None), timeout=0.1)
                        break
                    except Full:
                        continue
                if stop.is_set():
                    return
            queue.put((_DONE, None))
        except BaseException as exc:  # handed to the consumer
            queue.put((_DONE, exc))

    thread = threading.Thread(target=produce, name="minhash-reader", daemon=True)
    thread.start()
    try:
        while True:
            item, exc = queue.get()
            if exc is not None:
                raise exc
            if item is _DONE:
                return
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        while thread.is_alive():
            with contextlib.suppress(Empty):
                queue.get(timeout=0.1)
        thread.join()


def unit_header(path: str, params: MinHashParams | None = None) -> dict:
    """The header of a band-key file after full verification (raises `CorruptFileError` if it is damaged,
    or was made with other parameters than `params`). A resumed run uses it to keep finished files."""
    fingerprint = signer(params).fingerprint if params is not None else None
    return _rust.minhash_unit_header(path, fingerprint)


def unit_documents(path: str, params: MinHashParams | None = None) -> tuple[dict, np.ndarray, np.ndarray, list[str]]:
    """What a verified band-key file records of its documents: `(header, line numbers, lengths of their text
    in code points, ids)`, in document order; the mark pass writes attribute files from them alone."""
    fingerprint = signer(params).fingerprint if params is not None else None
    header, lines, lengths, ids = _rust.minhash_unit_documents(path, fingerprint)
    return header, np.frombuffer(lines, dtype="<u8"), np.frombuffer(lengths, dtype="<u8"), ids


def cluster(
    units: Sequence[str],
    outputs: Sequence[str],
    params: MinHashParams,
    *,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    spill_dir: str | None = None,
    threads: int | None = None,
) -> ClusterStats:
    """Clusters the documents of `units` (band-key files, file `i` made with `file_index=i`) and writes
    `outputs[i]`, the result file of `units[i]` (read it with `read_results`).

    `memory_budget` bounds the external sort (records beyond it are spilled as sorted runs under `spill_dir`,
    default: the directory of the first output); union-find adds 4 bytes and 1 bit per document. Results do not
    depend on `memory_budget`, `threads` or on how documents are split into files (for the same stable order).
    """
    if not outputs:
        return ClusterStats(*([0] * len(ClusterStats.__struct_fields__)))
    for p in [*units, *outputs]:
        _local(p, "band-key and result files")
    spill = spill_dir if spill_dir is not None else os.path.dirname(os.path.abspath(outputs[0]))
    options = {
        "verify": params.verify,
        "threshold": params.threshold,
        "memory_budget": int(memory_budget),
        "spill_dir": _local(spill, "spill directories"),
    }
    os.makedirs(spill, exist_ok=True)
    stats = _rust.minhash_cluster(
        list(units), list(outputs), json.dumps(options), fingerprint=signer(params).fingerprint, threads=threads
    )
    return msgspec.convert(stats, ClusterStats)


def read_results(path: str) -> tuple[dict, np.ndarray]:
    """A result file, verified: `(header, records)` with records a structured array of `RESULT_DTYPE`, in line
    order, one per document in a cluster of two or more (documents not listed are unique)."""
    header, data = _rust.minhash_read_results(path)
    return header, np.frombuffer(data, dtype=RESULT_DTYPE)
