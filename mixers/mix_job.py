"""The mix stream job: one documents file and its attribute files -> filtered, edited, sampled part files."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import msgspec

from dolma import atomic, io
from dolma.documents import BadLine, attributes_path, has_document_fields, read_records, with_attributes
from dolma.errors import BadInputError, DolmaError
from dolma.executors.base import Job, Progress, Unit, UnitStats
from mixers.mix_config import Stream
from mixers.mix_parts import _EXTENSIONS, Manifest, PartWriter, compression_setting, copies_for
from mixers.rules import DROP_INCLUDE, EXCLUDED, Decision, StreamRules, score_in_range
from mixers.sandbox import (
    BATCH_BYTES,
    BATCH_DOCS,
    DEFAULT_SANDBOX,
    RuleSandbox,
    SandboxSettings,
    sandbox_for,
)

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
            atomic.write_bytes(self.manifest_path(doc_path), msgspec.json.encode(manifest))
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
