"""Build realistic WARC and WET files from the real pages in tests/data/warc/pages (see PROVENANCE.md there).

Records are written byte by byte here (headers, digests, one gzip member per record), not with a WARC library,
so that the tests control every detail, damage included: malformed headers, a truncated gzip member, a body
that claims gzip and is not. Everything is deterministic (fixed dates, record ids derived from the URL, gzip
mtime 0), so the same call always gives the same bytes.

    python tests/helpers/warcgen.py --demo tests/data/warc/demo.warc.gz   # the WARC file `make demo` starts from
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import hashlib
import re
import sys
import uuid
from pathlib import Path

PAGES = Path(__file__).resolve().parents[1] / "data" / "warc" / "pages"
CRAWL_DATE = "2024-03-01T12:00:00Z"
HTTP_DATE = "Fri, 01 Mar 2024 12:00:00 GMT"
APACHE = "https://httpd.apache.org/docs/2.4"
PYTHON = "https://docs.python.org/3.11/library"

# A tiny but valid PDF (one empty page), written here: a binary payload that is not a page.
TINY_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)
NOT_FOUND = (
    b'<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\n<html><head>\n<title>404 Not Found</title>\n</head><body>\n'
    b"<h1>Not Found</h1>\n<p>The requested URL was not found on this server.</p>\n</body></html>\n"
)
MOVED = (
    b'<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\n<html><head>\n<title>301 Moved Permanently</title>\n'
    b'</head><body>\n<h1>Moved Permanently</h1>\n<p>The document has moved <a href="{url}">here</a>.</p>\n'
    b"</body></html>\n"
)
ROBOTS = b"User-agent: *\nDisallow: /private/\n# plain text, not a page\n"


def page(name: str) -> bytes:
    return (PAGES / name).read_bytes()


def sha1_b32(data: bytes) -> str:
    return "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode()


def record_uuid(*parts: str) -> str:
    """A fixed record id per (kind, url, ...): stable across runs, unique within a file."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "|".join(parts)))


@dataclasses.dataclass
class Response:
    """One HTTP exchange: what the crawler got for `url`."""

    url: str
    body: bytes
    content_type: str = "text/html; charset=UTF-8"
    status: str = "200 OK"
    headers: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    gzip_body: bool = False  # Content-Encoding: gzip (the body is compressed here)
    chunked: bool = False  # Transfer-Encoding: chunked (the body is chunked here)
    raw_http: bytes | None = None  # the whole HTTP block as given (for malformed headers)
    with_request: bool = False  # a request record before it (as crawlers write)


def http_block(resp: Response) -> tuple[bytes, bytes]:
    """(HTTP block, payload as stored) of a response."""
    if resp.raw_http is not None:
        return resp.raw_http, resp.raw_http.split(b"\r\n\r\n", 1)[-1]
    body = resp.body
    headers = [("Date", HTTP_DATE), ("Server", "Apache")]
    if resp.content_type:
        headers.append(("Content-Type", resp.content_type))
    headers += resp.headers
    if resp.gzip_body:
        body = gzip.compress(body, mtime=0)
        headers.append(("Content-Encoding", "gzip"))
    if resp.chunked:
        headers.append(("Transfer-Encoding", "chunked"))
        pieces = [body[i : i + 4000] for i in range(0, len(body), 4000)]
        body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    else:
        headers.append(("Content-Length", str(len(body))))
    head = f"HTTP/1.1 {resp.status}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return head.encode("latin-1") + body, body


def warc_record(kind: str, headers: list[tuple[str, str]], block: bytes) -> bytes:
    head = [("WARC-Type", kind), *headers, ("Content-Length", str(len(block)))]
    text = "WARC/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in head) + "\r\n"
    return text.encode("utf-8") + block + b"\r\n\r\n"


def warcinfo(filename: str) -> bytes:
    info = b"software: dolma-toolkit tests/warcgen.py\r\nformat: WARC File Format 1.0\r\n"
    headers = [
        ("WARC-Date", CRAWL_DATE),
        ("WARC-Record-ID", f"<urn:uuid:{record_uuid('warcinfo', filename)}>"),
        ("WARC-Filename", filename),
        ("Content-Type", "application/warc-fields"),
    ]
    return warc_record("warcinfo", headers, info)


def response_records(resp: Response, index: int) -> list[bytes]:
    block, payload = http_block(resp)
    rid = record_uuid("response", resp.url, str(index))
    out = []
    if resp.with_request:
        req = f"GET / HTTP/1.1\r\nHost: {resp.url.split('/')[2]}\r\nUser-Agent: warcgen\r\n\r\n".encode()
        out.append(
            warc_record(
                "request",
                [
                    ("WARC-Date", CRAWL_DATE),
                    ("WARC-Record-ID", f"<urn:uuid:{record_uuid('request', resp.url, str(index))}>"),
                    ("WARC-Target-URI", resp.url),
                    ("Content-Type", "application/http; msgtype=request"),
                ],
                req,
            )
        )
    out.append(
        warc_record(
            "response",
            [
                ("WARC-Date", f"2024-03-01T12:{index // 60 % 60:02d}:{index % 60:02d}Z"),
                ("WARC-Record-ID", f"<urn:uuid:{rid}>"),
                ("WARC-Target-URI", resp.url),
                ("WARC-IP-Address", "127.0.0.1"),
                ("Content-Type", "application/http; msgtype=response"),
                ("WARC-Block-Digest", sha1_b32(block)),
                ("WARC-Payload-Digest", sha1_b32(payload)),
            ],
            block,
        )
    )
    return out


def write_warc(path: Path, records: list[bytes], compress: bool | None = None) -> Path:
    """Write records as a WARC file: one gzip member per record when the name ends in .gz (or `compress`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    compress = path.name.endswith(".gz") if compress is None else compress
    with path.open("wb") as out:
        for rec in records:
            out.write(gzip.compress(rec, compresslevel=6, mtime=0) if compress else rec)
    return path


# ----------------------------------------------------------------------------------------------------------
# The pages and the crawl made of them
# ----------------------------------------------------------------------------------------------------------


def _recode(html: bytes, encoding: str, meta: str | None) -> bytes:
    """A UTF-8 page in another charset; its <meta> charset rewritten to `meta`, or removed when None."""
    text = html.decode("utf-8")
    pattern = re.compile(r'<META http-equiv="Content-Type" content="text/html; charset=UTF-8">', re.IGNORECASE)
    replacement = f'<meta http-equiv="Content-Type" content="text/html; charset={meta}">' if meta else ""
    text = pattern.sub(replacement, text, count=1)
    return text.encode(encoding, errors="xmlcharrefreplace")


@dataclasses.dataclass(frozen=True)
class Expected:
    """What a test expects of a page kept as a document: its URL and phrases of its main text (and not)."""

    url: str
    main: tuple[str, ...]  # phrases of the page's main text
    nav: tuple[str, ...] = ()  # phrases that only occur in navigation / boilerplate


NAV_APACHE = ("Modules | Directives | FAQ | Glossary | Sitemap | Report a bug",)
NAV_PYTHON = ("Previous topic", "Table of Contents")
GOOD_PAGES: list[tuple[Response, Expected]] = [
    (
        Response(f"{APACHE}/mpm.html", page("apache-en-mpm.html"), with_request=True),
        Expected(
            f"{APACHE}/mpm.html",
            ("Multi-Processing Modules (MPMs)", "The Apache HTTP Server is designed to be a powerful"),
            NAV_APACHE,
        ),
    ),
    (
        Response(f"{APACHE}/pt-br/bind.html", page("apache-pt-br-bind.html")),
        Expected(
            f"{APACHE}/pt-br/bind.html", ("Vinculando a Endereços e Portas",), ("Mapa do Site | Relate um problema",)
        ),
    ),
    (
        Response(f"{APACHE}/pt-br/invoking.html", page("apache-pt-br-invoking.html")),
        Expected(f"{APACHE}/pt-br/invoking.html", ("No Windows o Apache geralmente é executado como um serviço",)),
    ),
    (
        Response(f"{APACHE}/handler.html", page("apache-en-handler.html"), content_type="text/html"),
        Expected(f"{APACHE}/handler.html", ("This document describes the use of Apache's Handlers.",), NAV_APACHE),
    ),
    (  # ISO-8859-1, declared in the page only
        Response(f"{APACHE}/de/mpm.html", page("apache-de-mpm.html"), content_type="text/html"),
        Expected(f"{APACHE}/de/mpm.html", ("Der Apache HTTP Server wurde als leistungsfähiger und flexibler",)),
    ),
    (  # ISO-8859-1, declared in the header and the page
        Response(
            f"{APACHE}/es/handler.html", page("apache-es-handler.html"), content_type="text/html; charset=ISO-8859-1"
        ),
        Expected(f"{APACHE}/es/handler.html", ("Este documento describe el uso de los Handlers en Apache.",)),
    ),
    (  # windows-1252, declared in the HTTP header only
        Response(
            f"{APACHE}/fr/socache.html",
            _recode(page("apache-fr-socache.html"), "cp1252", None),
            content_type="text/html; charset=windows-1252",
        ),
        Expected(f"{APACHE}/fr/socache.html", ("Le cache des objets partagés est un concept",)),
    ),
    (  # EUC-KR, declared in the page only
        Response(f"{APACHE}/ko/mpm.html", page("apache-ko-mpm.html"), content_type="text/html"),
        Expected(f"{APACHE}/ko/mpm.html", ("아파치 웹서버는 다양한 환경의 다양한 플래폼에서",)),
    ),
    (  # Shift_JIS, declared in a rewritten <meta> only
        Response(
            f"{APACHE}/ja/filter.html",
            _recode(page("apache-ja-filter.html"), "shift_jis", "Shift_JIS"),
            content_type="text/html",
        ),
        Expected(f"{APACHE}/ja/filter.html", ("現行の Apache HTTP サーバの配布では",)),
    ),
    (  # Content-Encoding: gzip
        Response(f"{PYTHON}/getpass.html", page("python-getpass.html"), gzip_body=True),
        Expected(f"{PYTHON}/getpass.html", ("getpass — Portable password input",), NAV_PYTHON),
    ),
    (  # Transfer-Encoding: chunked
        Response(f"{PYTHON}/keyword.html", page("python-keyword.html"), chunked=True),
        Expected(
            f"{PYTHON}/keyword.html",
            ("This module allows a Python program to determine if a string is a keyword",),
            NAV_PYTHON,
        ),
    ),
    (  # a Creative Commons licensed page (cc_re finds it)
        Response("https://debian-handbook.info/browse/stable/index.html", page("debian-handbook-index.html")),
        Expected(
            "https://debian-handbook.info/browse/stable/index.html", ("Debian Bullseye from Discovery to Mastery",)
        ),
    ),
    (  # the same payload at a second URL: a document of its own, with its own id
        Response(f"{APACHE}/en/mpm.html", page("apache-en-mpm.html")),
        Expected(f"{APACHE}/en/mpm.html", ("Multi-Processing Modules (MPMs)",), NAV_APACHE),
    ),
]
CC_URL = "https://debian-handbook.info/browse/stable/index.html"

# Records that must not become documents: (response, the reason counter it lands in)
SKIPPED: list[tuple[Response, str]] = [
    (Response(f"{APACHE}/missing.html", NOT_FOUND, status="404 Not Found"), "HTTP status not 200"),
    (
        Response(
            f"{APACHE}/old.html",
            MOVED.replace(b"{url}", f"{APACHE}/mpm.html".encode()),
            status="301 Moved Permanently",
            headers=[("Location", f"{APACHE}/mpm.html")],
        ),
        "HTTP status not 200",
    ),
    (Response(f"{APACHE}/images/left.gif", page("apache-left.gif"), content_type="image/gif"), "not HTML"),
    (Response(f"{APACHE}/manual.pdf", TINY_PDF, content_type="application/pdf"), "not HTML"),
    (Response(f"{APACHE}/robots.txt", ROBOTS, content_type="text/plain"), "not HTML"),
    (
        Response(
            f"{APACHE}/broken-gzip.html",
            b"",
            raw_http=(
                f"HTTP/1.1 200 OK\r\nDate: {HTTP_DATE}\r\nContent-Type: text/html; charset=UTF-8\r\n"
                "Content-Encoding: gzip\r\nContent-Length: 40\r\n\r\n"
            ).encode()
            + b"this body claims gzip but is plain bytes",
        ),
        "undecodable payload",
    ),
    (
        Response(
            f"{APACHE}/bad-headers.html",
            b"",
            raw_http=b"HTTP/1.1 OK\r\nthis is not a header line\r\n\x00\x01\x02\r\n\r\n"
            + page("apache-en-mpm.html")[:500],
        ),
        "malformed HTTP headers",
    ),
    (
        Response(f"{APACHE}/huge.html", page("python-keyword.html") * 12),
        "over the size cap",
    ),
]
SIZE_CAP = 100_000  # bytes; the huge page above is ~200 KB, every good page is below


def crawl_records(filename: str, start: int = 0) -> list[bytes]:
    """warcinfo, then every good page and every skipped record, interleaved."""
    out = [warcinfo(filename)]
    skipped = iter(SKIPPED)
    for i, (resp, _) in enumerate(GOOD_PAGES):
        out += response_records(resp, start + 2 * i)
        bad = next(skipped, None)
        if bad is not None:
            out += response_records(bad[0], start + 2 * i + 1)
    for j, (resp, _) in enumerate(skipped):
        out += response_records(resp, start + 2 * len(GOOD_PAGES) + j)
    # a revisit record (no payload): not a response, ignored without a count
    out.append(
        warc_record(
            "revisit",
            [
                ("WARC-Date", CRAWL_DATE),
                ("WARC-Record-ID", f"<urn:uuid:{record_uuid('revisit', filename)}>"),
                ("WARC-Target-URI", f"{APACHE}/mpm.html"),
                ("WARC-Profile", "http://netpreserve.org/warc/1.0/revisit/identical-payload-digest"),
            ],
            b"",
        )
    )
    return out


def malformed_warc_header_record() -> bytes:
    """A record whose WARC header block lacks the colon on one line (a broken writer)."""
    block, _ = http_block(Response(f"{APACHE}/x.html", page("apache-en-handler.html")))
    head = (
        f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Date {CRAWL_DATE}\r\n"
        f"WARC-Record-ID: <urn:uuid:{record_uuid('m')}>\r\n"
        f"WARC-Target-URI: {APACHE}/x.html\r\nContent-Length: {len(block)}\r\n\r\n"
    )
    return head.encode() + block + b"\r\n\r\n"


def truncated(records: list[bytes]) -> bytes:
    """gzip members of `records` with the last one cut in the middle (a download that stopped)."""
    members = [gzip.compress(r, mtime=0) for r in records]
    return b"".join(members[:-1]) + members[-1][: len(members[-1]) // 2]


def wet_records(filename: str) -> list[bytes]:
    """A WET file: warcinfo + one conversion record (already plain text) per good page."""
    out = [warcinfo(filename)]
    for i, (_resp, exp) in enumerate(GOOD_PAGES[:6]):
        text = wet_text(exp).encode("utf-8")
        out.append(
            warc_record(
                "conversion",
                [
                    ("WARC-Target-URI", exp.url),
                    ("WARC-Date", f"2024-03-01T13:00:{i:02d}Z"),
                    ("WARC-Record-ID", f"<urn:uuid:{record_uuid('conversion', exp.url)}>"),
                    ("WARC-Refers-To", f"<urn:uuid:{record_uuid('response', exp.url, str(2 * i))}>"),
                    ("WARC-Block-Digest", sha1_b32(text)),
                    ("WARC-Identified-Content-Language", "eng"),
                    ("Content-Type", "text/plain"),
                ],
                text,
            )
        )
    return out


def wet_text(exp: Expected) -> str:
    return "\n".join([*exp.main, f"(converted text of {exp.url})"]) + "\n"


def demo_records() -> list[bytes]:
    """The demo crawl: every good page once, plus a few records that are skipped (and counted)."""
    out = [warcinfo("demo.warc.gz")]
    for i, (resp, _) in enumerate(GOOD_PAGES[:-1]):
        out += response_records(resp, i)
    for j, (resp, _) in enumerate(SKIPPED[:5]):
        out += response_records(resp, 100 + j)
    return out


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "--demo":
        sys.exit(__doc__)
    print(write_warc(Path(sys.argv[2]), demo_records()))
