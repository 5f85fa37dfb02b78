"""`make demo`: warc -> tag -> dedupe -> mix -> tokens, on a small web crawl (tests/data/warc/demo.warc.gz) plus the
sample corpus shipped in tests/data/sample, with results.

`python -m dolma.demo [ROOT]` runs it in another copy of the repository (its configs/, tests/data/sample and
tests/data/warc, writing ROOT/demo-output); the tests use this to run the demo, then every shipped config, in a
temporary copy.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from dolma import io
from dolma.cli import main as dolma_main
from dolma.errors import DolmaError
from dolma.paths import claim_dir, remove_claimed_dir

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "tests" / "data" / "sample" / "documents"
CRAWL = REPO / "tests" / "data" / "warc" / "demo.warc.gz"
OUT = REPO / "demo-output"
console = Console(stderr=False, highlight=False)


def step(title: str, argv: list[str]) -> None:
    console.rule(f"[bold]{title}")
    console.print(f"$ dolma {' '.join(argv)}", style="cyan")
    start = time.monotonic()
    code = dolma_main(argv)
    if code != 0:
        console.print(f"[red]step failed with exit code {code}")
        sys.exit(code)
    console.print(f"done in {time.monotonic() - start:.1f} s")


def read_rows(pattern: str) -> list[dict]:
    import json

    rows = []
    for path in io.glob(pattern):
        rows.extend(json.loads(line) for _, line in io.iter_lines(path) if line.strip())
    return rows


def show_tag_results(root: Path) -> None:
    table = Table(title="attributes written by `dolma tag`")
    table.add_column("attribute set")
    table.add_column("files", justify="right")
    table.add_column("rows", justify="right")
    table.add_column("what it says", overflow="fold")
    for attr_dir in sorted(p for p in (root / "attributes").iterdir() if p.is_dir()):  # not run summaries
        rows = read_rows(str(attr_dir / "**" / "*.jsonl.gz"))
        files = len(io.glob(str(attr_dir / "**" / "*.jsonl.gz")))
        values: dict[str, list[float]] = {}
        for row in rows:
            for key, spans in row["attributes"].items():
                values.setdefault(key.split("__")[-1], []).extend(s[2] for s in spans)
        parts = []
        for span_type, vals in values.items():
            if span_type == "en":
                share = sum(v > 0.5 for v in vals) / max(len(vals), 1)
                parts.append(f"en>0.5: {share:.1%} of documents")
            elif span_type != "not_en":
                parts.append(f"{span_type}: median {statistics.median(vals):,.2f}, max {max(vals):,.0f}")
        table.add_row(attr_dir.name, str(files), f"{len(rows):,}", "; ".join(parts))
    console.print(table)


def show_warc_results(crawl_docs: Path) -> None:
    """The pages `dolma warc` kept: URL, text size, language and licence found by its taggers."""
    table = Table(title="documents written by `dolma warc` (the demo crawl)")
    for col in ("url", "chars", "language", "licence"):
        table.add_column(col, justify="right" if col == "chars" else "left", overflow="fold")
    for row in read_rows(str(crawl_docs / "*.jsonl.gz")):
        licences = [k.split("__")[-1] for k, v in (row.get("attributes") or {}).items() if k.startswith("cc_") and v]
        meta = row["metadata"]
        table.add_row(meta["warc_url"], f"{len(row['text']):,}", meta.get("language") or "", ", ".join(licences))
    console.print(table)


def show_tokens_results(dest: Path) -> None:
    """Token counts per shard, read back from the shards themselves (raw uint16 arrays + csv.gz index)."""
    import numpy as np

    table = Table(title="shards written by `dolma tokens`")
    for col in ("shard", "documents", "tokens", "mean tokens/doc"):
        table.add_column(col, justify="left" if col == "shard" else "right")
    total_docs = total_tokens = 0
    for npy in sorted(dest.glob("part-*.npy")):
        tokens = len(np.memmap(npy, dtype="<u2", mode="r")) if npy.stat().st_size else 0
        docs = sum(1 for _ in io.iter_lines(str(npy)[: -len(".npy")] + ".csv.gz"))
        total_docs += docs
        total_tokens += tokens
        table.add_row(npy.name, f"{docs:,}", f"{tokens:,}", f"{tokens / max(docs, 1):,.0f}")
    table.add_row("total", f"{total_docs:,}", f"{total_tokens:,}", f"{total_tokens / max(total_docs, 1):,.0f}")
    console.print(table)


def crawl_ids(crawl_docs: Path) -> set[str]:
    return {row["id"] for row in read_rows(str(crawl_docs / "*.jsonl.gz"))}


def main(argv: list[str] | None = None) -> int:
    global REPO, SAMPLE, CRAWL, OUT
    args = sys.argv[1:] if argv is None else argv
    if args:
        REPO = Path(args[0]).resolve()
        SAMPLE = REPO / "tests" / "data" / "sample" / "documents"
        CRAWL = REPO / "tests" / "data" / "warc" / "demo.warc.gz"
        OUT = REPO / "demo-output"
    if not SAMPLE.exists() or not CRAWL.exists():
        console.print(f"[red]sample corpus or demo crawl missing ({SAMPLE}, {CRAWL})")
        return 1
    os.chdir(REPO)  # the example configs use paths relative to the repository
    # demo-output is the demo's own directory (claimed with a marker): only then is it cleared for a fresh run
    try:
        remove_claimed_dir(str(OUT))
        claim_dir(str(OUT), "demo")
    except DolmaError as exc:
        console.print(f"[red]{exc}")
        return 1
    docs = OUT / "sample" / "documents"
    shutil.copytree(SAMPLE, docs)
    files = io.glob(str(docs / "**" / "*.jsonl.gz"))
    size = sum(io.size(f) for f in files)
    console.print(f"sample corpus: {len(files)} files, {size / 1e6:.2f} MB compressed, copied to {docs}")
    configs = REPO / "configs"
    console.print(f"demo crawl: {CRAWL.relative_to(REPO)}, {CRAWL.stat().st_size / 1e3:.0f} KB of WARC (real pages)")
    step("0. warc (the crawl becomes documents beside the sample's)", ["-c", str(configs / "warc.yaml"), "warc"])
    show_warc_results(docs / "crawl")
    step("1. tag", ["-c", str(configs / "tag.yaml"), "tag"])
    show_tag_results(OUT / "sample")
    step(
        "2. dedupe documents (exact text)",
        [
            "-c", str(configs / "dedupe-documents.yaml"), "dedupe",
            "--dedupe.name", "dedupe_documents",
            "--dedupe.documents.attribute_name", "bff_duplicate_text",
            "--dedupe.documents.key", "$.text",
            "--bloom_filter.file", "demo-output/filters/text.bin",
        ],
    )  # fmt: skip
    step("3. dedupe paragraphs", ["-c", str(configs / "dedupe-paragraphs.yaml"), "dedupe"])
    step("4. mix", ["-c", str(configs / "mix-dedupe.yaml"), "mix"])
    from_crawl = crawl_ids(docs / "crawl")
    mixed = [row for row in read_rows("demo-output/sample/mixed/**/*.jsonl.gz") if row["id"] in from_crawl]
    console.print(
        f"from the crawl: {len(mixed)} of {len(from_crawl)} pages kept by mix (English, >= 200 characters, "
        "not duplicates)"
    )
    step(
        "5. tokens",
        ["-c", str(configs / "tokens.yaml"), "tokens", "--documents", "demo-output/sample/mixed/**/*.jsonl.gz"],
    )
    show_tokens_results(OUT / "sample" / "tokens")
    tokenized = sum(
        1
        for index in io.glob("demo-output/sample/tokens/*.csv.gz")
        for _, line in io.iter_lines(index)
        if line.split(b",")[2].decode() in from_crawl
    )
    console.print(f"from the crawl: {tokenized} pages tokenized")
    step(
        "6. stat (histograms of every attribute, as the reference's summaries.jsonl.gz)",
        [
            "stat",
            "--attributes",
            "demo-output/sample/attributes/*/**/*.jsonl.gz",
            "--report",
            "demo-output/sample/stats",
        ],
    )
    step(
        "7. report (one HTML page of the run, with the mix thresholds)", ["-c", str(configs / "report.yaml"), "report"]
    )
    console.rule("[bold]done")
    console.print(f"outputs are under {OUT}")
    console.print(f"report: {OUT / 'report' / 'report.html'} (open it in a browser; figures/ has the charts as SVG)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
