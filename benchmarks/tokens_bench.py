"""Benchmark `dolma tokens` here vs the reference toolkit: tokens/s and peak memory, 1 and 2 processes.

Input: a deterministic corpus of `--mb` MB of text built from the sample corpus (tests/data/sample) when present,
else from the repository's own prose (README, design notes, docstrings), by shuffling paragraphs with a fixed
seed into documents of 0.5-8 KB, written as 16 gzip JSON-lines files. Both tools use the same tokenizer file.

    .venv/bin/python benchmarks/tokens_bench.py --mb 100 --reference /tmp/refdolma/bin/dolma

The machine is shared; numbers are indicative. Peak RSS is the largest of the process tree (ru_maxrss of the
children, as reported by /usr/bin/time-like accounting through resource.getrusage).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOKENIZER = REPO / "mixers" / "resources" / "tokenizers" / "allenai_gpt-neox-olmo-dolma-v1_5.json"


def source_paragraphs() -> list[str]:
    paras: list[str] = []
    sample = REPO / "tests" / "data" / "sample" / "documents"
    if sample.exists():
        for path in sorted(sample.rglob("*.jsonl.gz")):
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                for line in fh:
                    text = json.loads(line).get("text", "")
                    paras.extend(p for p in text.split("\n") if len(p.strip()) > 20)
    if len(paras) < 200:
        files = sorted(REPO.glob("*.md")) + sorted(REPO.glob("**/*.py"))
        for path in files:
            if ".venv" in path.parts or "target" in path.parts:
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            paras.extend(p.strip() for p in re.split(r"\n\s*\n", text) if len(p.strip()) > 20)
    return paras


def build_corpus(root: Path, megabytes: int, files: int = 16, seed: int = 0) -> tuple[int, int]:
    marker = root / f".built-{megabytes}"
    docs_dir = root / "documents"
    if marker.exists():
        return json.loads(marker.read_text())
    shutil.rmtree(root, ignore_errors=True)
    docs_dir.mkdir(parents=True)
    rng = random.Random(seed)
    paras = source_paragraphs()
    target = megabytes * 1_000_000
    per_file = target // files
    total_bytes = total_docs = 0
    for f in range(files):
        written = 0
        with gzip.open(docs_dir / f"bench-{f:02d}.jsonl.gz", "wt", encoding="utf-8", compresslevel=1) as fh:
            i = 0
            while written < per_file:
                size = rng.randint(500, 8000)
                parts: list[str] = []
                n = 0
                while n < size:
                    p = rng.choice(paras)
                    parts.append(p)
                    n += len(p) + 1
                text = "\n".join(parts)
                fh.write(json.dumps({"id": f"b{f}-{i}", "text": text, "source": "bench"}) + "\n")
                written += len(text.encode("utf-8"))
                i += 1
        total_bytes += written
        total_docs += i
    marker.write_text(json.dumps([total_bytes, total_docs]))
    return total_bytes, total_docs


def count_tokens(dest: Path) -> int:
    return sum(os.path.getsize(p) // 2 for p in dest.glob("part-*.npy"))


_MEASURE = (
    "import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode; "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(rc)"
)


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and peak RSS (MB) of the largest process of the tree, measured in a fresh parent process."""
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", _MEASURE, *cmd], env=env, capture_output=True, text=True)
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    peak_kb = int(proc.stderr.strip().splitlines()[-1])
    return seconds, peak_kb / 1024


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--work", default="/tmp/dolma-tokens-bench")
    ap.add_argument("--reference", default=os.environ.get("DOLMA_REFERENCE_DOLMA", "/tmp/refdolma/bin/dolma"))
    ap.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument(
        "--global-shuffle", action="store_true", help="also time ours with global_shuffle.enabled (1 process)"
    )
    args = ap.parse_args()
    work = Path(args.work)
    nbytes, ndocs = build_corpus(work / "corpus", args.mb)
    print(f"corpus: {ndocs:,} documents, {nbytes / 1e6:,.1f} MB of text, 16 files")
    pattern = str(work / "corpus" / "documents" / "*.jsonl.gz")
    special = ["--tokenizer.eos_token_id", "50279", "--tokenizer.pad_token_id", "1"]
    common = ["--documents", pattern, "--tokenizer.name_or_path", str(TOKENIZER), *special]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    results = []
    for procs in args.processes:
        ours = [sys.executable, "-m", "dolma", "tokens", "--quiet", "--files_per_process", "8"]
        tools = [("ours", ours)]
        if args.global_shuffle and procs == 1:
            tools.append(("ours+gsh", [*ours, "--global_shuffle.enabled"]))
        if not args.skip_reference:
            tools.append(("reference", [args.reference, "tokens"]))
        for name, prefix in tools:
            dest = work / f"out-{name}-{procs}"
            shutil.rmtree(dest, ignore_errors=True)
            seconds, peak_mb = run([*prefix, *common, "--destination", str(dest), "--processes", str(procs)], env)
            tokens = count_tokens(dest)
            results.append((name, procs, tokens, seconds, peak_mb))
            print(
                f"{name:9s} processes={procs}: {tokens:,} tokens in {seconds:,.1f} s = "
                f"{tokens / seconds / 1e6:,.3f} M tokens/s, {nbytes / 1e6 / seconds:,.2f} MB/s, "
                f"peak RSS {peak_mb:,.0f} MB"
            )
    by = {(n, p): t for n, p, _, t, _ in results}
    for procs in args.processes:
        if ("reference", procs) in by:
            print(f"speed-up at processes={procs}: {by[('reference', procs)] / by[('ours', procs)]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
