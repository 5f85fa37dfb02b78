"""The mix stream job: documents + attribute sets -> filtered, edited, sampled, size-capped shards.

Unit of work: one documents file and its attribute files (read in lockstep). A unit writes its kept rows to
numbered part files in a hidden staging directory beside the output (each part at most `max_size_in_bytes`
uncompressed, written atomically) and then a small manifest; the manifest is the unit's "done" marker, so
a killed run resumes. When every unit of a stream is done, the driver publishes the final shards
`<path>/<name>-<NNNN>.jsonl.gz`: it walks the parts in input-file order and packs consecutive parts into
shards without going over the cap, by concatenating their compressed bytes (gzip members and zstd frames
concatenate into valid files). Shard contents and numbering depend only on the inputs and the config,
never on the number of processes or on which worker finished first.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import logging
import math
import os
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import msgspec
import zstandard

from dolma import io
from dolma.documents import BadLine, attributes_path, has_document_fields, read_records, with_attributes
from dolma.errors import BadInputError, ConfigError, DolmaError, PathSafetyError
from dolma.executors import make_executor
from dolma.executors.base import Executor, Job, Progress, Summary, Unit, UnitStats
from dolma.executors.summary import RuleCounts, Source, finish_run, now
from dolma.locks import DestinationLock
from dolma.paths import check_name, check_outputs, check_path, claim_dir, remove_claimed_dir
from mixers.mix_config import MixConfig, Stream
from mixers.rules import DROP_INCLUDE, EXCLUDED, Decision, StreamRules, score_in_range
from mixers.sandbox import (
    BATCH_BYTES,
    BATCH_DOCS,
    DEFAULT_SANDBOX,
    RuleSandbox,
    SandboxSettings,
    close_sandboxes,
    sandbox_for,
)

log = logging.getLogger("dolma")

STAGING_PREFIX = ".mix-staging-"
SHARDS_RECORD_SUFFIX = ".mix-shards.json"

_EXTENSIONS = {"gzip": ".jsonl.gz", "zstd": ".jsonl.zst", None: ".jsonl"}
_COMPRESSION_NAMES = {
    None: "gzip",
    "gzip": "gzip",
    "gz": "gzip",
    "zstd": "zstd",
    "zst": "zstd",
    "none": None,
    "": None,
}


def compression_setting(value: str | None, where: str, default: str | None) -> str | None:
    key = value.lower() if isinstance(value, str) else value
    if key is None:
        return default
    if key not in _COMPRESSION_NAMES:
        raise ConfigError(f"{where}: unknown compression '{value}' (gzip, zstd or none)")
    return _COMPRESSION_NAMES[key]


# ----------------------------------------------------------------------------------------------------------
# Manifests
# ----------------------------------------------------------------------------------------------------------


class Part(msgspec.Struct):
    path: str
    bytes: int
    documents: int


class Manifest(msgspec.Struct):
    input: str
    parts: list[Part]
    counters: dict[str, int]


class ShardsRecord(msgspec.Struct):
    """`<path>/.<name>.mix-shards.json`: the shards a stream published into its output directory.

    It is what lets a rerun remove the shards of an earlier, longer output, and only those: while shards are
    being published it lists the old and the new ones (`complete` false), afterwards exactly the new ones.
    """

    shards: list[str]
    complete: bool = True


class StreamReport(msgspec.Struct):
    """What a stream did: documents in and kept, drops per rule, spans replaced, bytes, shards."""

    name: str
    files: int
    documents_in: int
    documents_kept: int
    documents_written: int
    dropped: dict[str, int]
    spans_replaced: int
    bytes_in: int
    bytes_out: int
    shards: list[str]
    sample_rate: float | None
    # e.g. a rule naming an attribute that no attribute file has (check_attribute_keys)
    warnings: list[str] = []


# ----------------------------------------------------------------------------------------------------------
# Sampling
# ----------------------------------------------------------------------------------------------------------


def sample_unit(seed: int, doc_id: str) -> float:
    """A uniform number in [0, 1) fixed by the seed and the document id (blake2b, stable across runs)."""
    digest = hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8, key=seed.to_bytes(8, "little", signed=True))
    return int.from_bytes(digest.digest(), "little") / 2.0**64


def copies_for(rate: float | None, seed: int, doc_id: str) -> int:
    """How many times a document is written: rate 0.3 keeps ~30%; rate 2.5 writes 2 or 3 copies (50% get 3)."""
    if rate is None or rate == 1.0:
        return 1
    whole = math.floor(rate)
    frac = rate - whole
    if frac == 0.0:
        return whole
    return whole + (1 if sample_unit(seed, doc_id) < frac else 0)


# ----------------------------------------------------------------------------------------------------------
# Part writer
# ----------------------------------------------------------------------------------------------------------


DEFAULT_GZIP_LEVEL = 5
"""zlib-ng level 5: about 5% larger than level 6 (the reference's size) at twice the compression speed."""

BLOCK = 4 << 20
"""Uncompressed bytes per compressed block (one gzip member or zstd frame)."""


def block_compressor(compression: str | None, level: int | None) -> Callable[[bytes], bytes] | None:
    """A function turning a block into a self-contained gzip member / zstd frame (None: plain output).

    Members and frames concatenate into one valid file, so blocks are compressed independently, on
    threads (zlib-ng and zstandard release the GIL), and written in order: the bytes do not depend on
    timing or on the number of threads.
    """
    if compression == "gzip":
        from zlib_ng import zlib_ng

        lvl = DEFAULT_GZIP_LEVEL if level is None else level
        return lambda data: zlib_ng.compress(data, lvl, wbits=31)
    if compression == "zstd":
        cctx_level = 3 if level is None else level
        local = threading.local()

        def compress(data: bytes) -> bytes:
            cctx = getattr(local, "cctx", None)
            if cctx is None:
                cctx = local.cctx = zstandard.ZstdCompressor(level=cctx_level)
            return cctx.compress(data)

        return compress
    return None


class PartWriter:
    """Writes rows to part-00000, part-00001, ... in a directory, starting a new part before the cap is passed.

    Rows are gathered into blocks that are compressed on a small thread pool while parsing continues.
    """

    def __init__(
        self,
        directory: str,
        extension: str,
        compression: str | None,
        max_size: int,
        level: int | None = None,
        threads: int = 2,
    ):
        self.directory = directory
        self.extension = extension
        self.max_size = max_size
        self.parts: list[Part] = []
        self._compress = block_compressor(compression, level)
        self._pool = ThreadPoolExecutor(max_workers=max(1, threads)) if self._compress and threads > 0 else None
        self._pending: deque[Future[bytes]] = deque()
        self._max_pending = 2 * max(1, threads)
        self._writer: io.AtomicWriter | None = None
        self._size = 0
        self._docs = 0
        self._buffer: list[bytes] = []
        self._buffered = 0

    def _open(self) -> None:
        path = io.join(self.directory, f"part-{len(self.parts):05d}{self.extension}")
        self._writer = io.AtomicWriter(path, compression=None)
        self._size = 0
        self._docs = 0

    def _drain(self, keep: int) -> None:
        assert self._writer is not None
        while len(self._pending) > keep:
            self._writer.write(self._pending.popleft().result())

    def _flush_buffer(self) -> None:
        if not self._buffer or self._writer is None:
            return
        data = b"".join(self._buffer)
        self._buffer.clear()
        self._buffered = 0
        if self._compress is None:
            self._writer.write(data)
        elif self._pool is None:
            self._writer.write(self._compress(data))
        else:
            self._pending.append(self._pool.submit(self._compress, data))
            self._drain(self._max_pending)

    def write(self, row: bytes) -> None:
        if self._writer is not None and self._size + len(row) > self.max_size and self._docs:
            self._close_current()
        if self._writer is None:
            self._open()
        self._buffer.append(row)
        self._buffered += len(row)
        self._size += len(row)
        self._docs += 1
        if self._buffered >= BLOCK:
            self._flush_buffer()

    def _close_current(self) -> None:
        assert self._writer is not None
        self._flush_buffer()
        self._drain(0)
        self._writer.close()
        self.parts.append(Part(path=self._writer.path, bytes=self._size, documents=self._docs))
        self._writer = None

    def close(self) -> list[Part]:
        try:
            if self._writer is not None:
                self._close_current()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
        return self.parts

    def abort(self) -> None:
        for fut in self._pending:
            fut.cancel()
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._writer is not None:
            self._writer.abort()
            self._writer = None


# ----------------------------------------------------------------------------------------------------------
# The stream job
# ----------------------------------------------------------------------------------------------------------

_doc_decoder = msgspec.json.Decoder(dict)
_encoder = msgspec.json.Encoder()
# Numbers beyond a double's range (1e999) are valid JSON that the fast decoder refuses: kept as written.
_exact_decoder = msgspec.json.Decoder(dict, float_hook=lambda text: msgspec.Raw(text.encode()))


def _decode_document(line: bytes) -> dict[str, Any]:
    """The whole JSON object (unknown fields are carried through untouched), checked by the `Document` rule."""
    try:
        doc = _doc_decoder.decode(line)
    except (msgspec.DecodeError, UnicodeDecodeError):
        doc = _exact_decoder.decode(line)  # raises again unless only a number was out of range
    if not has_document_fields(doc):
        raise BadLine
    return doc


def _document_id(doc: dict[str, Any]) -> Any:
    return doc["id"]


def _merge_attributes(doc: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """The document's own `attributes` (if an object) updated with its attribute files' rows, in order."""
    merged = doc.get("attributes")
    merged = dict(merged) if isinstance(merged, dict) else {}
    for attributes in rows:
        merged.update(attributes)
    doc["attributes"] = merged


class StreamJob(Job):
    """Mixes one documents file (and its attribute files) of a stream into staged parts and a manifest.

    With `count_only`, nothing is written: the unit only counts what survives the filters (for target sizes).
    """

    def __init__(
        self,
        stream: Stream,
        staging: str,
        rate: float | None,
        skip_bad_lines: bool = False,
        count_only: bool = False,
        sandbox: SandboxSettings = DEFAULT_SANDBOX,
    ):
        self.stream = stream
        self.staging = staging
        self.rate = rate
        self.sandbox = sandbox
        self.skip_bad_lines = skip_bad_lines
        self.count_only = count_only
        self.s3 = io.s3_settings()
        self._compiled: CompiledStream | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_compiled"] = None
        return state

    def setup(self) -> None:
        io.configure_s3(self.s3)
        if self._compiled is None:
            self._compiled = compile_stream(self.stream, self.sandbox)

    # -- paths ------------------------------------------------------------------------------------------

    def attribute_files(self, doc_path: str) -> list[str]:
        return [attributes_path(doc_path, name, self.stream.document_dir) for name in self.stream.attributes]

    def unit_dir(self, doc_path: str) -> str:
        return io.join(self.staging, hashlib.sha1(doc_path.encode()).hexdigest()[:16])

    def manifest_path(self, doc_path: str) -> str:
        return io.join(self.unit_dir(doc_path), "manifest.json")

    # -- rows -------------------------------------------------------------------------------------------

    def _rows(self, doc_path: str) -> Iterator[tuple[int, dict[str, Any] | None, int]]:
        """(line number, document with merged attributes or None for a skipped bad line, raw bytes), in lockstep."""
        cin = compression_setting(self.stream.compression.input, f"stream {self.stream.name}", "infer")
        records = read_records(doc_path, _decode_document, skip_bad_lines=self.skip_bad_lines, compression=cin)
        attr_paths = self.attribute_files(doc_path)
        if not attr_paths:
            return records
        return with_attributes(records, doc_path, attr_paths, _document_id, _merge_attributes, cin)

    def _decided(self, doc_path: str) -> Iterator[tuple[int, dict[str, Any] | None, int, Decision | None]]:
        """The rows of `_rows`, each with the decision of the stream's rules (None for a skipped bad line).

        In the mixer process, rules decide each row as it is read; a stream that uses jq sends batches to the
        rule sandbox (one round trip per batch).
        """
        c = self._compiled
        assert c is not None
        if c.sandbox is None:
            decide = c.rules.decide
            for lineno, doc, nbytes in self._rows(doc_path):
                yield lineno, doc, nbytes, None if doc is None else decide(doc)
            return
        for batch in _batches(self._rows(doc_path)):
            good = [(lineno, doc) for lineno, doc, _ in batch if doc is not None]
            decided = c.sandbox.decide_batch([d for _, d in good], doc_path, [n for n, _ in good]) if good else []
            decisions = iter(decided)
            for lineno, doc, nbytes in batch:
                yield lineno, doc, nbytes, None if doc is None else next(decisions)

    # -- one unit ---------------------------------------------------------------------------------------

    def run_unit(self, unit: Unit, progress: Progress) -> UnitStats:
        if self._compiled is None:
            self.setup()
        assert self._compiled is not None
        c = self._compiled
        stream = self.stream
        doc_path = unit.input
        bounds = c.rules.bounds
        min_len = stream.output.min_text_length
        discard = c.discard
        rate = self.rate
        seed = stream.seed
        provenance_name = io.basename(doc_path)
        counters: dict[str, int] = {}
        docs_in = kept = written = bad = bytes_in = bytes_out = spans_replaced = tokens = text_bytes = 0
        drop_include = drop_min_len = drop_sample = 0
        drop_exclude = [0] * len(c.rules.exclude)
        writer = None
        if not self.count_only:
            out = c.output_compression
            writer = PartWriter(
                self.unit_dir(doc_path),
                _EXTENSIONS[out],
                out,
                stream.output.max_size_in_bytes,
                level=stream.compression.level,
                threads=stream.compression.threads,
            )
        encode = _encoder.encode
        last_docs = last_bytes = 0
        try:
            for lineno, doc, nbytes, decision in self._decided(doc_path):
                bytes_in += nbytes
                if doc is None:
                    bad += 1
                    continue
                docs_in += 1
                if docs_in - last_docs >= 1000:
                    progress(docs_in - last_docs, bytes_in - last_bytes)
                    last_docs, last_bytes = docs_in, bytes_in
                assert decision is not None
                verdict, picked = decision
                if verdict == DROP_INCLUDE:
                    drop_include += 1
                    continue
                if verdict >= EXCLUDED:
                    drop_exclude[verdict - EXCLUDED] += 1
                    continue
                if picked is not None:
                    spans_replaced += _replace_spans(doc, picked, bounds, doc_path, lineno)
                text = doc["text"]
                if min_len and len(text) < min_len and len(text.encode("utf-8")) < min_len:
                    drop_min_len += 1
                    continue
                kept += 1
                if self.count_only:
                    text_bytes += len(text.encode("utf-8"))
                    tokens += len(text.split())
                    continue
                copies = copies_for(rate, seed, doc["id"])
                if copies == 0:
                    drop_sample += 1
                    continue
                for path in discard:
                    _discard(doc, path)
                # after the discards, as the reference does: provenance is kept even when `metadata` is discarded
                metadata = doc.get("metadata")
                if not isinstance(metadata, dict):
                    metadata = {}
                    doc["metadata"] = metadata
                metadata["provenance"] = f"{provenance_name}:{lineno}"
                row = encode(doc) + b"\n"
                assert writer is not None
                for _ in range(copies):
                    writer.write(row)
                written += copies
                bytes_out += len(row) * copies
            progress(docs_in - last_docs, bytes_in - last_bytes)
            parts = writer.close() if writer is not None else []
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        counters = {
            "documents_in": docs_in,
            "documents_kept": kept,
            "documents_written": written,
            "bad_lines": bad,
            "bytes_in": bytes_in,
            "bytes_out": bytes_out,
            "spans_replaced": spans_replaced,
            "dropped:include": drop_include,
            "dropped:min_text_length": drop_min_len,
            "dropped:sampling": drop_sample,
        }
        for idx, n in enumerate(drop_exclude):
            counters[f"dropped:exclude[{idx}]"] = n
        if self.count_only:
            counters["kept_text_bytes"] = text_bytes
            counters["kept_tokens"] = tokens
        else:
            manifest = Manifest(input=doc_path, parts=parts, counters=counters)
            io.write_bytes(self.manifest_path(doc_path), msgspec.json.encode(manifest))
        return UnitStats(
            documents_in=docs_in,
            documents_out=written,
            bad_lines=bad,
            bytes_in=bytes_in,
            bytes_out=bytes_out,
            counters=counters,
        )


def _discard(doc: dict[str, Any], dotted: tuple[str, ...]) -> None:
    node: Any = doc
    for part in dotted[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return
    if isinstance(node, dict):
        node.pop(dotted[-1], None)


def _batches(
    rows: Iterator[tuple[int, dict[str, Any] | None, int]],
) -> Iterator[list[tuple[int, dict[str, Any] | None, int]]]:
    """Rows in batches of at most BATCH_DOCS documents / BATCH_BYTES input bytes (rules are decided per batch).

    A bad line ends the batch before it: the rows read so far are yielded first, so an error in an earlier
    document (a failing rule) is still the one reported.
    """
    batch: list[tuple[int, dict[str, Any] | None, int]] = []
    size = 0
    try:
        for row in rows:
            batch.append(row)
            size += row[2]
            if len(batch) >= BATCH_DOCS or size >= BATCH_BYTES:
                yield batch
                batch, size = [], 0
    except DolmaError:
        if batch:
            yield batch
        raise
    if batch:
        yield batch


def _replace_spans(
    doc: dict[str, Any], picked: list[Any], bounds: list[tuple[Any, Any, str]], path: str, lineno: int
) -> int:
    """Apply every span replacement at once: spans sorted by start; a span overlapping an earlier one is skipped.

    `picked[i]` is what span selector i selected in this document, `bounds[i]` its (min, max, replacement).
    """
    found: list[tuple[int, int, int, str]] = []
    order = 0
    for spans, (low, high, template) in zip(picked, bounds):
        if not isinstance(spans, list):
            continue
        for span in spans:
            if not isinstance(span, list) or len(span) < 3:
                continue
            start, end, score = span[0], span[1], span[2]
            if type(start) is not int or type(end) is not int:
                raise BadInputError(path, lineno, f"span offsets must be integers, got {span!r}", "attributes")
            if score_in_range(score, low, high):
                found.append((start, order, end, template))
                order += 1
    if not found:
        return 0
    found.sort()
    text: str = doc["text"]
    n = len(text)
    pieces: list[str] = []
    pos = 0
    done = 0
    for start, _, end, template in found:
        start = max(0, start)
        end = min(end, n)
        if start < pos or end < start:
            continue
        pieces.append(text[pos:start])
        pieces.append(template.replace("{}", text[start:end]) if "{}" in template else template)
        pos = end
        done += 1
    pieces.append(text[pos:])
    doc["text"] = "".join(pieces)
    return done


class CompiledStream:
    """A stream's rules and output settings, compiled once per process.

    A stream with jq expressions decides its documents in this process's rule sandbox (started here, so jq
    errors surface at start-up); JSONPath and typed rules alone run right here.
    """

    def __init__(self, stream: Stream, sandbox: SandboxSettings):
        where = f"stream '{stream.name}'"
        self.rules = StreamRules(stream)
        self.sandbox: RuleSandbox | None = sandbox_for(stream, sandbox) if self.rules.uses_jq else None
        self.discard = [tuple(f.split(".")) for f in stream.output.discard_fields]
        self.output_compression = compression_setting(stream.compression.output, f"{where} compression.output", "gzip")


def compile_stream(stream: Stream, sandbox: SandboxSettings) -> CompiledStream:
    """Compile a stream's rules once (per process): filters, span selectors, output settings."""
    return CompiledStream(stream, sandbox)


# ----------------------------------------------------------------------------------------------------------
# Driver: planning, checks, publishing
# ----------------------------------------------------------------------------------------------------------


def stream_fingerprint(stream: Stream, rate: float | None) -> str:
    """Identifies the stream's settings: staged parts of a different config are never reused."""
    payload = msgspec.json.encode([msgspec.to_builtins(stream), rate])
    return hashlib.sha1(payload).hexdigest()[:12]


def plan_stream(stream: Stream) -> list[str]:
    """The stream's documents files (sorted, de-duplicated), with every attribute file present."""
    if not stream.documents:
        raise ConfigError(f"stream '{stream.name}': no documents given")
    files = io.expand_documents(stream.documents, f"stream '{stream.name}'")
    if stream.attributes:
        missing = []
        for path in files:
            for name in stream.attributes:
                attr = attributes_path(path, name, stream.document_dir)
                if not io.exists(attr):
                    missing.append(f"{attr} (for {path})")
        if missing:
            shown = "\n  ".join(missing[:10])
            more = f"\n  ... and {len(missing) - 10} more" if len(missing) > 10 else ""
            raise ConfigError(f"stream '{stream.name}': missing attribute files:\n  {shown}{more}")
    return files


def stream_inputs(stream: Stream, files: list[str]) -> list[str]:
    """Every file a stream reads: its documents and their attribute files."""
    attrs = [attributes_path(path, name, stream.document_dir) for path in files for name in stream.attributes]
    return [*files, *attrs]


def shards_record_path(out_dir: str, name: str) -> str:
    return io.join(out_dir, f".{name}{SHARDS_RECORD_SUFFIX}")


def recorded_shards(out_dir: str, name: str) -> set[str]:
    """Shard names the stream's record lists (each checked to be a shard name of this stream, nothing else)."""
    path = shards_record_path(out_dir, name)
    if not io.exists(path):
        return set()
    try:
        record = msgspec.json.decode(io.read_bytes(path), type=ShardsRecord)
    except msgspec.DecodeError as exc:
        raise DolmaError(f"{path}: unreadable shard record of stream '{name}' ({exc}); remove it by hand") from None
    prefix = f"{name}-"
    for shard in record.shards:
        if not (shard.startswith(prefix) and _SHARD.fullmatch(shard[len(prefix) :])):
            raise DolmaError(f"{path}: lists {shard!r}, which is not a shard name of stream '{name}'")
    return set(record.shards)


def check_shard_names_owned(stream: Stream, out_dir: str) -> None:
    """Refuse an output directory holding files named like this stream's shards that the stream did not write.

    Publishing would overwrite them, and a rerun removes extra shards: both only ever touch files the
    stream's own record lists.
    """
    owned = recorded_shards(out_dir, stream.name)
    prefix = f"{stream.name}-"
    for entry in io.listdir(out_dir):
        if entry.startswith(prefix) and _SHARD.fullmatch(entry[len(prefix) :]) and entry not in owned:
            raise PathSafetyError(
                f"stream '{stream.name}': {io.join(out_dir, entry)} is named like one of its shards but was not "
                f"written by it (its record {shards_record_path(out_dir, stream.name)} does not list it); mix would "
                "overwrite or remove it: move it away or choose another output.path"
            )


_ATTRIBUTE_KEY = re.compile(rb'"((?:[^"\\\n]|\\.){1,512})"\s*:\s*\[')
"""An attribute key in an attribute file's bytes: a quoted name followed by its span list."""
MAX_SUGGESTION_KEYS = 100_000
"""Distinct attribute keys collected for "did you mean" suggestions (bounds memory on odd files)."""


def check_attribute_keys(stream: Stream, files: list[str], keys: set[str]) -> list[str]:
    """Check that the attribute keys the rules name occur in the stream's attribute files; returns warnings.

    A key that no file contains is an error when a key of the files is a close match (a typo), otherwise a
    warning and the run goes on (the rule may guard an optional attribute, as in `@.dummy && ...`). A cheap byte
    scan (no JSON parsing) that stops as soon as every key has been seen; the files' keys are collected for
    suggestions only when one is missing.
    """
    if not keys or not stream.check_attributes:
        return []
    if not stream.attributes:
        raise ConfigError(
            f"stream '{stream.name}': rules use attributes ({', '.join(sorted(keys))}) but the stream lists no "
            "attribute sets (set 'attributes')"
        )
    cin = compression_setting(stream.compression.input, f"stream {stream.name}", "infer")
    todo = {k: b'"' + k.encode() + b'"' for k in keys}
    found: set[str] = set()
    for path in files:
        for name in stream.attributes:
            attr = attributes_path(path, name, stream.document_dir)
            tail = b""
            for chunk in io.iter_chunks(attr, compression=cin):
                block = tail + chunk
                for key in [k for k, needle in todo.items() if needle in block]:
                    del todo[key]
                if not todo:
                    return []
                if len(found) < MAX_SUGGESTION_KEYS:
                    found.update(m.group(1).decode("utf-8", "replace") for m in _ATTRIBUTE_KEY.finditer(block))
                tail = block[-600:]
    typos = []
    for key in sorted(todo):
        close = difflib.get_close_matches(key, sorted(found), n=1, cutoff=0.8)
        if close:
            typos.append(f"{key!r} (did you mean {close[0]!r}?)")
    if typos:
        raise ConfigError(
            f"stream '{stream.name}': rules name attribute(s) {', '.join(typos)} that no attribute file of the "
            f"sets {stream.attributes} contains (set check_attributes: false to allow it)"
        )
    return [
        f"stream '{stream.name}': no attribute file of the sets {stream.attributes} contains {key!r}; rules "
        "naming it never see it (a guard such as `@.key && ...` is false)"
        for key in sorted(todo)
    ]


_SHARD = re.compile(r"\d{4,}\.jsonl(?:\.gz|\.zst)?")


def publish(stream: Stream, manifests: list[Manifest], extension: str) -> list[str]:
    """Pack staged parts, in input order, into `<path>/<name>-<NNNN><ext>` shards under the size cap.

    Shards of an earlier run that this run does not write again are removed afterwards, but only those the
    stream's shard record lists (see `ShardsRecord`).
    """
    cap = stream.output.max_size_in_bytes
    groups: list[list[Part]] = []
    size = 0
    for manifest in manifests:
        for part in manifest.parts:
            if not groups or (size + part.bytes > cap and groups[-1]):
                groups.append([])
                size = 0
            groups[-1].append(part)
            size += part.bytes
    out_dir = io.normalize(stream.output.path)
    names = [f"{stream.name}-{idx:04d}{extension}" for idx in range(len(groups))]
    record = shards_record_path(out_dir, stream.name)
    before = recorded_shards(out_dir, stream.name)
    io.write_bytes(record, msgspec.json.encode(ShardsRecord(shards=sorted(before | set(names)), complete=False)))
    shards = []
    for name, group in zip(names, groups):
        final = io.join(out_dir, name)
        shards.append(final)
        if len(group) == 1 and not io.is_s3(final) and not io.is_s3(group[0].path):
            temp = io.temp_name(final)
            os.link(group[0].path, temp)
            os.replace(temp, final)
            continue
        with io.AtomicWriter(final, compression=None) as out:
            for part in group:
                with io.open_raw_read(part.path) as raw:
                    while block := raw.read(io.READ_CHUNK):
                        out.write(block)
    for name in sorted(before - set(names)):
        io.remove(io.join(out_dir, name))
    io.write_bytes(record, msgspec.json.encode(ShardsRecord(shards=names, complete=True)))
    return shards


def _sum_counters(items: list[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for counters in items:
        for key, value in counters.items():
            total[key] = total.get(key, 0) + value
    return total


def _executor(config: MixConfig, name: str, ignore_existing: bool) -> Executor:
    """LocalExecutor or SparkExecutor (`executor: spark`): per-file units run the same either way."""
    return make_executor(config, name, ignore_existing=ignore_existing)


class StreamFailed(DolmaError):
    """A stream's files failed: the run stops after writing its run summary."""

    def __init__(self, title: str, summary: Summary):
        super().__init__(f"{title}: {summary.failed} file(s) failed")
        self.summary = summary


def resolve_rate(config: MixConfig, stream: Stream, files: list[str]) -> float | None:
    """The sampling rate: given, or computed from a counting pass for target_bytes / target_tokens."""
    targets = [t for t in (stream.sample_rate, stream.target_bytes, stream.target_tokens) if t is not None]
    if len(targets) > 1:
        raise ConfigError(f"stream '{stream.name}': give only one of sample_rate, target_bytes, target_tokens")
    if stream.sample_rate is not None:
        if stream.sample_rate < 0 or not math.isfinite(stream.sample_rate):
            raise ConfigError(f"stream '{stream.name}': sample_rate must be a finite number >= 0")
        return stream.sample_rate
    if stream.target_bytes is None and stream.target_tokens is None:
        return None
    job = StreamJob(
        stream,
        staging="",
        rate=None,
        skip_bad_lines=config.skip_bad_lines,
        count_only=True,
        sandbox=sandbox_settings(config),
    )
    units = [Unit(input=path, outputs=()) for path in files]
    summary = _executor(config, f"count {stream.name}", ignore_existing=True).run(job, units)
    if not summary.ok:
        raise StreamFailed(f"dolma mix: counting stream '{stream.name}'", summary)
    # the counting job reports its totals through UnitStats.counters
    totals = summary.stats
    counted = totals.counters.get("kept_tokens" if stream.target_tokens is not None else "kept_text_bytes", 0)
    target = stream.target_tokens if stream.target_tokens is not None else stream.target_bytes
    assert target is not None
    if counted == 0:
        raise DolmaError(f"stream '{stream.name}': nothing survives the filters, cannot reach target {target}")
    rate = target / counted
    log.info("stream %s: %d counted after filters, target %d -> sample_rate %.6f", stream.name, counted, target, rate)
    return rate


def mix_stream(config: MixConfig, stream: Stream, files: list[str]) -> tuple[StreamReport, Summary]:
    compiled = compile_stream(stream, sandbox_settings(config))  # rule errors surface before any file is touched
    out_dir = io.normalize(stream.output.path)
    warnings = check_attribute_keys(stream, files, compiled.rules.attribute_keys)
    for warning in warnings:
        log.warning("%s", warning)
    rate = resolve_rate(config, stream, files)
    extension = _EXTENSIONS[compiled.output_compression]
    staging = io.join(out_dir, f"{STAGING_PREFIX}{stream.name}-{stream_fingerprint(stream, rate)}")
    job = StreamJob(stream, staging, rate, skip_bad_lines=config.skip_bad_lines, sandbox=sandbox_settings(config))
    units = [Unit(input=path, outputs=(job.manifest_path(path),)) for path in files]
    if config.dryrun:
        for unit in units:
            print(f"{unit.input} + {len(stream.attributes)} attribute file(s) -> {out_dir}/{stream.name}-*{extension}")
        print(f"stream {stream.name}: {len(units)} file(s), sample_rate {rate}")
        return StreamReport(stream.name, len(files), 0, 0, 0, {}, 0, 0, 0, [], rate), Summary()
    claim_dir(staging, "mix")
    # A run killed while publishing leaves hidden links or copies beside the shards (the staged parts are
    # cleaned by the executor, beside the manifests).
    io.remove_dead_temporaries([out_dir])
    summary = _executor(config, f"mix {stream.name}", config.ignore_existing).run(job, units)
    summary.warnings = warnings
    if not summary.ok:
        raise StreamFailed(f"dolma mix: stream '{stream.name}'", summary)
    manifests = [msgspec.json.decode(io.read_bytes(u.outputs[0]), type=Manifest) for u in units]
    shards = publish(stream, manifests, extension)
    remove_claimed_dir(staging)
    totals = _sum_counters([m.counters for m in manifests])
    dropped = {"include": totals.get("dropped:include", 0)}
    flt = stream.filter
    if flt is not None:
        for idx, rule in enumerate(compiled.rules.exclude):
            dropped[f"exclude[{idx}] {rule.name}"] = totals.get(f"dropped:exclude[{idx}]", 0)
    dropped["min_text_length"] = totals.get("dropped:min_text_length", 0)
    dropped["sampling"] = totals.get("dropped:sampling", 0)
    dropped["bad_lines"] = totals.get("bad_lines", 0)
    report = StreamReport(
        name=stream.name,
        files=len(files),
        documents_in=totals.get("documents_in", 0),
        documents_kept=totals.get("documents_kept", 0),
        documents_written=totals.get("documents_written", 0),
        dropped=dropped,
        spans_replaced=totals.get("spans_replaced", 0),
        bytes_in=totals.get("bytes_in", 0),
        bytes_out=totals.get("bytes_out", 0),
        shards=shards,
        sample_rate=rate,
        warnings=warnings,
    )
    summary.stats = UnitStats(
        documents_in=report.documents_in,
        documents_out=report.documents_written,
        bad_lines=dropped["bad_lines"],
        bytes_in=report.bytes_in,
        bytes_out=report.bytes_out,
        counters={"dropped: " + k.split(" ", 1)[0]: v for k, v in dropped.items() if k != "bad_lines"}
        | {"spans replaced": report.spans_replaced, "shards written": len(shards)},
    )
    return report, summary


def stream_rules(stream: Stream, report: StreamReport) -> list[RuleCounts]:
    """What each rule of a stream did, for the run summary (rules named as written in the config)."""
    rules: list[RuleCounts] = []
    flt = stream.filter
    if flt is not None and flt.include:
        text = " or ".join(r if isinstance(r, str) else msgspec.json.encode(r).decode() for r in flt.include)
        rules.append(
            RuleCounts(
                stream=stream.name,
                rule=f"include: {text}",
                kind="filter",
                documents_removed=report.dropped.get("include", 0),
            )
        )
    for key, value in report.dropped.items():
        if key.startswith("exclude["):
            rules.append(
                RuleCounts(stream=stream.name, rule=key.split(" ", 1)[1], kind="filter", documents_removed=value)
            )
    if stream.output.min_text_length:
        rules.append(
            RuleCounts(
                stream=stream.name,
                rule=f"min_text_length: {stream.output.min_text_length}",
                kind="filter",
                documents_removed=report.dropped.get("min_text_length", 0),
            )
        )
    if stream.span_replacement:
        text = "; ".join(r.span for r in stream.span_replacement)
        rules.append(
            RuleCounts(stream=stream.name, rule=text, kind="span_replacement", spans_replaced=report.spans_replaced)
        )
    if report.sample_rate is not None:
        rules.append(
            RuleCounts(
                stream=stream.name,
                rule=f"sample_rate: {report.sample_rate:.6g}",
                kind="sample",
                documents_removed=report.dropped.get("sampling", 0),
            )
        )
    return rules


def _combined(summaries: list[Summary]) -> Summary:
    """The streams' executor summaries as one (a mix run's run summary covers every stream)."""
    total = Summary()
    for summary in summaries:
        total.units += summary.units
        total.skipped += summary.skipped
        total.succeeded += summary.succeeded
        total.failures.extend(summary.failures)
        total.stats.add(summary.stats)
        total.seconds += summary.seconds
        total.warnings.extend(summary.warnings)
    return total


def finish_mix(
    config: MixConfig, done: list[tuple[Stream, StreamReport, Summary]], failed: StreamFailed | None, started: Any
) -> None:
    """Write the mix run summary (per stream: sources and rules) and print it."""
    summaries = [summary for _, _, summary in done] + ([failed.summary] if failed is not None else [])
    total = _combined(summaries)
    sources = [
        Source(
            name=stream.name,
            documents_in=r.documents_in,
            documents_out=r.documents_written,
            bytes_in=r.bytes_in,
            bytes_out=r.bytes_out,
        )
        for stream, r, _ in done
    ]
    extra = {"sources": sources, "rules": [rule for stream, r, _ in done for rule in stream_rules(stream, r)]}
    finish_run(
        total,
        command="mix",
        title=f"dolma mix: {', '.join(s.name for s in config.streams)}",
        config=config,
        outputs=[io.join(io.normalize(s.output.path), s.name) for s in config.streams],
        started=started,
        extra=extra,
    )


def check_stream_names(stream: Stream, idx: int) -> None:
    """Names that become path components (shard and staging names, attribute set directories) are single ones."""
    check_name(stream.name, f"streams[{idx}].name")
    check_name(stream.document_dir, f"streams[{idx}].document_dir")
    for n, name in enumerate(stream.attributes):
        check_name(name, f"streams[{idx}].attributes[{n}]")


def sandbox_settings(config: MixConfig) -> SandboxSettings:
    """The time and memory bounds of the jq rule sandbox, checked."""
    if not (math.isfinite(config.rule_timeout) and config.rule_timeout > 0):
        raise ConfigError(f"mix: rule_timeout must be a positive number of seconds, got {config.rule_timeout}")
    if config.rule_memory_mb < 0:
        raise ConfigError(f"mix: rule_memory_mb must be >= 0 (0: no limit), got {config.rule_memory_mb}")
    return SandboxSettings(timeout=float(config.rule_timeout), memory_mb=config.rule_memory_mb)


LOCK_PREFIX = ".mix-lock-"


def stream_lock(out_dir: str, name: str) -> DestinationLock:
    """The lock of one stream's destination (its staging directory and shards `<out_dir>/<name>-*`)."""
    return DestinationLock(
        io.join(out_dir, f"{LOCK_PREFIX}{name}"), f"mix output {io.join(out_dir, name)}-*", "dolma mix"
    )


def run_mix(config: MixConfig) -> int:
    io.configure_s3(config.s3)
    if not config.streams:
        raise ConfigError("mix: no streams given (set 'streams')")
    names = [s.name for s in config.streams]
    if len(set(names)) != len(names):
        raise ConfigError("mix: two streams have the same name")
    outputs = [(io.normalize(s.output.path), s.name) for s in config.streams]
    if len(set(outputs)) != len(outputs):
        raise ConfigError("mix: two streams write the same shards (same output.path and name)")
    if config.report is not None:
        check_path(config.report, "report")
    settings = sandbox_settings(config)
    try:
        planned = []
        for idx, stream in enumerate(config.streams):  # validate every stream before running any
            check_stream_names(stream, idx)
            compile_stream(stream, settings)
            if stream.output.max_size_in_bytes <= 0:
                raise ConfigError(f"stream '{stream.name}': output.max_size_in_bytes must be positive")
            files = plan_stream(stream)
            out_dir = io.normalize(check_path(stream.output.path, f"streams[{idx}].output.path"))
            inputs = stream_inputs(stream, files)
            check_outputs(f"mix: stream '{stream.name}'", inputs, dirs=[out_dir], document_dir=stream.document_dir)
            if config.report:
                check_outputs("mix: report", inputs, [io.normalize(config.report)], document_dir=stream.document_dir)
            check_shard_names_owned(stream, out_dir)
            planned.append((stream, files))
        if config.dryrun:
            reports = [mix_stream(config, stream, files)[0] for stream, files in planned]
        else:
            started = now()
            done: list[tuple[Stream, StreamReport, Summary]] = []
            with contextlib.ExitStack() as held:
                # every destination is ours before anything is written (checked above: never inside the inputs)
                for out_dir, name in sorted(outputs):
                    held.enter_context(stream_lock(out_dir, name))
                try:
                    for stream, files in planned:
                        done.append((stream, *mix_stream(config, stream, files)))
                except StreamFailed as failed:
                    finish_mix(config, done, failed, started)
                    raise
                finish_mix(config, done, None, started)
            reports = [report for _, report, _ in done]
    finally:
        close_sandboxes()
    if config.report:
        io.remove_dead_temporaries([io.dirname(io.normalize(config.report))])
        io.write_bytes(io.normalize(config.report), msgspec.json.format(msgspec.json.encode(reports)) + b"\n")
    return 0


CONFIG = MixConfig
"""The command's config type and entry point, as `dolma.commands.Command.load` expects them."""
run = run_mix
