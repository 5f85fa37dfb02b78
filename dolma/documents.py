"""Dolma documents and attribute rows: typed structs, validated streaming readers, path derivation."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import msgspec

from dolma import io
from dolma.errors import BadInputError, PathSafetyError

log = logging.getLogger("dolma")
T = TypeVar("T")


class Document(msgspec.Struct, kw_only=True):
    """One document as taggers see it. Extra fields of the input line are not decoded (and not needed)."""

    id: str
    text: str
    source: str = ""
    added: str | None = None
    created: str | None = None
    version: str | None = None
    metadata: dict[str, Any] | None = None


class Span(msgspec.Struct, frozen=True):
    """A scored character range of a document: `[start, end)` in code points, as in Dolma attributes."""

    start: int
    end: int
    type: str
    score: float = 1.0


class AttributeRow(msgspec.Struct, omit_defaults=True):
    """One line of an attributes file (key order: id, attributes, source, as the reference writes it)."""

    id: str
    attributes: dict[str, list[list[float | int]]]
    source: str | None = None


class ReadStats(msgspec.Struct):
    """What a reader saw: lines read and bad lines skipped (never silently lost)."""

    lines: int = 0
    documents: int = 0
    bad_lines: int = 0
    bytes: int = 0


_decoder = msgspec.json.Decoder(Document)

_JSON_TYPE_NAMES = {
    type(None): "null",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    str: "a string",
    list: "an array",
    dict: "an object",
}

FieldRule = tuple[str, tuple[type, ...], bool]
"""(field name, accepted JSON types, required)."""

DOCUMENT_FIELDS: tuple[FieldRule, ...] = (
    ("id", (str,), True),
    ("text", (str,), True),
    ("source", (str,), False),
    ("added", (str, type(None)), False),
    ("created", (str, type(None)), False),
    ("version", (str, type(None)), False),
    ("metadata", (dict, type(None)), False),
)


_SURROGATE = "invalid string (a lone UTF-16 surrogate escape, not a Unicode character)"


def has_document_fields(obj: dict[str, Any]) -> bool:
    """Whether a decoded JSON object has the fields of a document with their types (the `Document` rule).

    For readers that keep the whole object (the mixer): with the JSON decoding itself (which refuses invalid
    UTF-8 and lone surrogate escapes anywhere in the line) it accepts exactly the lines `Document` accepts, so
    every reader agrees on which lines are bad and attribute files mirror the same good lines.
    """
    for name, types, required in DOCUMENT_FIELDS:
        value = obj.get(name, _ABSENT)
        if value is _ABSENT:
            if required:
                return False
        elif type(value) not in types:
            return False
    return True


_ABSENT = object()


class _NotJson(ValueError):
    pass


def _not_json(token: str) -> Any:
    raise _NotJson(token)


def _json_type(value: Any) -> str:
    return _JSON_TYPE_NAMES.get(type(value), "a value")


def _expected(types: tuple[type, ...]) -> str:
    return " or ".join(dict.fromkeys(_JSON_TYPE_NAMES[t] for t in types))


def _lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
    return False


def explain_bad_line(line: bytes, fields: tuple[FieldRule, ...] = DOCUMENT_FIELDS) -> tuple[str, str | None]:
    """Why a line is not a valid document, in this project's own words: (reason, field or None).

    Called only after the fast decoder refused the line, so it can afford a second, slower parse. Messages never
    quote a dependency's wording (a new release of a parser must not change what users and tests see).
    """
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"invalid UTF-8 (byte 0x{line[exc.start]:02x} at offset {exc.start})", None
    try:
        obj = json.loads(text, parse_constant=_not_json)
    except _NotJson as exc:
        return f"invalid JSON ({exc.args[0]} is not a JSON value)", None
    except json.JSONDecodeError as exc:
        return f"invalid JSON (error at character {exc.pos + 1} of {len(text)})", None
    except RecursionError:
        return "invalid JSON (nested too deeply)", None
    if not isinstance(obj, dict):
        return f"expected a JSON object, got {_json_type(obj)}", None
    for name, types, required in fields:
        if name not in obj:
            if required:
                return "missing required field", name
            continue
        value = obj[name]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            return f"expected {_expected(types)}, got {_json_type(value)}", name
        if _lone_surrogate(value):
            return _SURROGATE, name
    for name, value in obj.items():
        if _lone_surrogate(name) or _has_lone_surrogate(value):
            # A key holding a lone surrogate is shown with it escaped (printable, and as the Rust reader says).
            return _SURROGATE, name.encode("utf-8", "backslashreplace").decode("utf-8")
    return "not a valid document", None


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return _lone_surrogate(value)


def decode_document(line: bytes, path: str, lineno: int) -> Document:
    try:
        return _decoder.decode(line)
    except (msgspec.DecodeError, UnicodeDecodeError):
        reason, field = explain_bad_line(line)
        raise BadInputError(path, lineno, reason, field) from None


class BadLine(Exception):
    """Raised by a line decoder given to `read_records`: the line is not a valid record.

    Raised as `BadLine(reason, field)` it carries its own explanation; without arguments the line is explained
    afterwards (`explain_bad_line`)."""


def bad_line_found(
    path: str,
    lineno: int,
    line: bytes,
    fields: tuple[FieldRule, ...],
    skip_bad_lines: bool,
    stats: ReadStats,
    explained: tuple[str, str | None] | None = None,
) -> None:
    """The bad-line policy, for `read_records` and for readers of another language that hand bad lines back
    as read (the MinHash sign pass's Rust reader): raise BadInputError naming file, line, reason and field, or,
    with `skip_bad_lines`, log it and count it in `stats.bad_lines`."""
    err = BadInputError(path, lineno, *(explained or explain_bad_line(line, fields)))
    if not skip_bad_lines:
        raise err from None
    log.warning("skipping %s", err)
    stats.bad_lines += 1


def bad_lines_not_explained(path: str, count: int, first: int, explained: int, stats: ReadStats) -> None:
    """The policy's summary for a reader that explains only its first `explained` skipped bad lines (a damaged
    file must not fill memory with them): the `count` others, from line `first` on, are counted in
    `stats.bad_lines` and logged in one warning."""
    log.warning(
        "skipping %d more bad lines of %s, the first at line %d (only the first %d are explained)",
        count,
        path,
        first,
        explained,
    )
    stats.bad_lines += count


def read_records(
    path: str,
    decode: Callable[[bytes], T],
    fields: tuple[FieldRule, ...] = DOCUMENT_FIELDS,
    *,
    skip_bad_lines: bool = False,
    stats: ReadStats | None = None,
    compression: str | None = "infer",
) -> Iterator[tuple[int, T | None, int]]:
    """The one document reader and bad-line policy: (line number, record or None, bytes) per non-blank line.

    `decode` turns a line into whatever the command needs (a `Document`, the raw dict the mixer carries through
    untouched, or a struct of configured field names) and raises `BadLine`, `msgspec.DecodeError` or
    `UnicodeDecodeError` for a bad one. A bad line raises BadInputError naming file, line, reason and field
    (`explain_bad_line` with `fields`), or, with `skip_bad_lines`, is logged, counted in `stats.bad_lines` and
    yielded as None, so a caller reading attribute files in lockstep consumes no attribute row for it (taggers
    and the deduper wrote none). Blank lines are not documents: counted in `stats.lines` and `stats.bytes` only.
    """
    stats = stats if stats is not None else ReadStats()
    for lineno, line in io.iter_lines(path, compression=compression):
        stats.lines += 1  # counted as read: progress bars show the bytes live
        nbytes = len(line) + 1
        stats.bytes += nbytes
        if not line or line.isspace():
            continue
        try:
            record = decode(line)
        except (BadLine, msgspec.DecodeError, UnicodeDecodeError) as exc:
            # a decoder that knows what is wrong says so: BadLine(reason, field)
            explained = exc.args if isinstance(exc, BadLine) and len(exc.args) == 2 else None
            bad_line_found(path, lineno, line, fields, skip_bad_lines, stats, explained)
            yield lineno, None, nbytes
            continue
        stats.documents += 1
        yield lineno, record, nbytes


def read_documents(
    path: str, skip_bad_lines: bool = False, stats: ReadStats | None = None
) -> Iterator[tuple[int, Document]]:
    """Yield (line number, Document) from a documents file (`read_records` with the `Document` rule)."""
    for lineno, doc, _ in read_records(path, _decoder.decode, skip_bad_lines=skip_bad_lines, stats=stats):
        if doc is not None:
            yield lineno, doc


class AttributeLine(msgspec.Struct):
    """An attribute row as read back: any JSON object; `id` and `attributes` are checked by whoever uses them."""

    id: Any = None
    attributes: dict[str, Any] | None = None


_attribute_decoder = msgspec.json.Decoder(AttributeLine)


def read_attribute_lines(path: str, compression: str | None = "infer") -> Iterator[tuple[int, AttributeLine]]:
    """(line, row) of an attribute file, blank lines skipped; a line that is not a JSON object is an error."""
    for lineno, line in io.iter_lines(path, compression=compression):
        if not line or line.isspace():
            continue
        try:
            yield lineno, _attribute_decoder.decode(line)
        except (msgspec.DecodeError, UnicodeDecodeError):
            reason, field = explain_bad_line(line, ())
            raise BadInputError(path, lineno, f"invalid attribute row: {reason}", field) from None


def with_attributes(
    records: Iterator[tuple[int, T | None, int]],
    doc_path: str,
    attribute_paths: list[str],
    id_of: Callable[[T], Any],
    attach: Callable[[T, list[dict[str, Any]]], None],
    compression: str | None = "infer",
) -> Iterator[tuple[int, T | None, int]]:
    """`read_records` rows, each good document given (`attach`) the attribute rows that mirror it, one per file.

    Attribute files mirror the GOOD documents lines: a skipped bad line (None) consumes no attribute row. A
    missing, extra or mismatched row is a BadInputError naming both files; an attribute row is any JSON object
    with `id` and `attributes` (rows without attributes are not passed on).
    """
    iters = [read_attribute_lines(p, compression) for p in attribute_paths]
    for lineno, record, nbytes in records:
        if record is not None:
            doc_id = id_of(record)
            rows: list[dict[str, Any]] = []
            for path, it in zip(attribute_paths, iters):
                found = next(it, None)
                if found is None:
                    raise BadInputError(
                        doc_path,
                        lineno,
                        f"document {doc_id!r} has no attribute line in {path} (that file ends early)",
                        "id",
                    )
                alineno, row = found
                if row.id != doc_id:
                    raise BadInputError(
                        doc_path,
                        lineno,
                        f"id {doc_id!r} does not match id {row.id!r} at {path}:{alineno} "
                        "(attribute files must mirror the documents line for line)",
                        "id",
                    )
                if row.attributes:
                    rows.append(row.attributes)
            attach(record, rows)
        yield lineno, record, nbytes
    for path, it in zip(attribute_paths, iters):
        extra = next(it, None)
        if extra is not None:
            raise BadInputError(
                path, extra[0], f"attribute file has more lines than the documents file {doc_path}", "id"
            )


# ----------------------------------------------------------------------------------------------------------
# Attribute keys and paths
# ----------------------------------------------------------------------------------------------------------

_NOT_KEY = re.compile(r"[^a-zA-Z0-9_]")


def sanitize_key(name: str) -> str:
    """Replace every character that is not alphanumeric or `_` by `_` (as Dolma attribute keys do)."""
    return _NOT_KEY.sub("_", name)


def attribute_key(experiment: str, tagger: str, span_type: str) -> str:
    return f"{sanitize_key(experiment)}__{sanitize_key(tagger)}__{sanitize_key(span_type)}"


def split_documents_path(path: str, document_dir: str = "documents") -> tuple[str, str]:
    """Split `<root>/documents/<sub>` into (`<root>`, `<sub>`) at the last `documents` path component."""
    marker = f"/{document_dir.strip('/')}/"
    idx = path.rfind(marker)
    if idx < 0:
        raise PathSafetyError(
            f"{path}: cannot derive an attributes path because the path has no '{document_dir}/' component; "
            "set 'destination' explicitly"
        )
    return path[:idx], path[idx + len(marker) :]


def attributes_path(doc_path: str, attribute_name: str, document_dir: str = "documents") -> str:
    """`<root>/documents/<sub>` -> `<root>/attributes/<attribute_name>/<sub>`."""
    root, sub = split_documents_path(doc_path, document_dir)
    return io.join(root, "attributes", attribute_name, sub)


def destination_path(doc_path: str, pattern: str, destination: str) -> str:
    """Place a documents file under an explicit destination, keeping its path below the glob's fixed part."""
    base = io.glob_base(pattern)
    rel = doc_path[len(base) :].lstrip("/") if base and doc_path.startswith(base) else io.basename(doc_path)
    return io.join(destination, rel)
