"""Streaming the records of one WARC or WET file, locally or on S3, with damage told apart from the end.

fastwarc parses the records. Decompression of `.warc.gz` (one gzip member per record) happens here, on the
way in, because fastwarc ends quietly at a truncated member: reading the members ourselves is what lets a cut
download fail its file with a clear message (or, when skipping is asked for, be counted) instead of losing
its last records silently. Memory stays bounded: the file is read in 1 MiB pieces, one record at a time.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import zstandard
from zlib_ng import zlib_ng

from dolma import compression, io
from dolma.errors import CorruptFileError
from dolma.warc import extract
from dolma.warc.extract import Skip

READ_SIZE = 1 << 20


class _GzipMembers:
    """Incremental decoder of concatenated gzip members (zlib-ng: about twice zlib's speed); knows if it ended
    cleanly. Output comes in pieces of at most OUT_CHUNK bytes, so a small member cannot balloon memory."""

    OUT_CHUNK = 4 << 20

    def __init__(self) -> None:
        self._new()

    def _new(self) -> None:
        self._obj = zlib_ng.decompressobj(16 + zlib_ng.MAX_WBITS)
        self.fresh = True

    def feed(self, data: bytes, out: list[bytes]) -> None:
        while data:
            self.fresh = False
            piece = self._obj.decompress(data, self.OUT_CHUNK)
            if piece:
                out.append(piece)
            if self._obj.eof:
                data = self._obj.unused_data
                self._new()
            else:
                data = self._obj.unconsumed_tail
                if not data and not piece:
                    return


class _DecodedStream:
    """A read-only file object over the decompressed bytes of a file; counts the stored bytes read.

    A truncated or corrupt compressed stream raises CorruptFileError from `read` once the data before the damage
    has been handed out (fastwarc passes exceptions of Python streams through), so complete records are kept and
    the error surfaces where the damage is.
    """

    def __init__(self, path: str):
        self.path = path
        self.kind = compression.compression_of(path)
        self._raw = io.open_raw_read(path)
        self._gzip = _GzipMembers() if self.kind == "gzip" else None
        # the project's zstd / plain decoder
        self._other = None if self.kind == "gzip" else compression.Decoder(self.kind)
        self._pieces: list[bytes] = []
        self._buf = b""
        self._off = 0
        self._eof = False
        self._error: CorruptFileError | None = None
        self.raw_bytes = 0
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._pos

    def _clean(self) -> bool:
        return self._gzip.fresh if self._gzip is not None else self._other.finished_cleanly()

    def _fill(self) -> bool:
        """Decode the next block of the file into `_pieces`; False at the end (or at damage, kept in `_error`)."""
        while not self._pieces:
            if self._eof:
                return False
            block = self._raw.read(READ_SIZE)
            if not block:
                self._eof = True
                if not self._clean():
                    self._error = CorruptFileError(
                        self.path,
                        f"truncated {self.kind} file: it ends inside a compressed member, after "
                        f"{self.raw_bytes:,} bytes (a cut download?)",
                    )
                return False
            self.raw_bytes += len(block)
            try:
                if self._gzip is not None:
                    self._gzip.feed(block, self._pieces)
                else:
                    self._pieces.extend(self._other.feed(block))
            except (zlib_ng.error, zlib.error, zstandard.ZstdError, EOFError) as exc:
                self._eof = True
                self._error = CorruptFileError(
                    self.path, f"corrupt {self.kind} data near byte {self.raw_bytes:,}: {type(exc).__name__}"
                )
                return False
        return True

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes; the data before a damage is handed out first, the error comes on the next call."""
        out = self._read(size)
        if not out and self._error is not None:
            raise self._error
        self._pos += len(out)
        return out

    def _read(self, size: int) -> bytes:
        available = len(self._buf) - self._off
        if size is not None and 0 <= size <= available:  # the common case: one slice of the current piece
            out = self._buf[self._off : self._off + size]
            self._off += size
            return out
        parts = [self._buf[self._off :]] if available else []
        got = available
        self._buf, self._off = b"", 0
        while (size is None or size < 0 or got < size) and self._fill():
            piece = self._pieces.pop(0)
            if size is not None and 0 <= size < got + len(piece):
                take = size - got
                parts.append(piece[:take])
                self._buf, self._off = piece, take
                got = size
                break
            parts.append(piece)
            got += len(piece)
        return b"".join(parts)

    def close(self) -> None:
        self._raw.close()


@dataclass(slots=True)
class Page:
    """A record that may become a document: its identity and its decoded (not yet decoded to text) body."""

    kind: str  # response, resource or conversion (WET)
    url: str
    record_id: str
    date: str  # WARC-Date as written
    mime: str  # payload media type, lower case, without parameters
    charset: str | None  # charset declared in the HTTP header (or the WARC Content-Type of a resource)
    body: bytes
    payload_digest: str | None = None
    language: str | None = None  # WARC-Identified-Content-Language of a WET record


@dataclass(slots=True)
class FileInfo:
    """What the warcinfo record says about the file (its name and when it was written)."""

    filename: str | None = None
    date: str | None = None


def _mime(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _charset(content_type: str | None) -> str | None:
    for part in (content_type or "").split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip("\"'") or None
    return None


@dataclass(slots=True)
class ReadState:
    """What reading a file found besides its pages: records seen, skip counts, stored bytes read, warcinfo."""

    records: int = 0
    raw_bytes: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    info: FileInfo = field(default_factory=FileInfo)

    def skip(self, reason: str) -> None:
        self.counters[reason] = self.counters.get(reason, 0) + 1


def iter_pages(path: str, max_bytes: int, skip_damage: bool, state: ReadState) -> Iterator[Page]:
    """The pages of a WARC / WET file that may become documents; every other record is counted in `state`.

    Responses must be HTTP 200 with an HTML payload (or none declared and one that looks like HTML); resource
    records must be HTML; WET conversion records are text already. Damage to the file itself (a truncated or
    corrupt gzip member, a stream fastwarc cannot parse) raises CorruptFileError, or with `skip_damage` ends
    the file with a count.
    """
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    wanted = WarcRecordType.response | WarcRecordType.resource | WarcRecordType.conversion | WarcRecordType.warcinfo
    stream = _DecodedStream(path)
    try:
        records: Any = ArchiveIterator(stream, record_types=wanted, parse_http=True, stream_detect=False)
        while True:
            try:
                record = next(records)
            except StopIteration:
                break
            except CorruptFileError:
                if not skip_damage:
                    raise
                state.skip(extract.SKIP_REST_OF_FILE)
                break
            except OSError as exc:
                if not skip_damage:
                    raise CorruptFileError(
                        path, f"not a readable WARC stream after {state.records:,} records ({type(exc).__name__})"
                    ) from None
                state.skip(extract.SKIP_REST_OF_FILE)
                break
            state.raw_bytes = stream.raw_bytes
            try:
                page = _page(record, max_bytes, state, path)
            except Skip as skip:
                state.skip(skip.reason)
                continue
            except CorruptFileError:
                if not skip_damage:
                    raise
                state.skip(extract.SKIP_TRUNCATED_RECORD)
                state.skip(extract.SKIP_REST_OF_FILE)
                break
            if page is not None:
                yield page
        state.raw_bytes = stream.raw_bytes
    finally:
        stream.close()


def _page(record: Any, max_bytes: int, state: ReadState, path: str) -> Page | None:
    """The Page of one record, None for a warcinfo record (read into `state.info`); raises Skip for the others."""
    from fastwarc.warc import WarcRecordType

    headers = record.headers
    kind = record.record_type
    if kind == WarcRecordType.warcinfo:
        state.info.filename = headers.get("WARC-Filename") or state.info.filename
        state.info.date = headers.get("WARC-Date") or state.info.date
        return None
    state.records += 1
    url = headers.get("WARC-Target-URI")
    record_id = headers.get("WARC-Record-ID")
    date = headers.get("WARC-Date")
    if not url or not record_id or not date:
        raise Skip(extract.SKIP_MALFORMED_WARC)
    declared = record.content_length
    if declared > max_bytes:
        raise Skip(extract.SKIP_TOO_BIG)
    body = record.reader.read()
    if len(body) < declared:
        raise CorruptFileError(
            path, f"record {record_id} ends after {len(body):,} of its {declared:,} bytes (a truncated file?)"
        )
    if kind == WarcRecordType.response:
        http = record.http_headers
        status = http.status_code if http is not None else None
        if status is None:
            raise Skip(extract.SKIP_MALFORMED_HTTP)
        if status != 200:
            raise Skip(extract.SKIP_STATUS)
        content_type = http.get("Content-Type")
        mime = _mime(content_type)
        if mime and mime not in extract.HTML_TYPES:
            raise Skip(extract.SKIP_NOT_HTML)
        body = extract.decode_payload(
            body,
            (http.get("Transfer-Encoding") or "").lower(),
            (http.get("Content-Encoding") or "").lower(),
            max_bytes,
        )
        if not mime and not extract.sniff_html(body):
            raise Skip(extract.SKIP_NOT_HTML)
        return Page(
            kind="response",
            url=url,
            record_id=record_id,
            date=date,
            mime=mime or "text/html",
            charset=_charset(content_type),
            body=body,
            payload_digest=headers.get("WARC-Payload-Digest"),
        )
    content_type = headers.get("Content-Type")
    mime = _mime(content_type)
    if kind == WarcRecordType.conversion:
        if mime and mime != "text/plain":
            raise Skip(extract.SKIP_NOT_HTML)
        return Page(
            kind="conversion",
            url=url,
            record_id=record_id,
            date=date,
            mime="text/plain",
            charset=_charset(content_type) or "utf-8",
            body=body,
            payload_digest=headers.get("WARC-Block-Digest"),
            language=headers.get("WARC-Identified-Content-Language"),
        )
    if mime not in extract.HTML_TYPES:
        raise Skip(extract.SKIP_NOT_HTML)
    return Page(
        kind="resource",
        url=url,
        record_id=record_id,
        date=date,
        mime=mime,
        charset=_charset(content_type),
        body=body,
        payload_digest=headers.get("WARC-Payload-Digest"),
    )
