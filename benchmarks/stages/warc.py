"""`dolma warc`: WARC files to documents, ours vs the reference's `dolma warc` (same linearizer) vs datatrove.

Input: a Common Crawl-like corpus of `.warc.gz` files built from the HTML manuals of Debian packages
(benchmarks/corpus/build_warc.py; `BENCH_WARC_MB`, default 100 MB of WARC, built once under benchmarks/data).
Rates are per WARC record fetched (the docs/s column is records/s: request + response count as one fetch) and
per MB of `.warc.gz` read. Cases: the resiliparse linearizer (the default of both toolkits) and trafilatura,
where datatrove's WarcReader + Trafilatura extractor runs too (its own trafilatura settings: favour_precision,
dedupe, a sandbox process per worker). Quality: the documents each run wrote.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.harness import Case, Command, Context, Impl, Input

BUILDER = Path(__file__).resolve().parents[1] / "corpus" / "build_warc.py"
DATATROVE_SCRIPT = Path(__file__).resolve().parent / "datatrove_warc.py"


def warc_corpus(ctx: Context) -> Input:
    """The WARC corpus (built if missing): root/warc/*.warc.gz; docs = fetches, text_bytes = bytes of WARC."""
    size = float(os.environ.get("BENCH_WARC_MB") or 100)
    root = ctx.scratch.parent / f"warc-{size:g}mb"
    if not (root / "COMPLETE").exists():
        cmd = [sys.executable, str(BUILDER), "--fetch", "--size-mb", f"{size:g}", "--out", str(root)]
        print("+", " ".join(cmd), file=sys.stderr)
        subprocess.run(cmd, check=True)
    stats = json.loads((root / "corpus.json").read_text())
    return Input(root, [], int(stats["warc_bytes"]), docs=int(stats["records"]))


def count_documents(pattern: str):
    def check(workdir: Path) -> dict:
        n = 0
        for path in sorted(workdir.glob(pattern)):
            with gzip.open(path, "rb") as fh:
                n += sum(1 for line in fh if line.strip())
        return {"documents written": n}

    return check


def cases(ctx: Context) -> list[Case]:
    if "warc" not in ctx.our_commands:
        return [Case("warc", "WARC to documents", missing="no `dolma warc` command on this branch")]
    corpus = warc_corpus(ctx)
    out = []
    for linearizer in ("resiliparse", "trafilatura"):

        def make(exe: Path, reference: bool, linearizer=linearizer):
            def prepare(workdir: Path, p: int) -> Command:
                workdir.mkdir(parents=True, exist_ok=True)
                argv = [str(exe), "warc", "--documents", str(corpus.root / "warc" / "*.warc.gz")]
                argv += ["--destination", str(workdir / "out"), "--source_name", "bench"]
                argv += ["--linearizer", linearizer, "--processes", str(p)]
                argv += [] if reference else ["--quiet"]
                return Command(argv, cwd=workdir, env=ctx.reference_env if reference else None)

            return prepare

        case = Case("warc", f"{linearizer} (docs/s = WARC records/s, MB/s = MB of .warc.gz/s)", input=corpus)
        case.impls["ours"] = Impl(make(ctx.ours, False), count_documents("out/*.jsonl.gz"))
        if ctx.reference:
            case.impls["reference"] = Impl(make(ctx.reference, True), count_documents("out/*.jsonl.gz"))
        if ctx.datatrove_python and linearizer == "trafilatura":

            def datatrove(workdir: Path, p: int) -> Command:
                workdir.mkdir(parents=True, exist_ok=True)
                files = len(list((corpus.root / "warc").glob("*.warc.gz")))
                argv = [str(ctx.datatrove_python), str(DATATROVE_SCRIPT), "--warc", str(corpus.root / "warc")]
                argv += ["--output", str(workdir / "output"), "--workers", str(p), "--tasks", str(files)]
                return Command(argv, cwd=workdir, env=ctx.reference_env)

            note = "WarcReader + Trafilatura extractor (datatrove's settings)"
            case.impls["datatrove"] = Impl(datatrove, count_documents("output/*.jsonl.gz"), note=note)
        out.append(case)
    return out
