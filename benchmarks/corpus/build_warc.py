#!/usr/bin/env python3
"""Build the WARC benchmark corpus (`*.warc.gz`, Common Crawl-like) from the HTML manuals of Debian packages.

Pages: every HTML file of python3.11-doc, postgresql-doc-15, apache2-doc (all its translations, several
charsets) and debian-handbook (13 languages), served as the crawl of their real sites. Records follow what a
Common Crawl WARC holds: warcinfo, then per fetch a request and a response record; about 6% of the responses
are images of the same packages, 3% redirects and 3% "404 Not Found" pages; responses carry
WARC-Identified-Payload-Type as Common Crawl's do. Half of the HTML responses
declare their charset in the HTTP header, the others only in the page. Once every page is in, the crawl goes
round again (a re-crawl, new record ids and dates) until the corpus reaches `--size-mb` MB of `.warc.gz`.
Files are ~`--file-mb` MB each, one gzip member per record, deterministic for a given size (fixed dates, ids
derived from the URL and the round, gzip mtime 0).

    python3 benchmarks/corpus/build_warc.py --fetch --size-mb 100 --out benchmarks/data/warc-100mb
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import json
import os
import random
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import build_bench as bb
import build_sample as bs

HANDBOOK = bs.DebPackage(
    "debian-handbook",
    "11.20220922",
    "all",
    "3d5dbeac1f1afc9c094eab9d0f701f6ecff99c4927d5a4794cf6c85678134faa",
    "GPL-2.0+ or CC-BY-SA-3.0",
    "The Debian Administrator's Handbook (Raphaël Hertzog, Roland Mas): GPL-2+ or CC-BY-SA-3.0; see "
    "/usr/share/doc/debian-handbook/copyright.",
)
PACKAGES = {
    p.name: p
    for p in (
        bs.PACKAGES["python3.11-doc"],
        bs.PACKAGES["apache2-doc"],
        bb.EXTRA_PACKAGES["postgresql-doc-15"],
        HANDBOOK,
    )
}
SITES = {  # package path prefix -> site
    "usr/share/doc/python3.11/html/": "https://docs.python.org/3.11/",
    "usr/share/doc/apache2-doc/manual/": "https://httpd.apache.org/docs/2.4/",
    "usr/share/doc/postgresql-doc-15/html/": "https://www.postgresql.org/docs/15/",
    "usr/share/doc/debian-handbook/html/": "https://debian-handbook.info/browse/",
}
IMAGE_TYPES = {".png": "image/png", ".gif": "image/gif", ".jpg": "image/jpeg", ".svg": "image/svg+xml"}
NOT_FOUND = b"<!DOCTYPE HTML><html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>\n"


def fetches(cache: Path) -> list[tuple[str, str, bytes]]:
    """(url, content type, body) of every page and image of the packages, in a fixed order."""
    out = []
    for pkg in PACKAGES.values():
        for path, (_mtime, raw) in bs.DebArchive(bs.deb_path(cache, pkg)).files().items():
            prefix = next((p for p in SITES if path.startswith(p)), None)
            if prefix is None:
                continue
            url = SITES[prefix] + path[len(prefix) :]
            ext = os.path.splitext(path)[1].lower()
            if ext == ".html" or ".html." in path:
                out.append((url, "text/html", raw))
            elif ext in IMAGE_TYPES and len(raw) < 200_000:
                out.append((url, IMAGE_TYPES[ext], raw))
    return out


def declared_charset(body: bytes) -> str:
    head = body[:1024].lower()
    for label in (b"utf-8", b"iso-8859-1", b"euc-kr", b"iso-8859-2", b"shift_jis", b"euc-jp", b"koi8-r"):
        if b"charset=" + label in head or b'charset="' + label in head:
            return label.decode()
    return "utf-8"


def sha1_b32(data: bytes) -> str:
    return "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode()


def record(kind: str, headers: list[tuple[str, str]], block: bytes) -> bytes:
    head = [("WARC-Type", kind), *headers, ("Content-Length", str(len(block)))]
    return ("WARC/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in head) + "\r\n").encode() + block + b"\r\n\r\n"


def exchange(url: str, ctype: str, body: bytes, status: str, when: str, rid: str, extra: list[tuple[str, str]]):
    host = url.split("/")[2]
    request = f"GET /{url.split('/', 3)[-1]} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: bench-crawler\r\n\r\n".encode()
    head = [("Date", "Fri, 01 Mar 2024 12:00:00 GMT"), ("Server", "nginx"), ("Content-Type", ctype), *extra]
    head.append(("Content-Length", str(len(body))))
    http = (f"HTTP/1.1 {status}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in head) + "\r\n").encode() + body
    common = [("WARC-Date", when), ("WARC-Target-URI", url)]
    return [
        record(
            "request",
            [*common, ("WARC-Record-ID", f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'req' + rid)}>")],
            request,
        ),
        record(
            "response",
            [
                *common,
                ("WARC-Record-ID", f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, rid)}>"),
                ("Content-Type", "application/http; msgtype=response"),
                ("WARC-Identified-Payload-Type", ctype.split(";")[0]),  # Common Crawl sets it (Tika's guess)
                ("WARC-Block-Digest", sha1_b32(http)),
                ("WARC-Payload-Digest", sha1_b32(body)),
            ],
            http,
        ),
    ]


def build(cache: Path, out: Path, size_mb: float, file_mb: float, seed: int = 20240301) -> dict:
    rng = random.Random(seed)
    items = fetches(cache)
    pages = [i for i in items if i[1] == "text/html"]
    images = [i for i in items if i[1] != "text/html"]
    (out / "warc").mkdir(parents=True, exist_ok=True)
    files, stats = [], {"records": 0, "html_200": 0, "images": 0, "redirects": 0, "not_found": 0}
    written = 0
    part = 0
    fh = None
    current = 0
    for round_ in range(1000):
        order = list(range(len(pages)))
        rng.shuffle(order)
        for n, idx in enumerate(order):
            if written >= size_mb * 1e6:
                break
            if fh is None or current >= file_mb * 1e6:
                if fh is not None:
                    fh.close()
                name = f"CC-BENCH-{part:05d}.warc.gz"
                path = out / "warc" / name
                fh = path.open("wb")
                files.append(name)
                info = f"software: build_warc.py\r\nisPartOf: bench\r\nround: {round_}\r\n".encode()
                header = [("WARC-Date", "2024-03-01T12:00:00Z"), ("WARC-Filename", name)]
                header.append(("WARC-Record-ID", f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, name)}>"))
                member = gzip.compress(record("warcinfo", header, info), mtime=0)
                fh.write(member)
                current, part = len(member), part + 1
            url, _ctype, body = pages[idx]
            when = f"2024-03-{1 + round_ % 28:02d}T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z"
            rid = f"{round_}|{url}"
            roll = rng.random()
            if roll < 0.03:
                recs = exchange(url + "old/", "text/html", b"", "301 Moved Permanently", when, rid + "|r", [])
                stats["redirects"] += 1
            elif roll < 0.06:
                recs = exchange(url + ".missing", "text/html", NOT_FOUND, "404 Not Found", when, rid + "|m", [])
                stats["not_found"] += 1
            elif roll < 0.12 and images:
                iurl, itype, ibody = images[rng.randrange(len(images))]
                recs = exchange(iurl, itype, ibody, "200 OK", when, rid + "|i", [])
                stats["images"] += 1
            else:
                ctype = "text/html" if rng.random() < 0.5 else f"text/html; charset={declared_charset(body)}"
                recs = exchange(url, ctype, body, "200 OK", when, rid, [])
                stats["html_200"] += 1
            for rec in recs:
                member = gzip.compress(rec, compresslevel=6, mtime=0)
                fh.write(member)
                current += len(member)
                written += len(member)
            stats["records"] += 1
        else:
            continue
        break
    if fh is not None:
        fh.close()
    stats.update(files=files, warc_bytes=written, size_mb=size_mb, packages=[p.filename for p in PACKAGES.values()])
    (out / "corpus.json").write_text(json.dumps(stats, indent=1) + "\n")
    (out / "COMPLETE").write_text(hashlib.sha256(json.dumps(stats, sort_keys=True).encode()).hexdigest() + "\n")
    return stats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    default_cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dolma-bench-sources"
    ap.add_argument("--cache", type=Path, default=default_cache, help=f"source cache (default {default_cache})")
    ap.add_argument("--fetch", action="store_true", help="apt-get download the source packages into the cache")
    ap.add_argument("--size-mb", type=float, default=100, help="MB of .warc.gz to write (default 100)")
    ap.add_argument("--file-mb", type=float, default=10, help="MB per WARC file (default 10)")
    args = ap.parse_args(argv)
    if args.fetch:
        bs.download_packages(args.cache, PACKAGES)
    problems = bs.verify_packages(args.cache, strict=True, packages=PACKAGES)
    stats = build(args.cache, args.out, args.size_mb, args.file_mb)
    mb = stats["warc_bytes"] / 1e6
    print(f"wrote {stats['records']} fetches, {mb:.1f} MB of WARC to {args.out}", file=sys.stderr)
    return 1 if any("missing" in p for p in problems) else 0


if __name__ == "__main__":
    sys.exit(main())
