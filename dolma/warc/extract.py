"""HTTP payloads to text: transfer and content decoding, charset detection, HTML linearizers.

A payload that cannot be decoded raises `Skip` with the reason it is counted under; nothing here fails a
file. Charsets: the one the HTTP header declares when the bytes decode with it, else the page's `<meta>`
charset, else detection (resiliparse's uchardet), with UTF-8 / windows-1252 as fallbacks.
"""

from __future__ import annotations

import logging
import zlib
from abc import ABC, abstractmethod

# Why a record did not become a document (the summary counts each reason; see docs/warc.md).
SKIP_STATUS = "records skipped: HTTP status not 200"
SKIP_NOT_HTML = "records skipped: not HTML"
SKIP_UNDECODABLE = "records skipped: undecodable payload"
SKIP_MALFORMED_HTTP = "records skipped: malformed HTTP headers"
SKIP_MALFORMED_WARC = "records skipped: malformed WARC headers"
SKIP_TOO_BIG = "records skipped: over the size cap"
SKIP_TRUNCATED_RECORD = "records skipped: truncated record"
SKIP_EMPTY = "records skipped: no text extracted"
SKIP_PRE = "records skipped: no pre-tagger output (pre.skip)"
SKIP_POST = "records skipped: no post-tagger output (post.skip)"
# Left out on purpose, not lost: these never make a run degraded (the others do).
BY_DESIGN = frozenset({SKIP_STATUS, SKIP_NOT_HTML, SKIP_EMPTY, SKIP_PRE, SKIP_POST})
SKIP_REST_OF_FILE = "files cut short: rest of a damaged file skipped"

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", "application/xhtml", "text/xhtml"})


class Skip(Exception):
    """The record is skipped; `reason` is one of the SKIP_* counters."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def dechunk(body: bytes, limit: int) -> bytes:
    """Undo `Transfer-Encoding: chunked` (sizes in hex, optional extensions, trailers ignored)."""
    out = bytearray()
    pos = 0
    n = len(body)
    while True:
        eol = body.find(b"\r\n", pos)
        if eol < 0:
            eol = body.find(b"\n", pos)
            if eol < 0:
                raise Skip(SKIP_UNDECODABLE)
            step = 1
        else:
            step = 2
        size_field = body[pos:eol].split(b";", 1)[0].strip()
        try:
            size = int(size_field, 16)
        except ValueError:
            raise Skip(SKIP_UNDECODABLE) from None
        if size == 0:
            return bytes(out)
        start = eol + step
        if start + size > n:  # the last chunk cut short: keep what arrived, as browsers do
            out += body[start:]
            return bytes(out)
        out += body[start : start + size]
        if len(out) > limit:
            raise Skip(SKIP_TOO_BIG)
        pos = start + size
        if body.startswith(b"\r\n", pos):
            pos += 2
        elif body.startswith(b"\n", pos):
            pos += 1


def inflate(body: bytes, encoding: str, limit: int) -> bytes:
    """Undo `Content-Encoding` gzip / deflate (raw or zlib-wrapped); at most `limit` bytes come out."""
    if encoding in ("gzip", "x-gzip"):
        attempts = (16 + zlib.MAX_WBITS,)
    elif encoding == "deflate":
        attempts = (zlib.MAX_WBITS, -zlib.MAX_WBITS)
    else:
        raise Skip(SKIP_UNDECODABLE)
    for wbits in attempts:
        decoder = zlib.decompressobj(wbits)
        try:
            out = decoder.decompress(body, limit + 1)
        except zlib.error:
            continue
        if len(out) > limit:
            raise Skip(SKIP_TOO_BIG)
        if not decoder.eof and not out:
            continue
        return out
    raise Skip(SKIP_UNDECODABLE)


def decode_payload(body: bytes, transfer_encoding: str, content_encoding: str, limit: int) -> bytes:
    """The entity body as the server meant it: transfer coding then content codings undone."""
    if "chunked" in transfer_encoding:
        body = dechunk(body, limit)
    codings = [c.strip() for c in content_encoding.split(",") if c.strip() and c.strip() != "identity"]
    for coding in reversed(codings):
        body = inflate(body, coding, limit)
    if len(body) > limit:
        raise Skip(SKIP_TOO_BIG)
    return body


def sniff_html(body: bytes) -> bool:
    """A payload without a Content-Type is HTML when it starts (after blanks and a BOM) like a page."""
    head = body[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<!--"))


def to_text(body: bytes, declared: str | None) -> str:
    """Decode a page: the declared charset if the bytes fit it, else the <meta> charset or detection."""
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    if declared:
        try:
            return body.decode(declared)
        except (UnicodeDecodeError, LookupError):
            pass
    encoding = detect_encoding(body, from_html_meta=True)
    try:
        return bytes_to_str(body, encoding, errors="replace", fallback_encodings=("utf-8", "cp1252"))
    except (UnicodeError, LookupError):
        raise Skip(SKIP_UNDECODABLE) from None


class Linearizer(ABC):
    """HTML (already decoded) to plain text."""

    name = ""

    @abstractmethod
    def linearize(self, html: str) -> str: ...


class ResiliparseLinearizer(Linearizer):
    """resiliparse's main-content text, with the reference's settings (formatting, bullets, no links)."""

    name = "resiliparse"

    def linearize(self, html: str) -> str:
        from resiliparse.extract.html2text import extract_plain_text
        from resiliparse.parse.html import HTMLTree

        tree = HTMLTree.parse(html)
        return extract_plain_text(
            tree,
            preserve_formatting=True,
            main_content=True,
            list_bullets=True,
            alt_texts=False,
            links=False,
            form_fields=False,
            noscript=False,
            comments=True,
        )


class TrafilaturaLinearizer(Linearizer):
    """trafilatura's text output, with the reference's settings (no comments, links, tables or formatting)."""

    name = "trafilatura"
    FLUSH_EVERY = 10_000  # trafilatura keeps caches that grow; the reference resets them this often too

    def __init__(self) -> None:
        logging.getLogger("trafilatura").setLevel(logging.CRITICAL)
        logging.getLogger("htmldate").setLevel(logging.CRITICAL)
        self._count = 0

    def linearize(self, html: str) -> str:
        import trafilatura

        self._count += 1
        if self._count >= self.FLUSH_EVERY:
            from trafilatura.meta import reset_caches

            reset_caches()
            self._count = 0
        out = trafilatura.extract(
            html,
            output_format="txt",
            include_comments=False,
            include_links=False,
            include_tables=False,
            favor_precision=False,
            favor_recall=False,
            include_formatting=False,
        )
        return out or ""


LINEARIZERS: dict[str, type[Linearizer]] = {c.name: c for c in (ResiliparseLinearizer, TrafilaturaLinearizer)}
LINEARIZER_MODULES = {"resiliparse": ("resiliparse",), "trafilatura": ("trafilatura", "resiliparse")}
