#!/usr/bin/env python3
"""Build the sample corpus in Dolma format (``tests/data/sample``) from real, permissively licensed text.

The corpus is made of documentation and literature that ship in Debian packages, plus documents that this
script plants on purpose (duplicates, PII-like strings, low-quality pages, edge cases) and records in a
ground-truth file. It only needs the Python standard library to run.

Pipeline (each step is a separate function so that a bigger benchmark-corpus builder can reuse them):

1. ``fetch_sources``   -- ``apt-get download`` the pinned Debian packages into a cache directory, check their
                          SHA-256, and dump the King James Bible text with the ``bible`` program that ships in
                          the ``bible-kjv`` package (the only step that runs something other than Python).
2. ``extract_*``       -- turn the HTML manuals / the Bible text into ``SourceDoc`` pools (one pool per source
                          and language), reading the ``.deb`` archives directly (ar + tar.xz, stdlib only).
3. ``select_base_documents`` -- sample the pools according to a ``CorpusPlan`` (number of documents, share of
                          non-English documents, ...).
4. ``plant_*``         -- add exact, partial and near duplicates, PII-like strings, low-quality documents and
                          edge cases; every planted thing is recorded in the ``GroundTruth``.
5. ``assign_ids`` / ``write_corpus`` / ``write_ground_truth`` / ``write_provenance`` -- deterministic output:
                          sorted ids, gzip with mtime=0, JSON with a fixed key order.

``build`` runs steps 2-5; ``CorpusPlan.for_size`` scales the plan to another number of documents.

Rebuild the committed sample (byte-identical given the same packages)::

    python3 benchmarks/corpus/build_sample.py --fetch --cache ~/.cache/dolma-sample-sources --out tests/data/sample

``--fetch`` needs a Debian 12 (bookworm) machine with ``apt-get`` and root (it runs ``apt-get update``); run it
once, later runs can drop it. Without it the script expects the cache to hold
``deb/<package>_<version>_<arch>.deb`` and ``kjv/kjv.txt`` (``--print-fetch-commands`` prints the commands).
Debian keeps only the newest version of a package: if a pinned version is gone, ``--fetch`` downloads the current
one and the build goes on with a warning (the output then differs from the committed one).
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import hashlib
import html.parser
import io
import json
import os
import random
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path

# --------------------------------------------------------------------------------------------------------------
# Source packages (pinned). All are from Debian 12 "bookworm" (main or bookworm-security).
# --------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DebPackage:
    name: str
    version: str
    arch: str
    sha256: str
    license: str
    license_note: str

    @property
    def filename(self) -> str:
        # apt-get download escapes ":" in epochs as "%3a"; none of these packages has an epoch.
        return f"{self.name}_{self.version}_{self.arch}.deb"


PACKAGES: dict[str, DebPackage] = {
    p.name: p
    for p in [
        DebPackage(
            "python3.11-doc",
            "3.11.2-6+deb12u9",
            "all",
            "5b3594189d6ef9a6963ce0347fd307a1cc67620ad697e144db366070e2e146be",
            "PSF-2.0",
            "Python documentation: Python Software Foundation License Version 2 (code examples additionally 0BSD); "
            "see /usr/share/doc/python3.11-doc/copyright and the footer of every page.",
        ),
        DebPackage(
            "sqlite3-doc",
            "3.40.1-2+deb12u2",
            "all",
            "466e30d7066e2641fa13e56bc662a2ad521b8cc9c17dde9c9dac3d4f105e32f2",
            "public-domain",
            "SQLite documentation is in the public domain ('Files: * ... License: public-domain' in "
            "/usr/share/doc/sqlite3-doc/copyright; only debian/* packaging is GPL-2+).",
        ),
        DebPackage(
            "debmake-doc",
            "1.17-7",
            "all",
            "f562cf744d906b9255c60d659873609ed5f40d657d99c4a6f3f5c194c24507cf",
            "MIT",
            "Guide for Debian Maintainers (Osamu Aoki and translators): Expat/MIT licence "
            "('Files: * ... License: Expat' in /usr/share/doc/debmake-doc/copyright).",
        ),
        DebPackage(
            "apache2-doc",
            "2.4.71-1~deb12u1",
            "all",
            "a7b3d1131c1c63dbf9999b28e75f9a133d30f70492b419936bd51759ac77a01f",
            "Apache-2.0",
            "Apache HTTP Server documentation and its translations: Apache License 2.0 ('Files: * ... "
            "License: Apache-2.0' in /usr/share/doc/apache2-doc/copyright; the manual pages also say so).",
        ),
        DebPackage(
            "bible-kjv-text",
            "4.38",
            "all",
            "d61b6aad4c51ba9e2800b825325fa6a09e99a0d02a9bb6dc4724fcc4995a1b7a",
            "public-domain",
            "King James Version text (1611); the copyright file states that its copyright has expired. "
            "(The text is in the public domain in the US; in the UK the KJV is under Crown letters patent.)",
        ),
        DebPackage(
            "bible-kjv",
            "4.38",
            "amd64",
            "75a49c032a6efa9faa2beb4a9acb70974380122906329d0e100de36cc88ff02d",
            "GPL-2+ (program only)",
            "Only its 'bible' program is run, to decode bible-kjv-text's data file; none of its text is used.",
        ),
    ]
}

# SHA-256 of the text dumped from bible-kjv-text by `bible -l100000 "Genesis1:1-Revelation22:21"`.
KJV_TEXT_SHA256 = "6f74f5589333c56c263963e6347dba662bae2d96861302e690aaae0b4a855eda"
KJV_RANGE = "Genesis1:1-Revelation22:21"

DEFAULT_ADDED = datetime(2024, 6, 1, tzinfo=timezone.utc)
SOURCES = ("python-docs", "debian-docs", "web-mixed")


def deb_path(cache: Path, pkg: DebPackage) -> Path:
    """The pinned .deb in the cache or, failing that, the newest other version of the package there."""
    exact = cache / "deb" / pkg.filename
    if exact.exists():
        return exact
    others = sorted((cache / "deb").glob(f"{pkg.name}_*_{pkg.arch}.deb"))
    return others[-1] if others else exact


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------------------------
# Step 1: fetching (apt-get download) and the one external decoding step (KJV text).
# --------------------------------------------------------------------------------------------------------------


def fetch_commands() -> list[list[str]]:
    """The commands that fill <cache>/deb (run there); printed by --print-fetch-commands, run by --fetch."""
    return [
        ["apt-get", "update"],
        ["apt-get", "download", *[f"{p.name}={p.version}" for p in PACKAGES.values()]],
    ]


def fetch_sources(cache: Path) -> None:
    debs = cache / "deb"
    debs.mkdir(parents=True, exist_ok=True)
    if any(not deb_path(cache, p).exists() for p in PACKAGES.values()):
        update = fetch_commands()[0]
        print("+", " ".join(update), file=sys.stderr)
        subprocess.run(update, cwd=debs, check=True)
        download_packages(cache, PACKAGES)
    verify_packages(cache, strict=True)
    dump_kjv_text(cache)


def download_packages(cache: Path, packages: dict[str, DebPackage]) -> None:
    """apt-get download those of `packages` that are not in <cache>/deb yet (the current version if the pinned one
    is gone, with a warning)."""
    debs = cache / "deb"
    debs.mkdir(parents=True, exist_ok=True)
    for pkg in packages.values():
        if deb_path(cache, pkg).exists():
            continue
        print("+ apt-get download", f"{pkg.name}={pkg.version}", file=sys.stderr)
        if subprocess.run(["apt-get", "download", f"{pkg.name}={pkg.version}"], cwd=debs).returncode != 0:
            print(f"warning: {pkg.name} {pkg.version} is gone; downloading the current version", file=sys.stderr)
            subprocess.run(["apt-get", "download", pkg.name], cwd=debs, check=True)


def verify_packages(cache: Path, strict: bool, packages: dict[str, DebPackage] = PACKAGES) -> list[str]:
    """Problems with the cached `packages` (default: the sample's) and the KJV text; missing files stop a strict
    check, the other problems are printed as warnings and returned."""
    problems = []
    for pkg in packages.values():
        path = deb_path(cache, pkg)
        if not path.exists():
            problems.append(f"missing {path} (run with --fetch, or: apt-get download {pkg.name}={pkg.version})")
        elif sha256_file(path) != pkg.sha256:
            problems.append(f"{path.name}: not the pinned {pkg.filename} (SHA-256 {pkg.sha256[:12]}...)")
    kjv = cache / "kjv" / "kjv.txt"
    if kjv.exists() and sha256_file(kjv) != KJV_TEXT_SHA256:
        problems.append(f"{kjv}: SHA-256 differs from the pinned {KJV_TEXT_SHA256[:12]}...")
    if problems and strict:
        missing = [p for p in problems if p.startswith("missing")]
        if missing:
            raise SystemExit("\n".join(problems))
    for p in problems:
        print("warning:", p, file=sys.stderr)
    return problems


def dump_kjv_text(cache: Path) -> Path:
    """Decode bible-kjv-text's compressed data file to plain text with the `bible` program from bible-kjv."""
    out = cache / "kjv" / "kjv.txt"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        program = DebArchive(deb_path(cache, PACKAGES["bible-kjv"])).read("usr/bin/bible")
        text_deb = DebArchive(deb_path(cache, PACKAGES["bible-kjv-text"]))
        (tmpdir / "bible").write_bytes(program)
        (tmpdir / "bible").chmod(stat.S_IRWXU)
        for name in ("bible.data", "bible.data.conc"):
            (tmpdir / name).write_bytes(text_deb.read(f"usr/lib/{name}"))
        cmd = [str(tmpdir / "bible"), "-l100000", "-p", str(tmpdir), "-d", "bible.data", KJV_RANGE]
        print("+", " ".join(cmd), file=sys.stderr)
        proc = subprocess.run(cmd, capture_output=True, env={"PATH": "/usr/bin:/bin"})
        if proc.returncode != 0:
            raise SystemExit(f"bible failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}")
        text = proc.stdout
    out.write_bytes(text)
    return out


# --------------------------------------------------------------------------------------------------------------
# Reading .deb archives with the standard library (ar container, data.tar.xz inside).
# --------------------------------------------------------------------------------------------------------------


class DebArchive:
    """Regular files of a Debian binary package's data.tar.*, by path without the leading './'."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._files: dict[str, tuple[int, bytes]] | None = None

    def _data_tar(self) -> bytes:
        raw = self.path.read_bytes()
        if raw[:8] != b"!<arch>\n":
            raise ValueError(f"{self.path}: not an ar archive")
        pos = 8
        while pos + 60 <= len(raw):
            header = raw[pos : pos + 60]
            name = header[:16].decode().strip().rstrip("/")
            size = int(header[48:58].decode().strip())
            body = raw[pos + 60 : pos + 60 + size]
            if name.startswith("data.tar"):
                return body
            pos += 60 + size + (size % 2)
        raise ValueError(f"{self.path}: no data.tar member")

    def files(self) -> dict[str, tuple[int, bytes]]:
        """Path -> (mtime, content) for the regular files, in path order."""
        if self._files is None:
            found = {}
            with tarfile.open(fileobj=io.BytesIO(self._data_tar()), mode="r:*") as tar:
                for member in tar.getmembers():
                    if member.isfile():
                        content = tar.extractfile(member).read()
                        found[member.name.removeprefix("./")] = (int(member.mtime), content)
            self._files = dict(sorted(found.items()))
        return self._files

    def read(self, path: str) -> bytes:
        return self.files()[path][1]


def iso_time(ts: float | datetime) -> str:
    if not isinstance(ts, datetime):
        ts = datetime.fromtimestamp(ts, tz=timezone.utc)
    return ts.strftime("%Y-%m-%dT%H:%M:%S.000Z")


# --------------------------------------------------------------------------------------------------------------
# HTML to text: one "block" (paragraph, list item, heading, table row, code block) per line.
# --------------------------------------------------------------------------------------------------------------

BLOCK_TAGS = {
    "address", "article", "aside", "blockquote", "body", "br", "caption", "dd", "details", "div", "dl", "dt",
    "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main",
    "ol", "p", "pre", "section", "summary", "table", "tbody", "thead", "tfoot", "tr", "ul",
}  # fmt: skip
SKIP_TAGS = {"script", "style", "head", "nav", "svg", "noscript", "button", "select", "object", "map"}
VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "wbr"}


@dataclasses.dataclass
class Block:
    kind: str  # "h" (heading), "p" (prose-like text) or "pre" (preformatted/code)
    text: str
    level: int = 0  # heading level
    anchor: str = ""  # id of the nearest element with an id at or before a heading


class BlockExtractor(html.parser.HTMLParser):
    """Collects text blocks from an HTML page, skipping navigation and other boilerplate subtrees.

    ``skip_classes`` / ``skip_ids`` name elements whose whole subtree is ignored (sidebars, tables of contents,
    navigation headers, permalink markers...).
    """

    def __init__(self, skip_classes: Iterable[str] = (), skip_ids: Iterable[str] = ()) -> None:
        super().__init__(convert_charrefs=True)
        self.skip_classes = set(skip_classes)
        self.skip_ids = set(skip_ids)
        self.blocks: list[Block] = []
        self._buf: list[str] = []
        self._skip_tag: str | None = None
        self._skip_depth = 0
        self._pre_depth = 0
        self._heading = 0
        self._pending_id = ""  # last id attribute seen since the previous block boundary
        self._heading_anchor = ""
        self._row_cells = 0

    def _flush(self) -> None:
        raw = "".join(self._buf)
        self._buf = []
        if self._pre_depth:
            text = raw.strip("\n")
            if text.strip():
                self.blocks.append(Block("pre", text.rstrip()))
                self._pending_id = ""
            return
        text = " ".join(raw.split())
        if not text.replace("|", "").strip():
            return
        self._pending_id = ""
        if self._heading:
            self.blocks.append(Block("h", text, self._heading, self._heading_anchor))
        else:
            self.blocks.append(Block("p", text))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skip_tag is not None:
            if tag == self._skip_tag and tag not in VOID_TAGS:
                self._skip_depth += 1
            return
        amap = {k: (v or "") for k, v in attrs}
        classes = set(amap.get("class", "").split())
        if tag in SKIP_TAGS or classes & self.skip_classes or amap.get("id", "") in self.skip_ids:
            if tag not in VOID_TAGS:
                self._skip_tag, self._skip_depth = tag, 1
            return
        if tag in ("td", "th"):
            if self._row_cells:
                self._buf.append(" | ")
            self._row_cells += 1
        elif tag in BLOCK_TAGS:
            self._flush()
            if tag == "tr":
                self._row_cells = 0
            if tag == "pre":
                self._pre_depth += 1
            if re.fullmatch(r"h[1-6]", tag):
                self._heading = int(tag[1])
                self._heading_anchor = amap.get("id") or self._pending_id
        if amap.get("id"):
            if self._heading and not self._heading_anchor:
                self._heading_anchor = amap["id"]
            self._pending_id = amap["id"]

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID_TAGS:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._skip_tag is not None:
            if tag == self._skip_tag:
                self._skip_depth -= 1
                if self._skip_depth == 0:
                    self._skip_tag = None
            return
        if tag in BLOCK_TAGS:
            self._flush()
            if tag == "pre" and self._pre_depth:
                self._pre_depth -= 1
            if re.fullmatch(r"h[1-6]", tag):
                self._heading = 0
                self._heading_anchor = ""

    def handle_data(self, data: str) -> None:
        if self._skip_tag is None:
            self._buf.append(data)

    def close(self) -> None:
        super().close()
        self._flush()


def html_blocks(html_text: str, skip_classes: Iterable[str] = (), skip_ids: Iterable[str] = ()) -> list[Block]:
    parser = BlockExtractor(skip_classes, skip_ids)
    parser.feed(html_text)
    parser.close()
    return parser.blocks


# --------------------------------------------------------------------------------------------------------------
# Documents
# --------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class SourceDoc:
    """A document before ids are assigned. ``key`` is a stable, unique sort key (its origin)."""

    text: str
    source: str  # output sub-directory and Dolma "source" field
    url: str
    license: str
    origin: str  # "<package> <version>: <path inside the package>[#anchor]" or "synthetic: ..."
    lang: str  # ISO 639-1 code (zh for both Chinese variants)
    created: str
    key: str
    pool: str = ""  # name of the pool it was drawn from
    id: str = ""  # assigned by assign_ids
    derived: bool = False  # True for planted copies/variants/synthetic documents
    extra_metadata: dict = dataclasses.field(default_factory=dict)


def sections_to_docs(
    blocks: list[Block],
    page_title: str,
    split_levels: int,
    min_chars: int,
    max_chars: int,
) -> list[tuple[str, list[Block]]]:
    """Group blocks into sections at headings of level <= split_levels; merge small ones, cap big ones.

    Returns (anchor, blocks) pairs. A section bigger than max_chars is split again at the next heading level,
    then truncated at a block boundary.
    """

    def split(bs: list[Block], level: int) -> list[list[Block]]:
        groups: list[list[Block]] = []
        for b in bs:
            if b.kind == "h" and b.level <= level and (not groups or groups[-1]):
                groups.append([b])
            elif groups:
                groups[-1].append(b)
            else:
                groups.append([b])
        return groups

    def size(bs: list[Block]) -> int:
        return sum(len(b.text) + 1 for b in bs)

    out: list[list[Block]] = []

    def add(group: list[Block], level: int) -> None:
        if size(group) <= max_chars or level >= 6:
            out.append(group)
            return
        subs = split(group, level + 1)
        if len(subs) == 1:
            kept, total = [], 0
            for b in group:
                if total + len(b.text) > max_chars and kept:
                    break
                kept.append(b)
                total += len(b.text) + 1
            out.append(kept)
            return
        for s in subs:
            add(s, level + 1)

    for g in split(blocks, split_levels):
        add(g, split_levels)

    merged: list[list[Block]] = []
    for g in out:
        if merged and size(merged[-1]) < min_chars and size(merged[-1]) + size(g) <= max_chars:
            merged[-1].extend(g)
        else:
            merged.append(list(g))
    result = []
    for g in merged:
        prose = sum(len(b.text) for b in g if b.kind != "h")
        if prose < min_chars:
            continue
        anchor = next((b.anchor for b in g if b.kind == "h" and b.anchor), "")
        if not g or g[0].kind != "h":
            g = [Block("h", page_title, 1), *g]
        result.append((anchor, g))
    return result


def blocks_text(blocks: list[Block]) -> str:
    return "\n".join(b.text for b in blocks)


# --------------------------------------------------------------------------------------------------------------
# Language heuristics (only to drop untranslated sections of the manuals and to label documents).
# --------------------------------------------------------------------------------------------------------------


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


STOPWORDS = {
    "en": _words("the and of to is in that for it with as on are this be by or not you can which from an if"),
    "de": _words("der die das und ist nicht mit den sie ein eine für auf dem des sich wird werden von zu im"),
    "fr": _words("le la les et des est un une pour dans que qui sur pas par vous avec du au sont ce"),
    "es": _words("el la los las y de que en es un una para por con se del al su como más"),
    "tr": _words("ve bir bu için ile da de olarak olan gibi daha çok ya ne ise veya olduğu"),
}


def script_lang(text: str) -> str | None:
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return None
    n = len(letters)
    kana = sum(1 for c in letters if "\u3040" <= c <= "\u30ff")
    han = sum(1 for c in letters if "\u4e00" <= c <= "\u9fff")
    cyr = sum(1 for c in letters if "\u0400" <= c <= "\u04ff")
    hangul = sum(1 for c in letters if "\uac00" <= c <= "\ud7af")
    if hangul / n > 0.3:
        return "ko"
    if kana / n > 0.05:
        return "ja"
    if han / n > 0.3:
        return "zh"
    if cyr / n > 0.5:
        return "ru"
    return None


def guess_lang(text: str) -> str:
    """Very small language guesser: script first, then stopword counts for en/de/fr/es/tr."""
    by_script = script_lang(text)
    if by_script:
        return by_script
    words = re.findall(r"[^\W\d_]+", text.lower())
    scores = {lang: sum(1 for w in words if w in sw) for lang, sw in STOPWORDS.items()}
    best = max(scores, key=lambda k: (scores[k], k == "en"))
    return best if scores[best] > 0 else "en"


def share_in_lang(blocks: list[Block], lang: str) -> float:
    """Share of prose characters (paragraphs of 40+ chars, no code) that look like `lang`."""
    total = hit = 0
    for b in blocks:
        if b.kind != "p" or len(b.text) < 40:
            continue
        total += len(b.text)
        if guess_lang(b.text) == lang:
            hit += len(b.text)
    return hit / total if total else 0.0


# --------------------------------------------------------------------------------------------------------------
# Step 2: extraction, one function per source. Each returns {pool name: [SourceDoc, ...]} sorted by key.
# --------------------------------------------------------------------------------------------------------------


def slug(text: str) -> str:
    return re.sub(r"[^\w]+", "_", text.lower()).strip("_")[:60] or "section"


def page_documents(
    blocks: list[Block],
    *,
    page_title: str,
    split_levels: int,
    lang: str,
    pkg: DebPackage,
    path: str,
    mtime: int,
    source: str,
    page_url: str,
    min_chars: int,
    max_chars: int,
) -> list[SourceDoc]:
    """Section documents of one HTML page, with the language check and one distinct URL per section.

    Sections whose prose is not mostly in `lang` are dropped (untranslated parts of translations, and one
    Apache "English" page that Debian ships in Portuguese). A section without an id gets a slug of its heading.
    """
    docs: list[SourceDoc] = []
    seen: set[str] = set()
    for i, (anchor, group) in enumerate(sections_to_docs(blocks, page_title, split_levels, min_chars, max_chars)):
        if share_in_lang(group, lang) < 0.8:
            continue
        if not anchor and i > 0:
            anchor = slug(group[0].text)
        frag = f"#{anchor}" if anchor else ""
        n = 2
        while frag in seen:
            frag = f"#{anchor}-{n}"
            n += 1
        seen.add(frag)
        docs.append(
            SourceDoc(
                text=blocks_text(group),
                source=source,
                url=f"{page_url}{frag}",
                license=pkg.license,
                origin=f"{pkg.name} {pkg.version}: {path}{frag}",
                lang=lang,
                created=iso_time(mtime),
                key=f"{path}{frag}",
            )
        )
    return docs


@dataclasses.dataclass
class Page:
    """One page of a manual, to be cut into section documents by `page_documents` (see `extract_pages`)."""

    pool: str
    title: str
    blocks: list[Block]
    url: str
    lang: str = "en"
    split_levels: int = 2


def extract_pages(
    cache: Path,
    packages: Iterable[DebPackage],
    parse: Callable[[DebPackage, str, bytes], Page | None],
    *,
    source: str,
    min_chars: int,
    max_chars: int,
) -> dict[str, list[SourceDoc]]:
    """The section documents of every file of `packages` that `parse(pkg, path, data)` turns into a Page (None
    skips the file), by pool name, each pool sorted by key."""
    pools: dict[str, list[SourceDoc]] = {}
    for pkg in packages:
        for path, (mtime, raw) in DebArchive(deb_path(cache, pkg)).files().items():
            page = parse(pkg, path, raw)
            if page is None:
                continue
            pools.setdefault(page.pool, []).extend(
                page_documents(
                    page.blocks,
                    page_title=page.title,
                    split_levels=page.split_levels,
                    lang=page.lang,
                    pkg=pkg,
                    path=path,
                    mtime=mtime,
                    source=source,
                    page_url=page.url,
                    min_chars=min_chars,
                    max_chars=max_chars,
                )
            )
    return {k: sorted(v, key=lambda d: d.key) for k, v in sorted(pools.items())}


def html_page_path(path: str, prefix: str) -> str | None:
    """The path of an HTML page below `prefix` relative to it, or None for any other file."""
    return path[len(prefix) :] if path.startswith(prefix) and path.endswith(".html") else None


def html_title(page: str, default: str) -> str:
    """The page's <title>, unescaped, with white space folded (`default` if it has none)."""
    title = re.search(r"<title>(.*?)</title>", page, re.S)
    return " ".join(html.unescape(title.group(1)).split()) if title else default


PY_SKIP_PAGES = re.compile(
    r"(^genindex|^py-modindex|^search\.html|^contents\.html|^whatsnew/changelog\.html"
    r"|^license\.html|^copyright\.html|^download\.html|^_)"
)


def extract_python_docs(cache: Path, min_chars: int = 400, max_chars: int = 9000) -> dict[str, list[SourceDoc]]:
    def parse(pkg: DebPackage, path: str, raw: bytes) -> Page | None:
        rel = html_page_path(path, "usr/share/doc/python3.11/html/")
        if rel is None or PY_SKIP_PAGES.search(rel):
            return None
        page = raw.decode("utf-8")
        body = page.split('<div class="body" role="main">', 1)[-1]
        title = re.search(r"<title>(.*?)</title>", page, re.S)
        page_title = html.unescape(title.group(1)).split(" — ")[0].strip() if title else rel
        blocks = html_blocks(body, skip_classes={"headerlink", "sphinxsidebar", "related", "footer"})
        return Page("python-docs/en", page_title, blocks, f"https://docs.python.org/3.11/{rel}")

    pkgs = [PACKAGES["python3.11-doc"]]
    return extract_pages(cache, pkgs, parse, source="python-docs", min_chars=min_chars, max_chars=max_chars)


def python_docs_footer(cache: Path) -> list[str]:
    """The real footer paragraph lines of the Python documentation pages (used as planted boilerplate)."""
    pkg = PACKAGES["python3.11-doc"]
    page = DebArchive(deb_path(cache, pkg)).read("usr/share/doc/python3.11/html/library/json.html").decode()
    footer = page.split('<div class="footer">', 1)[1].split("</div>", 1)[0]
    footer = re.sub(r"Last updated on .*?\.", "", footer, flags=re.S)
    lines = [" ".join(html.unescape(re.sub(r"<[^>]+>", "", part)).split()) for part in footer.split("<br />")]
    return [ln for ln in lines if ln and not ln.startswith(("Found a bug", "Created using"))]


def extract_html_manual(
    cache: Path,
    pkg: DebPackage,
    *,
    pool: str,
    prefix: str,
    skip: Callable[[str], bool],
    skip_classes: set[str],
    url_base: str,
    min_chars: int,
    max_chars: int,
) -> dict[str, list[SourceDoc]]:
    """An English HTML manual below `prefix` (pages for which `skip(relative path)` holds left out), one pool
    of debian-docs section documents; a page's URL is `url_base` + its relative path."""

    def parse(pkg: DebPackage, path: str, raw: bytes) -> Page | None:
        rel = html_page_path(path, prefix)
        if rel is None or skip(rel):
            return None
        page = raw.decode("utf-8", errors="replace")
        return Page(pool, html_title(page, rel), html_blocks(page, skip_classes=skip_classes), url_base + rel)

    return extract_pages(cache, [pkg], parse, source="debian-docs", min_chars=min_chars, max_chars=max_chars)


def extract_sqlite_docs(cache: Path, min_chars: int = 400, max_chars: int = 9000) -> dict[str, list[SourceDoc]]:
    return extract_html_manual(
        cache,
        PACKAGES["sqlite3-doc"],
        pool="sqlite-docs/en",
        prefix="usr/share/doc/sqlite3/",
        skip=lambda rel: rel.startswith(("syntax/", "releaselog/", "images/")) or rel in ("sitemap.html", "docs.html"),
        skip_classes={"nosearch", "menu", "searchmenu", "imgcontainer", "fancy_toc"},
        url_base="https://www.sqlite.org/",
        min_chars=min_chars,
        max_chars=max_chars,
    )


DEBMAKE_LANGS = {"en": "en", "de": "de", "ja": "ja", "ru": "ru", "zh-cn": "zh", "zh-tw": "zh"}


def extract_debmake_docs(cache: Path, min_chars: int = 300, max_chars: int = 9000) -> dict[str, list[SourceDoc]]:
    prefix = "usr/share/doc/debmake-doc/html/"
    skip = {"navheader", "navfooter", "toc", "list-of-tables", "list-of-figures", "list-of-examples"}

    def parse(pkg: DebPackage, path: str, raw: bytes) -> Page | None:
        m = re.fullmatch(re.escape(prefix) + r"(\w+)\.([a-z-]+)\.html", path)
        if not m or m.group(2) not in DEBMAKE_LANGS:
            return None
        page_code, lang_code = m.groups()
        page = raw.decode("utf-8")
        url = f"https://www.debian.org/doc/manuals/debmake-doc/{page_code}.{lang_code}.html"
        blocks = html_blocks(page, skip_classes=skip)
        return Page(f"debmake-doc/{lang_code}", html_title(page, page_code), blocks, url, DEBMAKE_LANGS[lang_code])

    pkgs = [PACKAGES["debmake-doc"]]
    return extract_pages(cache, pkgs, parse, source="debian-docs", min_chars=min_chars, max_chars=max_chars)


APACHE_LANGS = ("en", "fr", "de", "es", "ja", "ko", "tr", "zh-cn")
APACHE_SKIP_IDS = {"page-header", "path", "quickview", "footer", "comments_section", "comments_thread"}
APACHE_SKIP_CLASSES = {"up", "toplang", "bottomlang", "top", "menu", "permalink"}


def extract_apache_docs(cache: Path, min_chars: int = 300, max_chars: int = 9000) -> dict[str, list[SourceDoc]]:
    """Apache HTTP Server manual. Debian fills languages without a translation with symlinks to English (skipped:
    only regular files are read); translated sections left in English are dropped by `page_documents`."""

    def parse(pkg: DebPackage, path: str, raw: bytes) -> Page | None:
        lang_path = html_page_path(path, "usr/share/doc/apache2-doc/manual/")
        if lang_path is None:
            return None
        lang_code, _, rel = lang_path.partition("/")
        if lang_code not in APACHE_LANGS or rel in ("sitemap.html", "license.html") or rel.endswith("index.html"):
            return None
        charset = re.search(rb"charset=([\w-]+)", raw[:2048])
        page = raw.decode(charset.group(1).decode() if charset else "utf-8")
        blocks = html_blocks(page, skip_classes=APACHE_SKIP_CLASSES, skip_ids=APACHE_SKIP_IDS)
        url = f"https://httpd.apache.org/docs/2.4/{lang_code}/{rel}"
        title = html_title(page, rel).split(" - ")[0]
        return Page(f"apache-httpd/{lang_code}", title, blocks, url, lang_code.split("-")[0])

    pkgs = [PACKAGES["apache2-doc"]]
    return extract_pages(cache, pkgs, parse, source="debian-docs", min_chars=min_chars, max_chars=max_chars)


def kjv_chapters(cache: Path) -> list[tuple[str, int, list[str]]]:
    """(book, chapter, verse lines) from the dumped KJV text."""
    path = cache / "kjv" / "kjv.txt"
    chapters: list[tuple[str, int, list[str]]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        m = re.fullmatch(r"(\S.*?) (\d+)", line)
        if m and not line.startswith(" "):
            chapters.append((m.group(1), int(m.group(2)), []))
        elif chapters:
            chapters[-1][2].append(line.strip())
    return chapters


def kjv_url(book: str, chapter: int | None = None) -> str:
    slug = book.replace(" ", "-")
    return (
        f"https://www.kingjamesbibleonline.org/{slug}-Chapter-{chapter}/"
        if chapter
        else (f"https://www.kingjamesbibleonline.org/{slug}-Book-Of-The-Bible/")
    )


def extract_kjv(cache: Path) -> dict[str, list[SourceDoc]]:
    """One document per chapter, except Genesis, which becomes one long (~200 KB) document."""
    pkg = PACKAGES["bible-kjv-text"]
    mtime = DebArchive(deb_path(cache, pkg)).files()["usr/lib/bible.data"][0]
    chapters, whole = [], []
    genesis: list[str] = []
    for book, number, verses in kjv_chapters(cache):
        text = "\n".join([f"{book} {number}", *verses])
        if book == "Genesis":
            genesis.append(text)
            continue
        key = f"kjv/{book}/{number:03d}"
        chapters.append(
            SourceDoc(
                text=text,
                source="web-mixed",
                url=kjv_url(book, number),
                license=pkg.license,
                origin=f"{pkg.name} {pkg.version}: usr/lib/bible.data ({book} {number}, decoded with bible-kjv)",
                lang="en",
                created=iso_time(mtime),
                key=key,
            )
        )
    whole.append(
        SourceDoc(
            text="\n".join(["The First Book of Moses, called Genesis", *genesis]),
            source="web-mixed",
            url=kjv_url("Genesis"),
            license=pkg.license,
            origin=f"{pkg.name} {pkg.version}: usr/lib/bible.data (Genesis 1-50, decoded with bible-kjv)",
            lang="en",
            created=iso_time(mtime),
            key="kjv/Genesis",
        )
    )
    return {"kjv/chapters": sorted(chapters, key=lambda d: d.key), "kjv/long": whole}


EXTRACTORS = (extract_python_docs, extract_sqlite_docs, extract_debmake_docs, extract_apache_docs, extract_kjv)


def extract_all(
    cache: Path, extractors: Iterable[Callable[[Path], dict[str, list[SourceDoc]]]] = EXTRACTORS
) -> dict[str, list[SourceDoc]]:
    """The pools of every extractor, in order, deduplicated (see `dedupe_pools`)."""
    pools: dict[str, list[SourceDoc]] = {}
    for fn in extractors:
        pools.update(fn(cache))
    return dedupe_pools(pools)


def dedupe_pools(pools: dict[str, list[SourceDoc]]) -> dict[str, list[SourceDoc]]:
    """Drop documents whose text occurs earlier (across all pools) so that only planted duplicates are exact."""
    seen: set[str] = set()
    out = {}
    for name, docs in pools.items():
        kept = []
        for d in docs:
            h = hashlib.sha1(d.text.encode()).hexdigest()
            if h in seen:
                continue
            seen.add(h)
            d.pool = name
            kept.append(d)
        out[name] = kept
    return out


# --------------------------------------------------------------------------------------------------------------
# Step 3: the plan and the selection of base documents.
# --------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class CorpusPlan:
    """How many documents of each kind; `for_size` scales it to a number of documents."""

    num_docs: int = 2400
    seed: int = 20240601
    non_english_share: float = 0.10
    # English base documents, by pool, as shares of the English base documents.
    english_shares: dict[str, float] = dataclasses.field(
        default_factory=lambda: {
            "python-docs/en": 0.47,
            "sqlite-docs/en": 0.22,
            "apache-httpd/en": 0.08,
            "debmake-doc/en": 0.03,
            "kjv/chapters": 0.20,
        }
    )
    exact_dup_groups: int = 16
    near_dup_pairs: int = 16
    prefix_dup_pairs: int = 10
    copied_block_pairs: int = 6
    boilerplate_groups: int = 3  # each group: 4-8 documents sharing a block of boilerplate paragraphs
    pii_in_real_docs: int = 30
    pii_synthetic_docs: int = 24
    low_quality_docs: int = 70
    files_per_source: dict[str, int] = dataclasses.field(
        default_factory=lambda: {"python-docs": 2, "debian-docs": 2, "web-mixed": 1}
    )

    @classmethod
    def for_size(cls, num_docs: int, seed: int = 20240601) -> CorpusPlan:
        plan = cls(num_docs=num_docs, seed=seed)
        scale = num_docs / 2400
        for field in (
            "exact_dup_groups",
            "near_dup_pairs",
            "prefix_dup_pairs",
            "copied_block_pairs",
            "pii_in_real_docs",
            "pii_synthetic_docs",
            "low_quality_docs",
        ):
            setattr(plan, field, max(2, round(getattr(plan, field) * scale)))
        return plan


def planted_doc_count(plan: CorpusPlan) -> int:
    """Documents added by planting (copies, synthetic documents, edge cases), not drawn from the pools."""
    return (
        sum(exact_dup_copies(i) for i in range(plan.exact_dup_groups))
        + plan.near_dup_pairs
        + plan.prefix_dup_pairs
        + plan.pii_synthetic_docs
        + plan.low_quality_docs
        + len(EDGE_CASES)
    )


def select_base_documents(pools: dict[str, list[SourceDoc]], plan: CorpusPlan, rng: random.Random) -> list[SourceDoc]:
    """Sample the pools. Non-English pools share `non_english_share` of all documents, as evenly as they can."""
    n_base = plan.num_docs - planted_doc_count(plan)
    n_foreign = round(plan.num_docs * plan.non_english_share)
    by_lang: dict[str, list[str]] = {}
    for name, docs in pools.items():
        if docs and docs[0].lang != "en":
            by_lang.setdefault(docs[0].lang, []).append(name)
    lang_quotas = fair_quotas({lang: sum(len(pools[p]) for p in names) for lang, names in by_lang.items()}, n_foreign)
    quotas: dict[str, int] = {}
    for lang, names in by_lang.items():
        quotas.update(fair_quotas({p: len(pools[p]) for p in names}, lang_quotas[lang]))
    n_english = n_base - sum(quotas.values()) - len(pools.get("kjv/long", []))
    wanted = {name: round(n_english * share) for name, share in plan.english_shares.items()}
    wanted[next(iter(wanted))] += n_english - sum(wanted.values())
    # A pool that is too small passes its surplus on to the next pools (in the order of english_shares).
    surplus = 0
    names = list(wanted)
    for i, name in enumerate(names + names):
        if i < len(names):
            want = wanted[name] + surplus
        else:
            want = quotas[name] + surplus
        quotas[name] = min(want, len(pools.get(name, [])))
        surplus = want - quotas[name]
    if surplus:
        raise SystemExit(f"the sources have too few English documents for {plan.num_docs} documents")
    chosen = [*pools.get("kjv/long", [])]
    for name in sorted(quotas):
        chosen.extend(rng.sample(pools.get(name, []), quotas[name]))
    return chosen


def fair_quotas(sizes: dict[str, int], total: int) -> dict[str, int]:
    """Split `total` among pools as evenly as possible without exceeding any pool's size."""
    quotas = dict.fromkeys(sizes, 0)
    remaining = total
    while remaining > 0:
        open_pools = sorted(p for p in sizes if quotas[p] < sizes[p])
        if not open_pools:
            raise SystemExit(f"not enough non-English documents for {total}")
        for p in open_pools:
            if remaining == 0:
                break
            quotas[p] += 1
            remaining -= 1
    return quotas


# --------------------------------------------------------------------------------------------------------------
# Step 4: planting. Every function records what it planted in the GroundTruth.
# --------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class GroundTruth:
    exact_duplicates: list[list[SourceDoc]] = dataclasses.field(default_factory=list)
    near_duplicates: list[dict] = dataclasses.field(default_factory=list)  # {"docs": [a, b], "edits": [...]}
    partial_duplicates: list[dict] = dataclasses.field(default_factory=list)  # {"kind", "docs", "shared"}
    pii: list[tuple[SourceDoc, str, str]] = dataclasses.field(default_factory=list)  # (doc, type, value)
    low_quality: list[tuple[SourceDoc, str]] = dataclasses.field(default_factory=list)
    edge_cases: list[tuple[SourceDoc, str]] = dataclasses.field(default_factory=list)
    # Synthetic documents made from the same template (contact pages, low-quality pages): similar by construction.
    templated: dict[str, list[SourceDoc]] = dataclasses.field(default_factory=dict)


class Planter:
    """Keeps track of which documents have been used for planting, so that plantings never overlap."""

    def __init__(self, docs: list[SourceDoc], rng: random.Random) -> None:
        self.docs = docs
        self.rng = rng
        self.used: set[str] = set()
        self.truth = GroundTruth()

    def pick(self, n: int, ok=lambda d: True) -> list[SourceDoc]:
        candidates = [d for d in self.docs if d.key not in self.used and not d.derived and ok(d)]
        picked = self.rng.sample(candidates, min(n, len(candidates)))
        for d in picked:
            self.used.add(d.key)
        return picked

    def add(self, doc: SourceDoc) -> SourceDoc:
        doc.derived = True
        self.used.add(doc.key)
        self.docs.append(doc)
        return doc


def variant_url(url: str, rng: random.Random, n: int) -> str:
    """A different but plausible URL for the same page (other version, mirror, tracking query...)."""
    options = [
        lambda u: u.replace("https://", "http://", 1),
        lambda u: u.split("#")[0] + "?highlight=" + rng.choice(["install", "example", "error", "config"]),
        lambda u: u.split("#")[0] + "?utm_source=newsletter&utm_medium=email",
        lambda u: u.replace("/3.11/", "/3.10/") if "/3.11/" in u else u.replace("://www.", "://", 1),
        lambda u: f"https://web.archive.org/web/2023{n + 1:02d}01000000/{u}",
        lambda u: u.split("#")[0] + f"?page={n + 2}",
    ]
    return options[(n + rng.randrange(len(options))) % len(options)](url)


def copy_doc(doc: SourceDoc, rng: random.Random, n: int, text: str | None = None, tag: str = "copy") -> SourceDoc:
    source = doc.source if rng.random() < 0.5 else "web-mixed"
    return dataclasses.replace(
        doc,
        text=doc.text if text is None else text,
        source=source,
        url=variant_url(doc.url, rng, n),
        key=f"{doc.key}~{tag}{n}",
        id="",
        derived=True,
        extra_metadata={},
    )


def exact_dup_copies(group_index: int) -> int:
    """Copies planted for the n-th exact-duplicate group: every third group has two copies, the others one."""
    return 2 if group_index % 3 == 0 else 1


def plant_exact_duplicates(p: Planter, groups: int) -> None:
    for g, doc in enumerate(p.pick(groups, lambda d: 200 <= len(d.text) <= 8000)):
        copies = [p.add(copy_doc(doc, p.rng, i)) for i in range(exact_dup_copies(g))]
        p.truth.exact_duplicates.append([doc, *copies])


SYNONYMS = {
    "use": "utilize", "used": "utilized", "function": "routine", "returns": "yields", "value": "result",
    "file": "document", "example": "sample", "create": "make", "following": "subsequent", "must": "should",
    "data": "information", "string": "text", "also": "additionally", "new": "fresh", "large": "big",
    "small": "tiny", "first": "initial", "change": "modify", "shows": "displays", "may": "might", "can": "could",
    "method": "procedure", "error": "failure", "user": "person", "call": "invoke", "set": "assign",
    "package": "bundle", "command": "instruction", "said": "spake", "unto": "to", "came": "went", "people": "folk",
    "directive": "setting", "server": "host", "request": "query", "module": "extension", "table": "relation",
    "database": "datastore", "query": "statement", "column": "field", "object": "instance", "list": "sequence",
    "number": "count", "when": "whenever", "will": "shall", "should": "ought to", "all": "every", "before": "prior to",
    "great": "mighty", "king": "ruler", "land": "country", "house": "household", "children": "sons",
}  # fmt: skip


def perturb_words(text: str, rng: random.Random, n_edits: int, lang: str = "en") -> tuple[str, list[dict]]:
    """Change n_edits words on prose lines (not the title, not code): in English about two thirds are replaced with
    a synonym (when the text has words from SYNONYMS), the others deleted; in other languages words are only
    deleted. Returns the new text and the edits, in text order."""
    synonyms = SYNONYMS if lang == "en" else {}
    lines = text.split("\n")
    slots = []
    for li, line in enumerate(lines):
        if li == 0 or line.startswith((" ", ">>>", "$", "#")):
            continue
        for m in re.finditer(r"(?<![\w./-])[A-Za-z]{3,}(?![\w./(-])", line):
            slots.append((li, m.start(), m.end()))
    replaceable = [s for s in slots if lines[s[0]][s[1] : s[2]].lower() in synonyms]
    n_replace = min(len(replaceable), n_edits - n_edits // 3)
    chosen = rng.sample(replaceable, n_replace)
    others = [s for s in slots if s not in chosen]
    chosen += rng.sample(others, min(len(others), n_edits - n_replace))
    edits = []
    for li, start, end in sorted(chosen, reverse=True):
        line = lines[li]
        word = line[start:end]
        new = synonyms.get(word.lower()) if (li, start, end) in replaceable else None
        if new:
            new = new.capitalize() if word[0].isupper() else new
            lines[li] = line[:start] + new + line[end:]
            edits.append({"op": "replace", "old": word, "new": new})
        else:
            cut_end = end + 1 if line[end : end + 1] == " " else end
            lines[li] = line[:start] + line[cut_end:]
            edits.append({"op": "delete", "old": word})
    return "\n".join(lines), list(reversed(edits))


def plant_near_duplicates(p: Planter, pairs: int) -> None:
    def ok(d: SourceDoc) -> bool:
        n_words = len(d.text.split())
        return d.lang in ("en", "fr", "es", "de") and 150 <= n_words <= 1500

    for i, doc in enumerate(p.pick(pairs, ok)):
        n_words = len(doc.text.split())
        n_edits = max(2, min(12, round(n_words * 0.015)))
        text, edits = perturb_words(doc.text, p.rng, n_edits, doc.lang)
        copy = p.add(copy_doc(doc, p.rng, i, text=text, tag="near"))
        p.truth.near_duplicates.append({"docs": [doc, copy], "edits": edits})


def paragraphs(text: str) -> list[str]:
    return text.split("\n")


def plant_prefix_duplicates(p: Planter, pairs: int) -> None:
    """A new document made of the first paragraphs of A followed by paragraphs of another document C."""
    cands = p.pick(pairs, lambda d: len(paragraphs(d.text)) >= 8 and len(d.text) <= 8000)
    for i, doc in enumerate(cands):
        others = p.pick(1, lambda d, lang=doc.lang: d.lang == lang and len(paragraphs(d.text)) >= 4)
        if not others:
            continue
        paras = paragraphs(doc.text)
        k = max(4, len(paras) // 2)
        tail = paragraphs(others[0].text)[1:]
        new = p.add(copy_doc(doc, p.rng, i, text="\n".join(paras[:k] + tail), tag="prefix"))
        new.url = others[0].url.split("#")[0] + "?print=1"
        head = [x for x in paras[:k] if len(x) >= 20 and x not in tail]
        p.truth.partial_duplicates.append(
            {"kind": "prefix", "docs": [doc, new], "shared": head, "note": f"first {k} paragraphs of the first"}
        )
        rest = [x for x in tail if len(x) >= 20 and x not in paras[:k]]
        p.truth.partial_duplicates.append(
            {
                "kind": "suffix",
                "docs": [others[0], new],
                "shared": rest,
                "note": "all paragraphs of the first but its title line",
            }
        )


def plant_copied_blocks(p: Planter, pairs: int) -> None:
    """Three consecutive paragraphs of A are pasted into the middle of another existing document B."""
    for _ in range(pairs):
        ab = p.pick(1, lambda d: len(paragraphs(d.text)) >= 6 and d.lang == "en")
        if not ab:
            return
        a = ab[0]
        bs = p.pick(1, lambda d: len(paragraphs(d.text)) >= 4 and d.lang == "en")
        if not bs:
            return
        b = bs[0]
        pa = paragraphs(a.text)
        start = p.rng.randrange(1, len(pa) - 3)
        block = pa[start : start + 3]
        pb = paragraphs(b.text)
        at = p.rng.randrange(1, len(pb))
        b.text = "\n".join(pb[:at] + block + pb[at:])
        shared = [x for x in block if len(x) >= 20]
        if shared:
            p.truth.partial_duplicates.append({"kind": "copied_block", "docs": [a, b], "shared": shared})


COOKIE_BANNER = [
    "We use cookies to give you the best possible experience on our website.",
    "By continuing to browse this site, you agree to our use of cookies as described in our Cookie Policy.",
    "Accept all cookies | Reject non-essential cookies | Cookie settings",
]
NEWSLETTER_FOOTER = [
    "Subscribe to our newsletter to get the latest articles delivered to your inbox.",
    "Copyright 2024. All rights reserved. Privacy Policy | Terms of Use | Cookie Policy",
]


def plant_boilerplate(p: Planter, groups: int, python_footer: list[str], mit_text: list[str]) -> None:
    """Groups of documents that end with (or start with) the same block of boilerplate paragraphs."""
    specs = [
        ("python-docs/en", python_footer, "end"),
        ("kjv/chapters", COOKIE_BANNER, "start"),
        ("debmake-doc/en", mit_text, "end"),
        ("sqlite-docs/en", NEWSLETTER_FOOTER, "end"),
    ]
    for pool, block, where in specs[:groups]:
        docs = p.pick(p.rng.randint(4, 8), lambda d, pool=pool: d.pool == pool)
        if len(docs) < 2:
            continue
        for d in docs:
            d.text = "\n".join([*block, d.text]) if where == "start" else "\n".join([d.text, *block])
        p.truth.partial_duplicates.append({"kind": "boilerplate", "docs": docs, "shared": list(block)})


FIRST_NAMES = ["Alice", "Bruno", "Chloe", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Keiko"]
LAST_NAMES = ["Martin", "Novak", "Okafor", "Petrov", "Quinn", "Rossi", "Schmidt", "Tanaka", "Umar", "Varga"]


def fake_email(rng: random.Random) -> str:
    first, last = rng.choice(FIRST_NAMES).lower(), rng.choice(LAST_NAMES).lower()
    local = rng.choice(
        [
            f"{first}.{last}",
            f"{first[0]}{last}",
            f"{first}_{last}{rng.randint(1, 99)}",
            "support",
            "info",
            f"{first}+news",
        ]
    )
    return f"{local}@{rng.choice(['example.com', 'example.org', 'mail.example.com', 'example.org'])}"


def fake_phone(rng: random.Random) -> str:
    # 555-01xx numbers are reserved for fiction in the North American Numbering Plan.
    area = rng.choice(["555", "202", "312", "415", "617", "720"])
    line = f"01{rng.randint(0, 99):02d}"
    fmt = rng.choice(["({a}) 555-{l}", "+1 {a} 555 {l}", "{a}-555-{l}", "{a}.555.{l}", "+1-{a}-555-{l}"])
    return fmt.format(a=area, l=line)


def fake_ip(rng: random.Random) -> str:
    net = rng.choice(["192.0.2", "198.51.100", "203.0.113"])  # RFC 5737 documentation ranges
    return f"{net}.{rng.randint(1, 254)}"


PII_LINES_EN = [
    ("EMAIL_ADDRESS", "For questions about this page, write to {v}."),
    ("EMAIL_ADDRESS", "Maintainer contact: {v}"),
    ("PHONE_NUMBER", "If you need help, call the support desk at {v} (Monday to Friday, 9am to 5pm)."),
    ("PHONE_NUMBER", "Phone: {v}"),
    ("IP_ADDRESS", "This mirror is served from {v}; report outages to the administrators."),
    ("IP_ADDRESS", "Last edited from {v}."),
]


def pii_value(kind: str, rng: random.Random) -> str:
    return {"EMAIL_ADDRESS": fake_email, "PHONE_NUMBER": fake_phone, "IP_ADDRESS": fake_ip}[kind](rng)


def plant_pii_in_documents(p: Planter, n: int) -> None:
    """Insert one or two contact/log lines with PII-like strings at paragraph boundaries of real documents."""
    for doc in p.pick(n, lambda d: d.lang == "en" and len(d.text) < 20000):
        paras = paragraphs(doc.text)
        for _ in range(p.rng.choice([1, 1, 2])):
            kind, template = p.rng.choice(PII_LINES_EN)
            value = pii_value(kind, p.rng)
            paras.insert(p.rng.randrange(1, len(paras) + 1), template.format(v=value))
            p.truth.pii.append((doc, kind, value))
        doc.text = "\n".join(paras)


def synthetic_doc(text: str, key: str, url: str, lang: str = "en", license: str = "CC0-1.0") -> SourceDoc:
    return SourceDoc(
        text=text,
        source="web-mixed",
        url=url,
        license=license,
        origin=f"synthetic: benchmarks/corpus/build_sample.py ({key})",
        lang=lang,
        created=iso_time(DEFAULT_ADDED - timedelta(days=30)),
        key=f"synthetic/{key}",
        derived=True,
    )


PII_PAGES = [
    (
        "en",
        "Contact us\nOur team is happy to answer your questions about orders, invoices and deliveries.\n"
        "Email: {EMAIL_ADDRESS}\nPhone: {PHONE_NUMBER}\nFor press enquiries please write to {EMAIL_ADDRESS}.\n"
        "Office hours are Monday to Friday, 9:00 to 17:00.",
    ),
    (
        "en",
        "Server maintenance notice\nOn Saturday the database host {IP_ADDRESS} will be taken offline for two hours.\n"
        "Traffic will be routed through the backup host {IP_ADDRESS} during the maintenance window.\n"
        "If you notice problems afterwards, open a ticket or email {EMAIL_ADDRESS}.",
    ),
    (
        "en",
        "Re: build fails on the new runner\nI see the same error when the job connects to {IP_ADDRESS}.\n"
        "It started after the firewall change last week. Happy to pair on this, ping me at {EMAIL_ADDRESS}\n"
        "or call {PHONE_NUMBER} after 3pm.\nThanks,\n{NAME}",
    ),
    (
        "en",
        "Volunteer sign-up\nThank you for offering to help at the community garden this spring.\n"
        "The coordinator, {NAME}, can be reached at {PHONE_NUMBER} or {EMAIL_ADDRESS}.\n"
        "Please bring gloves and a water bottle. Tools are provided.",
    ),
    (
        "en",
        "Access log excerpt\n{IP_ADDRESS} - - GET /index.html 200\n{IP_ADDRESS} - - GET /styles.css 200\n"
        "{IP_ADDRESS} - - POST /login 302\nThe requests above were made during the load test.",
    ),
    (
        "fr",
        "Nous contacter\nPour toute question sur votre commande, écrivez-nous à {EMAIL_ADDRESS}.\n"
        "Vous pouvez aussi nous appeler au {PHONE_NUMBER} du lundi au vendredi.\n"
        "Notre équipe vous répondra dans les meilleurs délais.",
    ),
    (
        "de",
        "Kontakt\nBei Fragen zu Ihrer Bestellung schreiben Sie uns bitte an {EMAIL_ADDRESS}.\n"
        "Telefonisch erreichen Sie uns unter {PHONE_NUMBER} von Montag bis Freitag.\n"
        "Wir freuen uns über Ihre Nachricht.",
    ),
    (
        "es",
        "Contacto\nSi tiene alguna pregunta sobre su pedido, escríbanos a {EMAIL_ADDRESS}.\n"
        "También puede llamarnos al {PHONE_NUMBER} de lunes a viernes.\n"
        "Nuestro equipo le responderá lo antes posible.",
    ),
]


def plant_pii_pages(p: Planter, n: int) -> None:
    for i in range(n):
        lang, template = PII_PAGES[i % len(PII_PAGES)]
        doc = synthetic_doc("", f"pii-page-{i:03d}", "", lang=lang)
        found = []

        def fill(m: re.Match, found=found) -> str:
            kind = m.group(1)
            if kind == "NAME":
                return f"{p.rng.choice(FIRST_NAMES)} {p.rng.choice(LAST_NAMES)}"
            value = pii_value(kind, p.rng)
            found.append((kind, value))
            return value

        doc.text = re.sub(r"\{([A-Z_]+)\}", fill, template)
        site = p.rng.choice(["shop", "forum", "garden-club", "status", "blog"])
        doc.url = f"https://{site}.example.com/{['contact', 'notice', 'thread', 'page', 'log'][i % 5]}/{i + 1}"
        p.add(doc)
        p.truth.templated.setdefault(f"pii_page_{i % len(PII_PAGES)}", []).append(doc)
        for kind, value in found:
            p.truth.pii.append((doc, kind, value))


LOREM = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore "
    "magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo "
    "consequat. Duis aute irure dolor in reprehenderit in voluptate velit esse cillum dolore eu fugiat nulla pariatur."
)
SHOP_ITEMS = ["Wireless mouse", "USB-C cable, 2 m", "Laptop stand", "Mechanical keyboard", "Noise-cancelling headset",
              "27-inch monitor", "Webcam 1080p", "Desk lamp", "Ergonomic chair", "Cable organiser"]  # fmt: skip
HEADLINES = [
    "Ten tips for a faster morning routine", "Why your houseplants keep dying", "The best budget laptops of the year",
    "How to read a nutrition label", "Local team wins the regional final", "New bridge opens to traffic next week",
    "What the latest interest rate decision means for you", "A beginner's guide to sourdough",
]  # fmt: skip


def low_quality_texts(rng: random.Random, round_no: int) -> list[tuple[str, str]]:
    """(kind, text) for one round of low-quality documents; every kind appears once per round."""
    items = rng.sample(SHOP_ITEMS, 7)
    heads = rng.sample(HEADLINES, 5)
    shorts = ["Click here", "Page not found", "Loading...", "Home", "Thanks!", "Sign in", "Next page", "Menu"]
    return [
        ("very_short", shorts[round_no % len(shorts)]),
        (
            "very_short",
            f"404 Not Found\nThe requested URL /{rng.choice(['shop', 'blog', 'img'])}/{round_no}.html "
            "was not found on this server.",
        ),
        ("bullet_list", "\n".join(f"{rng.choice(['•', '-', '*'])} {it}" for it in items)),
        ("bullet_list", "Features:\n" + "\n".join(f"• {it} included" for it in items[:5])),
        ("ellipsis_lines", "\n".join(f"{h[: rng.randint(18, len(h) - 2)]}..." for h in heads)),
        ("ellipsis_lines", "\n".join(f"{h}. Read more..." for h in heads)),
        ("symbols", f"#### SALE #### $$$ {rng.randint(10, 70)}% OFF $$$ >>> !!! ### *** ### ~~~ === @@@ ### $$$"),
        ("symbols", "\n".join("#" * rng.randint(5, 40) + " " + "=" * rng.randint(3, 20) for _ in range(8))),
        ("repeated_lines", "\n".join([f"Buy {items[0].lower()} now at the lowest price!"] * rng.randint(15, 30))),
        ("repeated_lines", "\n".join(["Share this:", "Like this:", "Related"] * (6 + round_no))),
        ("lorem_ipsum", "\n".join([LOREM] * (2 + round_no))),
        ("lorem_ipsum", f"Lorem ipsum {round_no + 1}\n{LOREM[: 120 + 20 * round_no]}\nContact | About | Lorem ipsum"),
        (
            "javascript",
            "Please enable JavaScript in your browser to view this page.\n"
            "window.dataLayer = window.dataLayer || [];\nfunction gtag(){dataLayer.push(arguments);}\n"
            f"gtag('js', new Date()); gtag('config', 'UA-{round_no:06d}-1');",
        ),
        (
            "javascript",
            "You need to enable javascript to run this app.\n"
            f'if (typeof window !== "undefined") {{ document.body.className = "js-{round_no}"; }}',
        ),
        ("cookie_boilerplate", "\n".join([*COOKIE_BANNER, *NEWSLETTER_FOOTER[: 1 + round_no % 2], heads[0]])),
        (
            "cookie_boilerplate",
            "This website uses cookies to ensure you get the best experience on our website.\nLearn more\nGot it!\n"
            f"Privacy Policy\nCookie Policy\nTerms of Service\n{heads[1]}",
        ),
        ("no_punctuation", "\n".join(h.lower() for h in heads)),
        (
            "menu_page",
            f"Home\nProducts\nServices\nBlog\nCareers\nContact\nSitemap\nLogin\nRegister\nCart ({round_no})",
        ),
    ]


def plant_low_quality(p: Planter, n: int) -> None:
    """Low-quality pages, cycling through the kinds of `low_quality_texts`; texts are kept unique."""
    seen = {d.text for d in p.docs}
    made = 0
    for round_no in range(1000):
        for j, (kind, text) in enumerate(low_quality_texts(p.rng, round_no)):
            if made >= n:
                return
            if text in seen:
                continue
            seen.add(text)
            site = p.rng.choice(["www", "shop", "news", "blog", "m"])
            doc = synthetic_doc(text, f"low-quality-{made:03d}", f"https://{site}.example.com/p/{made + 1}.html")
            p.add(doc)
            p.truth.low_quality.append((doc, kind))
            p.truth.templated.setdefault(f"low_quality_{j:02d}_{kind}", []).append(doc)
            made += 1
    raise RuntimeError("could not make enough distinct low-quality documents")


EDGE_CASES = [
    "empty_text",
    "whitespace_only",
    "single_word",
    "emoji",
    "very_long_line",
    "very_long_line",
    "crlf_and_tabs",
    "mixed_scripts",
]


def plant_edge_cases(p: Planter, spares: list[SourceDoc]) -> None:
    """Edge-case documents. The long document (Genesis) is a base document and is recorded here too.

    The very-long-line documents join several SQLite sections that are *not* otherwise in the corpus (`spares`)
    into a single line, so they do not overlap any other document.
    """
    texts: dict[str, str] = {
        "empty_text": "",
        "whitespace_only": " \n\t \n  ",
        "single_word": "Python",
        "emoji": "Release day! 🎉🐍 Python 3.11 is out 🚀\nUpgrade today 👉 faster startup ⚡ better errors ✨\n"
        "Thanks to every contributor 🙏❤️",
        "crlf_and_tabs": "Name\tVersion\tLicence\r\nsqlite3\t3.40.1\tpublic domain\r\npython3.11\t3.11.2\tPSF\r\n"
        "debmake-doc\t1.17\tMIT\r\n",
        "mixed_scripts": "Café, naïve, façade; Straße; Ελληνικά; Русский текст; 日本語のテキスト; 中文文本; 한국어.",
    }
    spare_sqlite = [d for d in spares if d.pool == "sqlite-docs/en"]
    p.rng.shuffle(spare_sqlite)
    for i, kind in enumerate(EDGE_CASES):
        if kind == "very_long_line":
            parts: list[SourceDoc] = []
            while sum(len(d.text) for d in parts) < 30000:
                parts.append(spare_sqlite.pop())
            line = " ".join(" ".join(d.text.split("\n")) for d in parts)
            doc = synthetic_doc(line, f"edge-{i}", parts[0].url.split("#")[0] + "?view=all", license="public-domain")
            doc.origin = "; ".join(d.origin for d in parts) + " (joined into one line)"
        else:
            lang = "mul" if kind == "mixed_scripts" else "en"
            doc = synthetic_doc(texts[kind], f"edge-{i}", f"https://www.example.org/edge/{kind}", lang=lang)
        p.add(doc)
        p.truth.edge_cases.append((doc, kind))
    for d in p.docs:
        if d.pool == "kjv/long":
            p.used.add(d.key)
            p.truth.edge_cases.append((d, "long_document"))


def plant_all(
    base: list[SourceDoc],
    spares: list[SourceDoc],
    plan: CorpusPlan,
    rng: random.Random,
    python_footer: list[str],
    mit_text: list[str],
    planter: type[Planter] = Planter,
) -> tuple[list[SourceDoc], GroundTruth]:
    """Run every planting step; `spares` are pool documents that were not selected (used for long lines)."""
    p = planter(list(base), rng)
    plant_edge_cases(p, spares)
    plant_exact_duplicates(p, plan.exact_dup_groups)
    plant_near_duplicates(p, plan.near_dup_pairs)
    plant_prefix_duplicates(p, plan.prefix_dup_pairs)
    plant_copied_blocks(p, plan.copied_block_pairs)
    plant_boilerplate(p, plan.boilerplate_groups, python_footer, mit_text)
    plant_pii_in_documents(p, plan.pii_in_real_docs)
    plant_pii_pages(p, plan.pii_synthetic_docs)
    plant_low_quality(p, plan.low_quality_docs)
    return p.docs, p.truth


def check_unique_texts(docs: list[SourceDoc], truth: GroundTruth) -> None:
    """Exact duplicates must be exactly the planted groups."""
    by_text: dict[str, list[str]] = {}
    for d in docs:
        by_text.setdefault(d.text, []).append(d.key)
    planted = {tuple(sorted(d.key for d in g)) for g in truth.exact_duplicates}
    unplanned = [keys for keys in by_text.values() if len(keys) > 1 and tuple(sorted(keys)) not in planted]
    if unplanned:
        raise RuntimeError(f"unplanned exact duplicates: {unplanned[:5]}")


def mit_licence_paragraphs(cache: Path) -> list[str]:
    """The Expat licence paragraphs from debmake-doc's copyright file (real boilerplate text)."""
    raw = DebArchive(deb_path(cache, PACKAGES["debmake-doc"])).read("usr/share/doc/debmake-doc/copyright").decode()
    body = raw.split("License:   Expat\n", 1)[1].split("\n\n", 1)[0]
    paras, cur = [], []
    for line in body.splitlines():
        line = line.strip()
        if line == ".":
            paras.append(" ".join(cur))
            cur = []
        else:
            cur.append(line)
    paras.append(" ".join(cur))
    return [x for x in paras if x]


# --------------------------------------------------------------------------------------------------------------
# Step 5: ids and output.
# --------------------------------------------------------------------------------------------------------------


def ensure_unique_urls(docs: list[SourceDoc]) -> None:
    """Planted copies may land on the same variant URL by chance; make every URL distinct (query parameter)."""
    seen: set[str] = set()
    for d in sorted(docs, key=lambda d: (d.derived, d.key)):
        url, n = d.url, 2
        while url in seen:
            base, _, frag = d.url.partition("#")
            url = f"{base}{'&' if '?' in base else '?'}v={n}" + (f"#{frag}" if frag else "")
            n += 1
        d.url = url
        seen.add(url)


def assign_ids(
    docs: list[SourceDoc], rng: random.Random, sources: Iterable[str] = SOURCES, digits: int = 6
) -> list[SourceDoc]:
    """Shuffle deterministically within each source, then number: <source>-000000, <source>-000001, ...
    (`digits` digits), grouped by source in the order of `sources`."""
    out = []
    for source in sources:
        group = sorted((d for d in docs if d.source == source), key=lambda d: d.key)
        rng.shuffle(group)
        for i, d in enumerate(group):
            d.id = f"{source}-{i:0{digits}d}"
        out.extend(group)
    return out


def dolma_record(doc: SourceDoc, added: str) -> dict:
    metadata = {"url": doc.url, "license": doc.license, "origin": doc.origin, **doc.extra_metadata}
    return {
        "id": doc.id,
        "text": doc.text,
        "source": doc.source,
        "added": added,
        "created": doc.created,
        "version": "v0",
        "metadata": metadata,
    }


def write_jsonl_gz(path: Path, records: Iterable[dict], compresslevel: int = 9) -> None:
    """gzip JSON lines with mtime 0 and no file name in the header, written atomically (temporary file, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with (
        open(tmp, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=compresslevel, mtime=0) as gz,
    ):
        for rec in records:
            gz.write(json.dumps(rec, ensure_ascii=False).encode("utf-8") + b"\n")
    os.replace(tmp, path)


def write_parts(
    out: Path, source: str, chunks: Iterable[list[SourceDoc]], rng: random.Random, compresslevel: int = 9
) -> list[dict]:
    """documents/<source>/part-NNNN.jsonl.gz, one file per chunk (none may be empty), each document with a random
    `added` time in the 30 days after DEFAULT_ADDED. Returns the files' entries for ground_truth.json."""
    files = []
    for part, chunk in enumerate(chunks):
        path = out / "documents" / source / f"part-{part:04d}.jsonl.gz"
        added = (DEFAULT_ADDED + timedelta(seconds=rng.randrange(30 * 86400)) for _ in chunk)
        write_jsonl_gz(path, (dolma_record(d, iso_time(a)) for d, a in zip(chunk, added)), compresslevel)
        files.append(
            {
                "path": path.relative_to(out).as_posix(),
                "num_documents": len(chunk),
                "first_id": chunk[0].id,
                "last_id": chunk[-1].id,
                "bytes": path.stat().st_size,
            }
        )
    return files


def write_corpus(docs: list[SourceDoc], out: Path, plan: CorpusPlan, rng: random.Random) -> list[dict]:
    """Write documents/<source>/part-NNNN.jsonl.gz (contiguous, sorted id ranges). Returns the file list."""
    files = []
    docs_dir = out / "documents"
    if docs_dir.exists():
        shutil.rmtree(docs_dir)
    for source in SOURCES:
        group = sorted((d for d in docs if d.source == source), key=lambda d: d.id)
        n_files = plan.files_per_source[source]
        per_file = -(-len(group) // n_files)
        chunks = [group[part * per_file : (part + 1) * per_file] for part in range(n_files)]
        files += write_parts(out, source, chunks, rng)
    return files


def ground_truth_json(docs: list[SourceDoc], truth: GroundTruth, plan: CorpusPlan, files: list[dict]) -> dict:
    pii: dict[str, list[dict]] = {}
    for doc, kind, value in truth.pii:
        pii.setdefault(doc.id, []).append({"type": kind, "value": value})
    edge: dict[str, list[str]] = {}
    for doc, kind in truth.edge_cases:
        edge.setdefault(kind, []).append(doc.id)
    edge["non_ascii"] = sorted(d.id for d in docs if not d.text.isascii())
    edge["cjk"] = sorted(d.id for d in docs if re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", d.text))
    low: dict[str, list[str]] = {}
    for doc, kind in truth.low_quality:
        low.setdefault(kind, []).append(doc.id)
    langs = Counter(d.lang for d in docs)
    return {
        "schema_version": 1,
        "description": "Planted properties of the sample corpus; see PROVENANCE.md. Ids refer to documents/*.",
        "seed": plan.seed,
        "num_documents": len(docs),
        "files": files,
        "exact_duplicates": [
            {"ids": [d.id for d in group], "original_id": group[0].id} for group in truth.exact_duplicates
        ],
        "near_duplicates": [
            {
                "ids": [e["docs"][0].id, e["docs"][1].id],
                "original_id": e["docs"][0].id,
                "num_word_edits": len(e["edits"]),
                "edits": e["edits"],
            }
            for e in truth.near_duplicates
        ],
        "partial_duplicates": [
            {
                "kind": e["kind"],
                "ids": [d.id for d in e["docs"]],
                "shared_paragraphs": e["shared"],
                **({"note": e["note"]} if "note" in e else {}),
            }
            for e in truth.partial_duplicates
        ],
        "pii": dict(sorted(pii.items())),
        "languages": {
            "counts": dict(sorted(langs.items())),
            "non_english": dict(sorted((d.id, d.lang) for d in docs if d.lang != "en")),
        },
        "low_quality": {k: sorted(v) for k, v in sorted(low.items())},
        "edge_cases": {k: sorted(v) for k, v in sorted(edge.items())},
        "templated_groups": [
            {"template": name, "ids": sorted(d.id for d in group)}
            for name, group in sorted(truth.templated.items())
            if len(group) > 1
        ],
    }


def write_ground_truth(out: Path, gt: dict) -> None:
    (out / "ground_truth.json").write_text(json.dumps(gt, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------------------------------------------
# PROVENANCE.md (generated, so that its counts always match the files)
# --------------------------------------------------------------------------------------------------------------

PROVENANCE_HEAD = """\
# Sample corpus: provenance

Generated by `benchmarks/corpus/build_sample.py`; do not edit by hand (rebuild instead).
The documents are in Dolma format (gzip-compressed JSON lines with `id`, `text`, `source`, `added`, `created`,
`version` and `metadata.{url,license,origin}`), split by source under `documents/`. `ground_truth.json` lists
everything that was planted on purpose.

## Rebuild

```sh
python3 benchmarks/corpus/build_sample.py --fetch --cache ~/.cache/dolma-sample-sources --out tests/data/sample
```

`--fetch` runs `apt-get update` and `apt-get download <package>=<version>` for the packages below (Debian 12
"bookworm") into `<cache>/deb/`, checks their SHA-256, and decodes the King James Bible with the `bible` program
from `bible-kjv` into `<cache>/kjv/kjv.txt`. Everything else is pure standard-library Python: the `.deb` files are
read directly (ar + tar.xz), HTML is turned into text with `html.parser`, and the output is written with
`random.Random({seed})`, sorted ids and gzip mtime 0, so it is byte-identical given the same packages (and the same
zlib). Debian keeps only the current version of a package in its archive: if a pinned version is gone, the
script still builds from the newer one, with a warning, but the output will differ.

## Sources

| package (Debian) | version | SHA-256 of the .deb | licence | what is used |
| --- | --- | --- | --- | --- |
"""

PROVENANCE_USES = {
    "python3.11-doc": "HTML manual under `usr/share/doc/python3.11/html/` (all pages but indexes, changelog, "
    "licence); one document per top-level section; URL `https://docs.python.org/3.11/<page>#<anchor>`",
    "sqlite3-doc": "HTML documentation under `usr/share/doc/sqlite3/` (not the syntax diagrams or release log); "
    "one document per section; URL `https://www.sqlite.org/<page>#<anchor>`",
    "debmake-doc": "'Guide for Debian Maintainers' HTML in English, German, Russian and Chinese (simplified, "
    "traditional); one document per section, untranslated sections dropped (which removes all of the Japanese "
    "translation, mostly untranslated in this version); URL "
    "`https://www.debian.org/doc/manuals/debmake-doc/<page>.<lang>.html#<anchor>`",
    "apache2-doc": "Apache HTTP Server 2.4 manual in English and its translations (French, German, Spanish, "
    "Japanese, Korean, Turkish, simplified Chinese); one document per section, untranslated sections and the "
    "English fallbacks (symlinks) dropped, pages decoded with their declared charset (EUC-KR for Korean); URL "
    "`https://httpd.apache.org/docs/2.4/<lang>/<page>#<anchor>`",
    "bible-kjv-text": "King James Bible, decoded to text (one verse a line); one document per chapter, except "
    "Genesis, which is one long document; URL `https://www.kingjamesbibleonline.org/<Book>-Chapter-<n>/`",
    "bible-kjv": "program only (decodes the data file of bible-kjv-text); no text used",
}

PROVENANCE_PLANTED = """
### Synthetic and planted text

Synthetic text was written for this corpus (CC0-1.0; `metadata.origin` starts with `synthetic:`): the contact
pages and logs that carry PII-like strings (English, French, German, Spanish), the low-quality pages (very short
texts, bullet lists, lines ending in "...", runs of symbols, repeated lines, lorem ipsum, JavaScript snippets with
curly braces, cookie banners, menus, headlines without punctuation) and the small edge cases (empty text,
whitespace only, a single word, emoji, CRLF and tabs, mixed scripts). The two very-long-line documents are SQLite
sections (not otherwise in the corpus) joined into a single line; the long (~200 KB) document is the whole book of
Genesis.

Planted PII-like strings: email addresses at example.com / example.org (and mail.example.com), phone numbers in the
555-01xx range reserved for fiction, in five formats (`(415) 555-0123`, `+1 415 555 0123`, `415-555-0123`,
`415.555.0123`, `+1-415-555-0123`), IPv4 addresses in the RFC 5737 documentation ranges (192.0.2.0/24,
198.51.100.0/24, 203.0.113.0/24). They are either whole synthetic pages or one or two contact/log lines inserted
between the paragraphs of real English documents. The real documents contain PII-like strings of their own (the
maintainers' addresses in the Debian manuals, 192.0.2.x examples in the `ipaddress` docs, ...):
`ground_truth.json` lists only the planted ones.

Duplicates (all listed in `ground_truth.json`; paragraphs are lines, `text.split("\\n")`):

- exact: copies with a different id and URL (the same page at another URL: http, another Python version, a
  tracking query, the Wayback Machine...). Apart from these groups every text in the corpus is unique.
- near: copies with about 1.5% of the words changed (2 to 12 edits: synonym replacements in English, deletions),
  listed in `edits`.
- partial: `prefix` (a new document made of the first half of a document followed by all but the title of another
  one, which is recorded as `suffix`), `copied_block` (three consecutive paragraphs of one document pasted into
  another) and `boilerplate` (the same paragraphs added to several documents: the real Python docs footer, the
  Expat licence from debmake-doc's copyright file, a cookie banner, a newsletter footer).
- `templated_groups`: synthetic pages made from the same template (they differ only in the PII values or a few
  words), so they may look like near duplicates too. The real text also has natural near duplicates (e.g. Psalms
  14 and 53 in the King James Bible, the same Apache page in several languages sharing its configuration
  examples).
"""


PROVENANCE_SCHEMA = """
## ground_truth.json

- `files`: path, `num_documents`, `first_id`, `last_id` and compressed `bytes` of each file; `num_documents`, `seed`.
- `exact_duplicates`: `[{"ids": [...], "original_id": id}]`, every id in a group has the same text.
- `near_duplicates`: `[{"ids": [original, copy], "original_id", "num_word_edits", "edits": [{"op": "replace",
  "old", "new"} | {"op": "delete", "old"}]}]`.
- `partial_duplicates`: `[{"kind": "prefix" | "suffix" | "copied_block" | "boilerplate", "ids": [...],
  "shared_paragraphs": [...], "note"?}]`; every shared paragraph is a whole line of every listed document.
- `pii`: `{id: [{"type": "EMAIL_ADDRESS" | "PHONE_NUMBER" | "IP_ADDRESS", "value": str}]}`, planted values only;
  each value is a substring of the document's text.
- `languages`: `counts` (documents per language code, all documents) and `non_english` (`{id: code}`; codes are
  ISO 639-1, `zh` for both Chinese scripts, `mul` for the mixed-scripts edge case).
- `low_quality`: `{kind: [ids]}` with kinds `very_short`, `bullet_list`, `ellipsis_lines`, `symbols`,
  `repeated_lines`, `lorem_ipsum`, `javascript`, `cookie_boilerplate`, `no_punctuation`, `menu_page`.
- `edge_cases`: `{kind: [ids]}` with `empty_text`, `whitespace_only`, `single_word`, `emoji`, `crlf_and_tabs`,
  `mixed_scripts`, `very_long_line`, `long_document`, plus `non_ascii` (every document with a non-ASCII
  character) and `cjk` (every document with kana or CJK ideographs).
- `templated_groups`: `[{"template", "ids"}]`, synthetic documents made from one template.
"""


def write_provenance(out: Path, docs: list[SourceDoc], plan: CorpusPlan, files: list[dict], problems: list[str]):
    lines = [PROVENANCE_HEAD.replace("{seed}", str(plan.seed))]
    for pkg in PACKAGES.values():
        lines.append(
            f"| `{pkg.name}` | {pkg.version} | `{pkg.sha256[:16]}…` | {pkg.license} | {PROVENANCE_USES[pkg.name]} |\n"
        )
    lines.append("\nLicence notes:\n\n")
    for pkg in PACKAGES.values():
        lines.append(f"- `{pkg.name}`: {pkg.license_note}\n")
    lines.append(PROVENANCE_PLANTED)
    lines.append(PROVENANCE_SCHEMA)
    lines.append(
        "\n## Counts\n\nDocuments by origin and language (planted copies count under their original's "
        "package):\n\n| origin | language | documents |\n| --- | --- | --- |\n"
    )
    counts = Counter((d.origin.split(":")[0].split(" ")[0], d.lang) for d in docs)
    for (origin, lang), n in sorted(counts.items()):
        lines.append(f"| {origin} | {lang} | {n} |\n")
    langs = Counter(d.lang for d in docs)
    foreign = sum(n for lang, n in langs.items() if lang != "en")
    lines.append(
        f"\nLanguages: {', '.join(f'{k} {v}' for k, v in sorted(langs.items()))}; non-English "
        f"{foreign} of {len(docs)} ({100 * foreign / len(docs):.1f}%).\n"
    )
    lines.append("\n| file | documents | ids | bytes |\n| --- | --- | --- | --- |\n")
    for f in files:
        lines.append(f"| `{f['path']}` | {f['num_documents']} | {f['first_id']} .. {f['last_id']} | {f['bytes']} |\n")
    total = sum(f["bytes"] for f in files)
    lines.append(f"\nTotal: {len(docs)} documents, {total} bytes compressed.\n")
    if problems:
        lines.append("\nBuilt with source packages that differ from the pinned ones:\n\n")
        lines.extend(f"- {p}\n" for p in problems)
    (out / "PROVENANCE.md").write_text("".join(lines), encoding="utf-8")


# --------------------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------------------


def build(cache: Path, out: Path, plan: CorpusPlan) -> dict:
    problems = verify_packages(cache, strict=True)
    kjv = cache / "kjv" / "kjv.txt"
    if not kjv.exists():
        raise SystemExit(f"missing {kjv}: run with --fetch")
    rng = random.Random(plan.seed)
    pools = extract_all(cache)
    base = select_base_documents(pools, plan, rng)
    chosen = {d.key for d in base}
    spares = [d for docs in pools.values() for d in docs if d.key not in chosen]
    docs, truth = plant_all(base, spares, plan, rng, python_docs_footer(cache), mit_licence_paragraphs(cache))
    check_unique_texts(docs, truth)
    ensure_unique_urls(docs)
    docs = assign_ids(docs, rng)
    out.mkdir(parents=True, exist_ok=True)
    files = write_corpus(docs, out, plan, rng)
    gt = ground_truth_json(docs, truth, plan, files)
    write_ground_truth(out, gt)
    write_provenance(out, docs, plan, files, problems)
    return gt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="output directory (e.g. tests/data/sample)")
    default_cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dolma-sample-sources"
    ap.add_argument("--cache", type=Path, default=default_cache, help=f"source cache (default {default_cache})")
    ap.add_argument("--fetch", action="store_true", help="download the source packages into the cache first")
    ap.add_argument("--print-fetch-commands", action="store_true", help="print the download commands and exit")
    ap.add_argument("--num-docs", type=int, default=2400, help="number of documents (default 2400)")
    ap.add_argument("--seed", type=int, default=CorpusPlan.seed)
    args = ap.parse_args(argv)
    if args.print_fetch_commands:
        print(f"mkdir -p {args.cache / 'deb'} && cd {args.cache / 'deb'}")
        for cmd in fetch_commands():
            print(" ".join(cmd))
        return 0
    if args.fetch:
        fetch_sources(args.cache)
    gt = build(args.cache, args.out, CorpusPlan.for_size(args.num_docs, args.seed))
    total = sum(f["bytes"] for f in gt["files"])
    print(f"wrote {gt['num_documents']} documents, {total} bytes, to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
