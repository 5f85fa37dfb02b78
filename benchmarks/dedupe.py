#!/usr/bin/env python3
"""Benchmark `dolma dedupe` against the reference toolkit on the same files.

Builds a deterministic corpus from the paragraphs of the committed sample corpus (tests/data/sample): each
document is 3-12 paragraphs; a paragraph is an exact copy of a sample paragraph 30% of the time and otherwise
a copy with random word substitutions (so most text is unique, like a real crawl, with planted repeats).
Written as gzip JSON lines, 32 files. Then runs documents ($.text), paragraphs and n-gram (13-grams) dedupe
with 1 and 2 processes, ours and the reference's, and prints MB/s of uncompressed input and peak RSS
(`/usr/bin/time`).

    .venv/bin/python benchmarks/dedupe.py --mb 300 [--modes documents paragraphs ngram] [--reference PATH]

Numbers on a shared 2-core machine are indicative only.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "tests" / "data" / "sample" / "documents"
FILES = 32

MODES = {
    "documents": ["--dedupe.documents.attribute_name", "dup", "--dedupe.documents.key", "$.text"],
    "paragraphs": ["--dedupe.paragraphs.attribute_name", "dup"],
    "ngram": [
        "--dedupe.paragraphs.attribute_name", "dup",
        "--dedupe.paragraphs.by_ngram.ngram_length", "13",
        "--dedupe.paragraphs.by_ngram.overlap_threshold", "0.5",
    ],
}  # fmt: skip
# Keys per mode, per MB of input (for the filter size; generous so both tools run at a low false-positive rate).
KEYS_PER_MB = {"documents": 2_000, "paragraphs": 20_000, "ngram": 200_000}


def sample_paragraphs() -> list[str]:
    paras = []
    for path in sorted(SAMPLE.glob("*/*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                paras.extend(p for p in json.loads(line)["text"].split("\n") if p.strip())
    return paras


def build_corpus(root: Path, megabytes: int, seed: int = 0) -> int:
    """Write about `megabytes` MB of uncompressed JSON lines under root/documents; returns the exact size."""
    rng = random.Random(seed)
    paras = sample_paragraphs()
    vocab = sorted({w for p in paras[:20000] for w in p.split()})
    target = megabytes * 1_000_000
    per_file = target // FILES
    total = 0
    doc_id = 0
    (root / "documents").mkdir(parents=True, exist_ok=True)
    for f in range(FILES):
        size = 0
        with gzip.GzipFile(root / "documents" / f"part-{f:04d}.jsonl.gz", "wb", compresslevel=6, mtime=0) as out:
            lines = []
            while size < per_file:
                body = []
                for _ in range(rng.randint(3, 12)):
                    para = rng.choice(paras)
                    if rng.random() >= 0.3:
                        words = para.split()
                        for _ in range(max(1, len(words) // 8)):
                            words[rng.randrange(len(words))] = rng.choice(vocab)
                        para = " ".join(words)
                    body.append(para)
                text = "\n".join(body)
                if rng.random() < 0.05:
                    text = lines[-1]["text"] if lines else text
                doc = {"id": f"bench-{doc_id:09d}", "text": text, "source": "bench", "metadata": {"n": doc_id}}
                lines.append(doc)
                data = (json.dumps(doc, ensure_ascii=False) + "\n").encode()
                out.write(data)
                size += len(data)
                doc_id += 1
                if len(lines) > 1000:
                    lines = lines[-1:]
        total += size
    return total


def run(exe: str, root: Path, mode: str, processes: int, megabytes: float) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, peak RSS in KiB) of one run."""
    shutil.rmtree(root / "attributes", ignore_errors=True)
    filt = root / "filter.bin"
    if filt.exists():
        filt.unlink()
    keys = int(KEYS_PER_MB[mode] * megabytes) + 1000
    cmd = [
        "/usr/bin/time", "-f", "%e %U %S %M",
        exe, "dedupe",
        "--documents", str(root / "documents" / "*.jsonl.gz"),
        "--dedupe.name", "bench",
        "--bloom_filter.file", str(filt),
        "--no-bloom_filter.read_only",
        "--bloom_filter.estimated_doc_count", str(keys),
        "--bloom_filter.desired_false_positive_rate", "1e-5",
        "--processes", str(processes),
        *MODES[mode],
    ]  # fmt: skip
    if "refdolma" not in exe and ".venv-ref" not in exe:
        cmd.append("--quiet")
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{exe} failed:\n{result.stderr[-3000:]}")
    wall, user, system, rss_kb = result.stderr.strip().splitlines()[-1].split()
    return float(wall), float(user) + float(system), int(rss_kb)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=300, help="uncompressed input size in MB")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--processes", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--ours", default=str(REPO / ".venv" / "bin" / "dolma"))
    parser.add_argument("--reference", default=os.environ.get("DOLMA_REFERENCE_DOLMA", "/tmp/refdolma/bin/dolma"))
    parser.add_argument("--skip-reference-modes", nargs="*", default=[], help="modes to run only with ours")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="dolma-bench-dedupe-"))
    marker = work / f".built-{args.mb}"
    if not marker.exists():
        shutil.rmtree(work / "documents", ignore_errors=True)
        start = time.time()
        size = build_corpus(work, args.mb)
        marker.write_text(str(size))
        print(f"built {size / 1e6:.1f} MB in {time.time() - start:.0f}s at {work}", file=sys.stderr)
    size = int(marker.read_text())
    files = sorted((work / "documents").glob("*.jsonl.gz"))
    compressed = sum(p.stat().st_size for p in files)
    mb = size / 1e6
    print(f"input: {mb:.1f} MB JSON lines ({compressed / 1e6:.1f} MB gzip), {len(files)} files")
    print("MB/s of uncompressed input by wall time (and by CPU time, which the shared machine disturbs less)")
    print(
        f"{'mode':<11} {'procs':>5} {'ours MB/s':>16} {'ours RSS':>9} {'ref MB/s':>16} {'ref RSS':>9} {'speedup':>14}"
    )
    for mode in args.modes:
        for procs in args.processes:
            ours_w, ours_c, ours_rss = run(args.ours, work, mode, procs, mb)
            ours = f"{mb / ours_w:.1f} ({mb / ours_c:.1f})"
            if mode in args.skip_reference_modes:
                ref = "-", "-", "-"
            else:
                ref_w, ref_c, ref_rss = run(args.reference, work, mode, procs, mb)
                ref = (
                    f"{mb / ref_w:.1f} ({mb / ref_c:.1f})",
                    f"{ref_rss / 1024:.0f} MB",
                    f"{ref_w / ours_w:.1f}x ({ref_c / ours_c:.1f}x)",
                )
            print(
                f"{mode:<11} {procs:>5} {ours:>16} {ours_rss / 1024:>6.0f} MB {ref[0]:>16} {ref[1]:>9} {ref[2]:>14}",
                flush=True,
            )


if __name__ == "__main__":
    main()
