#!/usr/bin/env python3
"""Build the benchmark corpus (Dolma format, 100 MB to several GB) from real text in Debian packages.

It reuses the sample-corpus builder (``build_sample.py``): the same pinned packages, extraction and planting
functions, plus more sources (the PostgreSQL 15 manual and the Linux man pages in English, German, French and
Spanish), and one documented variation rule to reach sizes bigger than the unique text of the sources:

*Spliced documents* -- once every unique source document is in the corpus, further documents of a language are
made from a random "template" document of that language: each of its paragraphs keeps its first half (in words)
and gets the second half of a random paragraph of another document of the same language. Paragraphs of fewer
than 8 words are kept as they are, except that one random word is swapped with a word of another paragraph, so a
spliced document almost never repeats another document or paragraph exactly, while its words, sentences-halves,
layout and length follow the real text. Word n-grams (and the short paragraphs) do repeat across spliced
documents, which is what a web crawl looks like too, but it means that n-gram based dedupe finds more overlap
here than on the unique sources. Spliced documents have ``metadata.origin`` ``"spliced: <template origin>"``.

Then the plantings of ``build_sample.plant_all`` (exact, near and partial duplicates, boilerplate, PII-like
strings, low-quality pages, edge cases) are scaled to the number of documents, and everything planted is written
to ``ground_truth.json`` (same schema as the sample corpus). ~10% of the documents are non-English.

Usage::

    python3 benchmarks/corpus/build_bench.py --fetch --size-mb 300 --out benchmarks/data/corpus-300mb

Deterministic for a given seed, size and set of packages (gzip mtime 0, sorted ids).
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import hashlib
import json
import os
import pickle
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import build_sample as bs

EXTRA_PACKAGES: dict[str, bs.DebPackage] = {
    p.name: p
    for p in [
        bs.DebPackage(
            "postgresql-doc-15",
            "15.20-0+deb12u1",
            "all",
            "4c44bf2c599f208b3f46454a6cf7a72e25ec46ff74d37b59dd31ad76b00eebb7",
            "PostgreSQL",
            "PostgreSQL documentation: PostgreSQL Licence (BSD-like); see /usr/share/doc/postgresql-doc-15/copyright.",
        ),
        bs.DebPackage(
            "manpages",
            "6.03-2",
            "all",
            "efa1ba4cd19ad7baeae959c9209a7eb74be2ebb858bcabb412597bfc9f588c91",
            "various-free",
            "Linux man-pages project: mostly 'Linux man-pages' verbatim/GPL licences per page; see "
            "/usr/share/doc/manpages/copyright.",
        ),
        bs.DebPackage(
            "manpages-dev",
            "6.03-2",
            "all",
            "96f55cb5e26231d5567c89b692bced63825a14a2d5bd18fdf16ea2ed44eb9838",
            "various-free",
            "Linux man-pages project (sections 2 and 3); see /usr/share/doc/manpages-dev/copyright.",
        ),
        bs.DebPackage(
            "manpages-de",
            "4.18.1-1",
            "all",
            "37d2e7ee51f22952aecec3af93647ff59194a3c74bb7a694560f49c7f7ab3978",
            "GPL-3+",
            "German translations of man pages (manpages-l10n): GPL-3+; see /usr/share/doc/manpages-de/copyright.",
        ),
        bs.DebPackage(
            "manpages-fr",
            "4.18.1-1",
            "all",
            "ec29759cc0e4a44dc7719c1e32869d0060667049e584f09556f0d982b969ea33",
            "GPL-3+",
            "French translations of man pages (manpages-l10n): GPL-3+; see /usr/share/doc/manpages-fr/copyright.",
        ),
        bs.DebPackage(
            "manpages-es",
            "4.18.1-1",
            "all",
            "d21e9f85e487f149ae45b5c525b2b1a70ae7fd38d4b05b47c8753042c66f4c2b",
            "GPL-3+",
            "Spanish translations of man pages (manpages-l10n): GPL-3+; see /usr/share/doc/manpages-es/copyright.",
        ),
    ]
}
ALL_PACKAGES = {**bs.PACKAGES, **EXTRA_PACKAGES}
SOURCES = ("python-docs", "debian-docs", "man-pages", "web-mixed")
BYTES_PER_FILE = 24 << 20  # uncompressed text per output file (so that 2 processes have files to share)
ID_DIGITS = 7  # <source>-0000000
SPARE_SQLITE = 40  # SQLite sections kept out of the base documents (the very-long-line edge cases use them)


# --------------------------------------------------------------------------------------------------------------
# Extra sources
# --------------------------------------------------------------------------------------------------------------


def extract_postgres_docs(cache: Path, min_chars: int = 400, max_chars: int = 9000) -> dict[str, list[bs.SourceDoc]]:
    return bs.extract_html_manual(
        cache,
        EXTRA_PACKAGES["postgresql-doc-15"],
        pool="postgresql-docs/en",
        prefix="usr/share/doc/postgresql-doc-15/html/",
        skip=lambda rel: rel.startswith(("release-", "bookindex", "index.html")),
        skip_classes={"navheader", "navfooter", "toc"},
        url_base="https://www.postgresql.org/docs/15/",
        min_chars=min_chars,
        max_chars=max_chars,
    )


_ESCAPES = {
    r"\-": "-",
    r"\(aq": "'",
    r"\(em": "—",
    r"\(en": "\u2013",
    r"\(lq": "“",
    r"\(rq": "”",
    r"\(co": "©",
    r"\(bu": "•",
    r"\(dq": '"',
    r"\e": "\\",
    r"\ ": " ",
    r"\~": " ",
    r"\(ti": "~",
    r"\(ha": "^",
}
_ESCAPE_RE = re.compile("|".join(re.escape(k) for k in sorted(_ESCAPES, key=len, reverse=True)))
_DROP_RE = re.compile(r"\\f(?:\[[^\]]*\]|\(..|.)|\\\*(?:\[[^\]]*\]|\(..|.)|\\\(..|\\\[[^\]]*\]|\\[&%|^c/,:]")
_FONT_MACROS = {".B", ".I", ".R", ".SM", ".SB"}
_ALT_MACROS = {".BR", ".RB", ".IR", ".RI", ".BI", ".IB"}


def _macro_args(rest: str) -> list[str]:
    return [a[1:-1] if len(a) > 1 and a[0] == a[-1] == '"' else a for a in re.findall(r'"[^"]*"|\S+', rest)]


def groff_blocks(source: str) -> tuple[str, list[bs.Block]]:
    """A small man(7) to text converter: headings from .SH/.SS, paragraphs between paragraph macros."""
    title = ""
    blocks: list[bs.Block] = []
    cur: list[str] = []

    def clean(s: str) -> str:
        return " ".join(_DROP_RE.sub("", _ESCAPE_RE.sub(lambda m: _ESCAPES[m.group(0)], s)).split())

    def flush() -> None:
        text = clean(" ".join(cur))
        if text:
            blocks.append(bs.Block("p", text))
        cur.clear()

    for line in source.splitlines():
        if line.startswith(('.\\"', "'\\\"", '.\\"')) or line.strip() in (".", "'"):
            continue
        if line.startswith((".", "'")):
            name, _, rest = line.partition(" ")
            name = name.replace("'", ".", 1)
            if name == ".TH":
                args = _macro_args(rest)
                title = f"{args[0]}({args[1]})" if len(args) > 1 else (args[0] if args else "")
            elif name in (".SH", ".SS"):
                flush()
                heading = clean(" ".join(_macro_args(rest)))
                if heading:
                    blocks.append(bs.Block("h", heading, 2 if name == ".SH" else 3, anchor=bs.slug(heading)))
            elif name in _FONT_MACROS:
                cur.append(" ".join(_macro_args(rest)))
            elif name in _ALT_MACROS:
                cur.append("".join(_macro_args(rest)))
            elif name in (".PP", ".LP", ".P", ".TP", ".IP", ".sp", ".HP", ".TQ"):
                flush()
                if name == ".IP" and rest.strip():
                    cur.append(_macro_args(rest)[0])
            elif name == ".so":
                return title, []
            continue
        cur.append(line)
    flush()
    return title, blocks


MAN_LANGS = {"manpages": "en", "manpages-dev": "en", "manpages-de": "de", "manpages-fr": "fr", "manpages-es": "es"}


def extract_man_pages(cache: Path, min_chars: int = 300, max_chars: int = 9000) -> dict[str, list[bs.SourceDoc]]:
    def parse(pkg: bs.DebPackage, path: str, raw: bytes) -> bs.Page | None:
        m = re.match(r"usr/share/man/(?:(\w\w)/)?man(\w+)/(.+)\.gz$", path)
        if not m:
            return None
        title, blocks = groff_blocks(gzip.decompress(raw).decode("utf-8", errors="replace"))
        if not blocks:
            return None
        page, lang = m.group(3), MAN_LANGS[pkg.name]
        url = f"https://manpages.debian.org/bookworm/{pkg.name}/{page}.{m.group(1) or 'en'}"
        split_levels = 2 if len(bs.blocks_text(blocks)) > max_chars else 1
        return bs.Page(f"man-pages/{lang}", title or page, blocks, url, lang, split_levels)

    pkgs = [EXTRA_PACKAGES[name] for name in MAN_LANGS]
    return bs.extract_pages(cache, pkgs, parse, source="man-pages", min_chars=min_chars, max_chars=max_chars)


EXTRACTORS = (*bs.EXTRACTORS, extract_postgres_docs, extract_man_pages)


POOLS_CACHE_VERSION = 1


def extract_everything(cache: Path) -> dict[str, list[bs.SourceDoc]]:
    """All pools, deduplicated; cached as a pickle keyed by the .deb files' SHA-256 (extraction takes minutes)."""
    key = hashlib.sha256(str(POOLS_CACHE_VERSION).encode())
    for pkg in ALL_PACKAGES.values():
        key.update(bs.sha256_file(bs.deb_path(cache, pkg)).encode())
    cached = cache / f"pools-{key.hexdigest()[:16]}.pickle"
    if cached.exists():
        with cached.open("rb") as f:
            return pickle.load(f)
    pools = bs.extract_all(cache, EXTRACTORS)
    tmp = cached.with_suffix(".tmp")
    with tmp.open("wb") as f:
        pickle.dump(pools, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, cached)
    return pools


# --------------------------------------------------------------------------------------------------------------
# Variation rule: spliced documents
# --------------------------------------------------------------------------------------------------------------


def splice_document(template: bs.SourceDoc, donors: list[bs.SourceDoc], rng: random.Random, n: int) -> bs.SourceDoc:
    """Each paragraph of `template`: its first half + the second half of a random donor paragraph (see module doc)."""
    out = []
    for para in template.text.split("\n"):
        words = para.split(" ")
        donor_paras = rng.choice(donors).text.split("\n")
        other = rng.choice(donor_paras).split(" ")
        if len(words) >= 8 and len(other) >= 4:
            out.append(" ".join(words[: len(words) // 2] + other[len(other) // 2 :]))
        else:
            if len(words) > 1 and other:
                words[rng.randrange(len(words))] = rng.choice(other)
            out.append(" ".join(words))
    return dataclasses.replace(
        template,
        text="\n".join(out),
        url=f"{template.url.split('#')[0]}?variant={n}",
        origin=f"spliced: {template.origin}",
        key=f"{template.key}~splice{n}",
        id="",
        derived=False,
        extra_metadata={},
    )


def grow_to_size(
    pools: dict[str, list[bs.SourceDoc]], target_bytes: int, non_english_share: float, rng: random.Random
) -> list[bs.SourceDoc]:
    """All unique source documents, then spliced documents until `target_bytes` of UTF-8 text.

    If the unique documents alone exceed the target, a deterministic sample of them is taken instead. The share
    of non-English documents is kept at `non_english_share` (by document count).
    """
    by_lang: dict[str, list[bs.SourceDoc]] = {}
    for docs in pools.values():
        for d in docs:
            by_lang.setdefault(d.lang, []).append(d)
    english = by_lang.pop("en", [])
    foreign = [d for lang in sorted(by_lang) for d in by_lang[lang]]
    rng.shuffle(english)
    rng.shuffle(foreign)
    size = {id(d): len(d.text.encode()) for d in english + foreign}
    chosen: list[bs.SourceDoc] = []
    seen: set[str] = set()
    total = 0
    n_foreign = 0
    ei = fi = 0
    n_spliced = 0
    langs = sorted(by_lang)
    while total < target_bytes:
        want_foreign = n_foreign < non_english_share * (len(chosen) + 1)
        if want_foreign and fi < len(foreign):
            d, fi = foreign[fi], fi + 1
        elif not want_foreign and ei < len(english):
            d, ei = english[ei], ei + 1
        else:
            pool = by_lang[langs[n_spliced % len(langs)]] if want_foreign else english
            d = splice_document(rng.choice(pool), pool, rng, n_spliced)
            n_spliced += 1
            while d.text in seen:  # the same two halves drawn again (rare, from ~500 MB): draw another
                d = splice_document(rng.choice(pool), pool, rng, n_spliced)
                n_spliced += 1
            size[id(d)] = len(d.text.encode())
        seen.add(d.text)
        chosen.append(d)
        total += size[id(d)]
        n_foreign += d.lang != "en"
    return chosen


# --------------------------------------------------------------------------------------------------------------
# Planting at scale
# --------------------------------------------------------------------------------------------------------------


class IndexedPlanter(bs.Planter):
    """A Planter whose `pick` draws random candidates instead of filtering every document first.

    `bs.Planter.pick` builds the full list of candidates (running `ok`, which often splits the text into
    paragraphs) for every call; the copied-block and prefix plantings call it once or twice per planted pair, so
    at 300 MB (~130k documents, ~800 calls) that was quadratic and took tens of minutes. Here a candidate is drawn
    uniformly from the base documents and checked; after `max_tries` misses (a rare kind, e.g. one small pool)
    it falls back to the full scan. Deterministic for a given rng state; the sample corpus keeps `bs.Planter`.
    """

    def __init__(self, docs: list[bs.SourceDoc], rng: random.Random, max_tries: int = 400) -> None:
        super().__init__(docs, rng)
        self.base = [d for d in docs if not d.derived]  # planted documents are derived, so never candidates
        self.max_tries = max_tries

    def pick(self, n: int, ok=lambda d: True) -> list[bs.SourceDoc]:
        picked: list[bs.SourceDoc] = []
        misses = 0
        while len(picked) < n and misses < self.max_tries + 10 * n and self.base:
            d = self.base[self.rng.randrange(len(self.base))]
            if d.key in self.used or d.derived or not ok(d):
                misses += 1
                continue
            self.used.add(d.key)
            picked.append(d)
        if len(picked) < n:
            picked += super().pick(n - len(picked), ok)
        return picked


# --------------------------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------------------------


def write_corpus(docs: list[bs.SourceDoc], out: Path, rng: random.Random) -> list[dict]:
    """documents/<source>/part-NNNN.jsonl.gz, about BYTES_PER_FILE of text each, written atomically."""
    files = []
    for source in SOURCES:
        group = [d for d in docs if d.source == source]
        chunks: list[list[bs.SourceDoc]] = [[]]
        size = 0
        for d in group:
            if size >= BYTES_PER_FILE:
                chunks.append([])
                size = 0
            chunks[-1].append(d)
            size += len(d.text)
        files += bs.write_parts(out, source, [c for c in chunks if c], rng, compresslevel=6)
    return files


def provenance(gt: dict, size_mb: int, problems: list[str], text_bytes: int, spliced: int) -> str:
    rows = "\n".join(f"| `{p.name}` | {p.version} | `{p.sha256[:16]}…` | {p.license} |" for p in ALL_PACKAGES.values())
    notes = "\n".join(f"- `{p.name}`: {p.license_note}" for p in ALL_PACKAGES.values())
    warn = "".join(f"\n- warning: {p}" for p in problems)
    return f"""# Benchmark corpus: provenance

Generated by `benchmarks/corpus/build_bench.py --size-mb {size_mb:g}` (seed {gt["seed"]}); not committed.
{gt["num_documents"]} documents, {text_bytes} bytes of text ({spliced} spliced documents, see the variation rule
in the module docstring), languages {gt["languages"]["counts"]}.{warn}

| package (Debian 12) | version | SHA-256 | licence |
| --- | --- | --- | --- |
{rows}

{notes}

Planted duplicates, PII-like strings, low-quality pages and edge cases as in the sample corpus
(tests/data/sample/PROVENANCE.md), scaled to the size; all listed in `ground_truth.json`.
"""


def drop_repeated_synthetic(docs: list[bs.SourceDoc], truth: bs.GroundTruth) -> list[bs.SourceDoc]:
    """Drop synthetic documents whose text another synthetic document already has (not a planted duplicate).

    At hundreds of MB, the contact-page templates are filled more than a thousand times and a few fills come out
    the same; those would be unplanned exact duplicates. The later ones (by key) are dropped, with their PII.
    """
    planted = {id(d) for group in truth.exact_duplicates for d in group}
    first: dict[str, bs.SourceDoc] = {}
    drop: set[int] = set()
    for d in sorted(docs, key=lambda d: d.key):
        if not d.key.startswith("synthetic/") or id(d) in planted:
            continue
        if d.text in first:
            drop.add(id(d))
        else:
            first[d.text] = d
    if not drop:
        return docs
    truth.pii = [x for x in truth.pii if id(x[0]) not in drop]
    truth.low_quality = [x for x in truth.low_quality if id(x[0]) not in drop]
    truth.templated = {k: [d for d in v if id(d) not in drop] for k, v in truth.templated.items()}
    return [d for d in docs if id(d) not in drop]


def build(cache: Path, out: Path, size_mb: float, seed: int = 20240601) -> dict:
    problems = bs.verify_packages(cache, strict=True, packages=ALL_PACKAGES)
    pools = extract_everything(cache)
    footer, mit = bs.python_docs_footer(cache), bs.mit_licence_paragraphs(cache)
    return build_from_pools(pools, out, size_mb, seed, footer, mit, problems)


def build_from_pools(
    pools: dict[str, list[bs.SourceDoc]],
    out: Path,
    size_mb: float,
    seed: int,
    python_footer: list[str],
    mit_text: list[str],
    problems: list[str] | None = None,
) -> dict:
    """Everything after extraction: grow, plant, number, write documents, ground truth and provenance."""
    rng = random.Random(seed)
    pools = dict(pools)
    spares = pools["sqlite-docs/en"][-SPARE_SQLITE:]
    pools["sqlite-docs/en"] = pools["sqlite-docs/en"][:-SPARE_SQLITE]
    base = grow_to_size(pools, int(size_mb * 1_000_000), 0.10, rng)
    plan = bs.CorpusPlan.for_size(max(2400, len(base)), seed)
    plan.boilerplate_groups = 4
    docs, truth = bs.plant_all(base, spares, plan, rng, python_footer, mit_text, IndexedPlanter)
    docs = drop_repeated_synthetic(docs, truth)
    bs.check_unique_texts(docs, truth)
    bs.ensure_unique_urls(docs)
    docs = bs.assign_ids(docs, rng, SOURCES, ID_DIGITS)
    out.mkdir(parents=True, exist_ok=True)
    files = write_corpus(docs, out, rng)
    gt = bs.ground_truth_json(docs, truth, plan, files)
    gt["description"] = "Planted properties of the benchmark corpus; see PROVENANCE.md. Ids refer to documents/*."
    text_bytes = sum(len(d.text.encode()) for d in docs)
    spliced = sum(1 for d in docs if d.origin.startswith("spliced:"))
    gt["text_bytes"] = text_bytes
    gt["spliced_documents"] = spliced
    bs.write_ground_truth(out, gt)
    (out / "PROVENANCE.md").write_text(provenance(gt, size_mb, problems or [], text_bytes, spliced), encoding="utf-8")
    digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
    (out / "COMPLETE").write_text(digest + "\n")  # written last: a corpus without it is rebuilt
    return gt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    default_cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dolma-bench-sources"
    ap.add_argument("--cache", type=Path, default=default_cache, help=f"source cache (default {default_cache})")
    ap.add_argument("--fetch", action="store_true", help="apt-get download the source packages into the cache")
    ap.add_argument("--size-mb", type=float, default=300, help="uncompressed text size in MB (default 300)")
    ap.add_argument("--seed", type=int, default=20240601)
    args = ap.parse_args(argv)
    if args.fetch:
        bs.fetch_sources(args.cache)
        bs.download_packages(args.cache, EXTRA_PACKAGES)
    gt = build(args.cache, args.out, args.size_mb, args.seed)
    print(f"wrote {gt['num_documents']} documents, {gt['text_bytes']} bytes of text, to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
