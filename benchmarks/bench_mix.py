"""Mixer throughput, ours next to the reference toolkit, with 1 and 2 processes.

One stream with two attribute sets, an include rule, an exclude rule and a span replacement over the
corpus built by benchmarks/mix_corpus.py (built on first use). Reports wall time, MB/s of uncompressed
input documents, docs/s, peak RSS of the largest process (GNU time) and the number of documents written
(which must agree between the two toolkits).

Usage: python benchmarks/bench_mix.py [--root /tmp/mixbench] [--megabytes 320] [--processes 1 2]
       [--reference /tmp/refdolma/bin/dolma]
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
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from mix_corpus import build  # noqa: E402


def config(root: Path, out: Path, processes: int, compression: dict | None = None) -> dict:
    cfg = {
        "streams": [
            {
                "name": "bench",
                "documents": [str(root / "documents" / "bench" / "*.jsonl.gz")],
                "attributes": ["quality", "pii"],
                "filter": {
                    "include": ["$.attributes[?(@.q__char_length_v1__length[0][2] >= 500)]"],
                    "exclude": ["$.attributes[?(@.q__random_number_v1__random[0][2] >= 0.9)]"],
                },
                "span_replacement": [
                    {"span": "$.attributes.pii__regex__email", "min_score": 0.5, "replacement": "<EMAIL>"}
                ],
                "output": {"path": str(out), "max_size_in_bytes": 100_000_000},
            }
        ],
        "processes": processes,
    }
    if compression:
        cfg["streams"][0]["compression"] = compression
    return cfg


def input_stats(root: Path) -> tuple[int, int]:
    nbytes = docs = 0
    for path in sorted((root / "documents" / "bench").glob("*.jsonl.gz")):
        with gzip.open(path, "rb") as fh:
            for line in fh:
                nbytes += len(line)
                docs += 1
    return nbytes, docs


def count_rows(out: Path) -> int:
    total = 0
    for path in out.iterdir():
        if path.name.startswith("."):
            continue
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as fh:
                total += sum(1 for _ in fh)
        elif path.name.endswith(".zst"):
            import zstandard

            with zstandard.open(path, "rt", encoding="utf-8") as fh:
                total += sum(1 for _ in fh)
    return total


def run(name: str, cmd: list[str], out: Path, work: Path) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    if name == "ours":
        env["PYTHONPATH"] = str(HERE.parent)
    start = time.monotonic()
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=env, cwd=work)
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    cpu = sum(float(m) for m in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", proc.stderr))
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "peak_rss_mb": int(rss.group(1)) / 1024 if rss else None,
        "written": count_rows(out),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("/tmp/mixbench"))
    parser.add_argument("--megabytes", type=int, default=320)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--tools", nargs="+", default=["reference", "ours"], choices=["reference", "ours"])
    parser.add_argument("--level", type=int, help="our output compression level (default: gzip 6, as the reference)")
    parser.add_argument("--output-compression", default=None, help="our output compression: gzip (default) or zstd")
    parser.add_argument("--reference", default=os.environ.get("DOLMA_REFERENCE_DOLMA", "/tmp/refdolma/bin/dolma"))
    args = parser.parse_args()
    root: Path = args.root
    if not (root / "documents" / "bench").is_dir():
        print(f"building {args.megabytes} MB corpus in {root} ...", file=sys.stderr)
        build(root, args.megabytes, files=8)
    nbytes, ndocs = input_stats(root)
    work = root / "runs"
    work.mkdir(exist_ok=True)
    results = []
    for processes in args.processes:
        for name in args.tools:
            out = work / f"out-{name}-{processes}"
            cfg = work / f"{name}-{processes}.yaml"
            ours = {"level": args.level, "output": args.output_compression} if name == "ours" else None
            cfg.write_text(yaml.safe_dump(config(root, out, processes, ours)))
            if name == "ours":
                cmd = [sys.executable, "-m", "dolma", "-c", str(cfg), "mix", "--quiet"]
            else:
                cmd = [args.reference, "-c", str(cfg), "mix"]
            r = run(name, cmd, out, work)
            r.update(
                tool=name if name == "reference" else f"ours(level={args.level}, {args.output_compression or 'gzip'})",
                processes=processes,
                mb_per_s=nbytes / 1e6 / r["seconds"],
                docs_per_s=ndocs / r["seconds"],
                mb_per_cpu_s=nbytes / 1e6 / max(r["cpu_seconds"], 1e-9),
            )
            results.append(r)
            print(
                f"{r['tool']:28s} processes={processes}  {r['seconds']:7.1f} s  {r['mb_per_s']:6.1f} MB/s  "
                f"{r['docs_per_s']:7.0f} docs/s  CPU {r['cpu_seconds']:6.1f} s ({r['mb_per_cpu_s']:5.1f} MB/cpu-s)  "
                f"peak RSS {r['peak_rss_mb']:.0f} MB  written {r['written']}",
                flush=True,
            )
    print(json.dumps({"input_mb": nbytes / 1e6, "input_docs": ndocs, "results": results}, indent=1))
    written = {r["written"] for r in results}
    if len(written) != 1:
        raise SystemExit(f"the runs disagree on the number of documents written: {sorted(written)}")


if __name__ == "__main__":
    main()
