"""Throughput of the rule-based quality taggers, ours next to the reference toolkit, on the same files.

    python benchmarks/corpus.py --out /tmp/bench-corpus --size-mb 100
    python benchmarks/taggers.py --corpus /tmp/bench-corpus --reference /tmp/refdolma/bin/dolma

Runs `dolma tag` (full CLI: read, tag, write attributes) once per tagger and process count, under
/usr/bin/time to record the peak RSS of the largest process. The reference is slow, so it runs on the first
`--reference-files` files only; docs/s and MB/s are rates, so they compare directly. Prints a Markdown table.
Numbers are indicative: the machine is shared and timings include process start-up.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TAGGERS = [
    "gopher_v1",
    "gopher_v2",
    "c4_v1",
    "c4_v2",
    "repetitions_v1",
    "paragraph_repetitions_v1",
    "not_alphanum_paragraph_v1",
]


def corpus_stats(files: list[Path]) -> tuple[int, int]:
    docs = size = 0
    for path in files:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                docs += 1
                size += len(json.loads(line)["text"].encode("utf-8"))
    return docs, size


def run(cmd: list[str], cwd: Path) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS in MB of the largest process) of one command; fails loudly."""
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    cpu = sum(float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", proc.stderr))
    return elapsed, cpu, (int(match.group(1)) / 1024 if match else float("nan"))


def stage(files: list[Path], root: Path) -> Path:
    docs = root / "documents" / "bench"
    docs.mkdir(parents=True)
    for f in files:
        os.link(f, docs / f.name) if f.stat().st_dev == docs.stat().st_dev else shutil.copy(f, docs / f.name)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, required=True, help="root made by benchmarks/corpus.py")
    parser.add_argument("--taggers", nargs="+", default=TAGGERS)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--reference", default="", help="the reference toolkit's `dolma` executable (optional)")
    parser.add_argument("--reference-files", type=int, default=1, help="files of the corpus the reference tags")
    parser.add_argument("--reference-taggers", nargs="+", default=None, help="taggers to time on the reference")
    parser.add_argument("--work", type=Path, default=None, help="scratch directory (default: a temp dir)")
    args = parser.parse_args()

    files = sorted((args.corpus / "documents" / "bench").glob("*.jsonl.gz"))
    if not files:
        raise SystemExit(f"no documents under {args.corpus}/documents/bench: run benchmarks/corpus.py first")
    work = Path(tempfile.mkdtemp(prefix="bench-taggers-", dir=args.work))
    systems = [("ours", [sys.executable, "-m", "dolma"], files)]
    if args.reference:
        systems.append(("reference", [args.reference], files[: args.reference_files]))
    stats = {name: corpus_stats(fs) for name, _, fs in systems}
    rows = []
    try:
        for tagger in args.taggers:
            for name, exe, fs in systems:
                if name == "reference" and args.reference_taggers and tagger not in args.reference_taggers:
                    continue
                docs, size = stats[name]
                for procs in args.processes:
                    root = stage(fs, work / f"{name}-{tagger}-{procs}")
                    cmd = [*exe, "tag", "--documents", "documents/bench/*.jsonl.gz", "--taggers", tagger]
                    cmd += ["--processes", str(procs)]
                    seconds, cpu, rss = run(cmd, root)
                    rows.append((tagger, name, procs, docs, size, seconds, cpu, rss))
                    print(
                        f"{tagger} {name} p={procs}: {docs / seconds:,.0f} docs/s {size / 1e6 / seconds:.2f} MB/s "
                        f"{docs / cpu:,.0f} docs/CPU-s peak RSS {rss:.0f} MB",
                        file=sys.stderr,
                        flush=True,
                    )
                    shutil.rmtree(root)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print("| tagger | system | processes | documents | MB | wall s | docs/s | MB/s | docs/CPU-s | peak RSS MB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for tagger, name, procs, docs, size, seconds, cpu, rss in rows:
        print(
            f"| {tagger} | {name} | {procs} | {docs} | {size / 1e6:.1f} | {seconds:.1f} | {docs / seconds:,.0f} | "
            f"{size / 1e6 / seconds:.2f} | {docs / cpu:,.0f} | {rss:.0f} |"
        )
    speedups: dict[tuple[str, int], dict[str, float]] = {}
    for tagger, name, procs, docs, _, seconds, _, _ in rows:
        speedups.setdefault((tagger, procs), {})[name] = docs / seconds
    lines = [f"{t} p={p}: {v['ours'] / v['reference']:.1f}x" for (t, p), v in speedups.items() if len(v) == 2]
    if lines:
        print("\nSpeed-up in docs/s (ours / reference): " + ", ".join(lines))


if __name__ == "__main__":
    main()
