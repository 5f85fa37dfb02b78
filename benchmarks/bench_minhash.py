"""MinHash-LSH engine measurement: signature throughput and end-to-end near-duplicate detection against datasketch
in Python (same shingles, same parameters), and peak memory of clustering for N documents.

    .venv/bin/python benchmarks/bench_minhash.py [--copies 8] [--memory-docs 250000,1000000] [--out r.json]

1. Signatures on the texts of the sample corpus (tests/data/sample, 5.9 MB, 2,400 documents), in memory: ours
   (xxh3 and sha1, 1 and 2 threads) vs `datasketch.MinHash(128, seed=1).update_batch` fed our shingles (the
   shingling time is included on both sides). Runs are interleaved and the best of `--repeats` is kept.
2. End to end on one process, from gzip documents files to clusters: the sample corpus plus `--copies - 1`
   edited copies of it (word replacements at 0-20 %: exact and near duplicates). Ours: `sign_file` per file
   then `cluster` (threads=1); datasketch: read the lines, shingle (our shingler), `MinHash` (sha1),
   `MinHashLSH` insert then query, union-find in Python. Each run is a fresh process: wall time, CPU time and
   peak RSS of the process, clusters and duplicates found. `command-1` / `command-2`: the whole `dolma dedupe`
   command with `dedupe.minhash` (sign, cluster, write the attribute files) with 1 and 2 processes, its CPU time
   and the peak RSS of its largest process (`command_cpu`, `command_max_rss_mb`).
3. Clustering memory: N synthetic documents (25 words each, 10 % planted near-duplicates) signed into band-key
   files, then `cluster` with a 64 MiB budget in a fresh process: its time, the RSS before it and the peak RSS
   during it (Linux: the peak is reset with /proc/self/clear_refs just before), so the growth is the cluster's.
4. Signing speed (`--only signing --corpus DIR`): `signatures(texts, threads=t)` (xxh3, word 5-grams, 128
   permutations) on the texts of DIR/*/*.jsonl.gz in memory, all of them and the ASCII and non-ASCII documents
   apart, 1 and 2 threads: best of `--repeats` after a warm-up call, wall and process CPU time.
Not part of `make test`. The machine may be shared: treat the numbers as indicative.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE_FILES = sorted((REPO / "tests" / "data" / "sample" / "documents").rglob("*.jsonl.gz"))
THRESHOLD = 0.8


def sample_texts() -> list[str]:
    texts = []
    for path in SAMPLE_FILES:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            texts.extend(json.loads(line)["text"] for line in f)
    return texts


def bench_signatures(repeats: int) -> list[dict]:
    import numpy as np
    from datasketch import MinHash

    from dolma import minhash as mh

    texts = sample_texts()
    mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6

    def datasketch_run() -> None:
        for text in texts:
            m = MinHash(num_perm=128, seed=1)
            m.update_batch([s.encode("utf-8") for s in mh.shingles(text)])

    cases = {
        "datasketch (sha1, Python)": datasketch_run,
        "ours sha1, 1 thread": lambda: mh.signatures(texts, hash="sha1", threads=1),
        "ours xxh3, 1 thread": lambda: mh.signatures(texts, threads=1),
        "ours sha1, 2 threads": lambda: mh.signatures(texts, hash="sha1", threads=2),
        "ours xxh3, 2 threads": lambda: mh.signatures(texts, threads=2),
    }
    best = {name: float("inf") for name in cases}
    mh.signatures(texts[:10])
    for _ in range(repeats):
        for name, run in cases.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    assert np.array_equal(mh.signatures(texts[:3], hash="sha1"), mh.signatures(texts[:3], hash="sha1", threads=2))
    base = best["datasketch (sha1, Python)"]
    return [
        {
            "case": name,
            "seconds": round(t, 3),
            "docs_per_s": round(len(texts) / t),
            "mb_per_s": round(mb / t, 2),
            "speedup": round(base / t, 1),
        }
        for name, t in best.items()
    ]


def bench_signing(corpus: Path, repeats: int) -> list[dict]:
    from dolma import minhash as mh

    texts = []
    for path in sorted(corpus.glob("*/*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            texts.extend(json.loads(line)["text"] for line in f)
    groups = {"all": texts, "ascii": [t for t in texts if t.isascii()]}
    groups["non-ascii"] = [t for t in texts if not t.isascii()]
    rows = []
    for threads in (1, 2):
        for name, group in groups.items():
            mb = sum(len(t.encode("utf-8")) for t in group) / 1e6
            mh.signatures(group[:200], threads=threads)
            wall = cpu = float("inf")
            for _ in range(repeats):
                w0, c0 = time.perf_counter(), time.process_time()
                mh.signatures(group, threads=threads)
                wall, cpu = min(wall, time.perf_counter() - w0), min(cpu, time.process_time() - c0)
            rows.append(
                {"texts": name, "threads": threads, "docs": len(group), "mb": round(mb, 1)}
                | {"wall_s": round(wall, 3), "wall_mb_per_s": round(mb / wall, 1)}
                | {"cpu_s": round(cpu, 3), "cpu_mb_per_s": round(mb / cpu, 1)}
            )
    return rows


# ----------------------------------------------------------------------------------------------------------
# End to end
# ----------------------------------------------------------------------------------------------------------


def build_copies(root: Path, copies: int) -> list[str]:
    """The sample corpus, then copies-1 edited copies of it (each document: 0-20 % of its words replaced)."""
    rng = random.Random(7)
    texts = sample_texts()
    files = []
    for c in range(copies):
        path = root / "documents" / f"copy-{c:02d}.jsonl.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(path, "wt", encoding="utf-8", compresslevel=1) as f:
            for i, text in enumerate(texts):
                if c:
                    words = text.split(" ")
                    rate = rng.choice([0.0, 0.01, 0.03, 0.1, 0.2])
                    for pos in rng.sample(range(len(words)), int(len(words) * rate)):
                        words[pos] = f"edit{rng.randrange(10**6)}"
                    text = " ".join(words)
                f.write(json.dumps({"id": f"c{c}-{i}", "text": text}) + "\n")
        files.append(str(path))
    return files


def run_ours(files: list[str], work: str) -> dict:
    from dolma import minhash as mh

    params = mh.MinHashParams(threshold=THRESHOLD)
    units = [f"{work}/keys/{i}.mhk" for i in range(len(files))]
    outs = [f"{work}/results/{i}.mhr" for i in range(len(files))]
    docs = sum(mh.sign_file(p, units[i], i, params, threads=1).documents for i, p in enumerate(files))
    stats = mh.cluster(units, outs, params, memory_budget=256 << 20, threads=1)
    return {"documents": docs, "clusters": stats.clusters, "duplicates": stats.duplicates}


def run_command(files: list[str], work: str, processes: str) -> dict:
    """`dolma dedupe` with `dedupe.minhash` (sign, cluster, write attributes) in a subprocess; counts read back
    from the attribute files it wrote."""
    root = Path(files[0]).parent.parent
    name = f"bench_nd_{processes}"
    argv = [
        sys.executable, "-m", "dolma", "dedupe", "--quiet",
        "--documents", str(root / "documents" / "*.jsonl.gz"),
        "--dedupe.name", name,
        "--dedupe.minhash.attribute_name", "nd",
        "--dedupe.minhash.threshold", str(THRESHOLD),
        "--dedupe.minhash.memory_budget", str(256 << 20),
        "--dedupe.minhash.work_dir", work,
        "--processes", processes,
    ]  # fmt: skip
    subprocess.run(argv, check=True, cwd=REPO)
    docs = dups = 0
    clusters: set[int] = set()
    for path in sorted((root / "attributes" / name).glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                attributes = json.loads(line)["attributes"]
                docs += 1
                dups += "nd" in attributes
                clusters.update(span[2] for span in attributes.get("nd__cluster", []))
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "documents": docs,
        "clusters": len(clusters),
        "duplicates": dups,
        "command_cpu": usage.ru_utime + usage.ru_stime,
        "command_max_rss_mb": usage.ru_maxrss / 1024,
    }


def run_datasketch(files: list[str], work: str) -> dict:
    from datasketch import MinHash, MinHashLSH

    from dolma import minhash as mh

    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=128)
    parent: list[int] = []

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    n = 0
    for path in files:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                shingles = mh.shingles(json.loads(line)["text"])
                parent.append(n)
                if shingles:
                    m = MinHash(num_perm=128, seed=1)
                    m.update_batch([s.encode("utf-8") for s in shingles])
                    for other in lsh.query(m):
                        a, b = find(other), find(n)
                        parent[max(a, b)] = min(a, b)
                    lsh.insert(n, m)
                n += 1
    roots = [find(x) for x in range(n)]
    dups = sum(1 for x, r in enumerate(roots) if r != x)
    return {"documents": n, "clusters": len({r for x, r in enumerate(roots) if r != x}), "duplicates": dups}


def child(kind: str, args: list[str]) -> None:
    """Entry point of a measured subprocess: prints one JSON line."""
    start = time.perf_counter()
    if kind == "ours":
        out = run_ours(args[1:], args[0])
    elif kind.startswith("command"):
        out = run_command(args[1:], args[0], kind.split("-")[1])
    elif kind == "datasketch":
        out = run_datasketch(args[1:], args[0])
    elif kind == "cluster":
        from dolma import minhash as mh

        units = json.loads(Path(args[0]).read_text())
        outs = [f"{args[1]}/{i}.mhr" for i in range(len(units))]
        params = mh.MinHashParams(threshold=THRESHOLD)
        mh.signer(params)  # datasketch's optimiser and imports, before the measurement
        before = _rss_kb("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # Linux: the peak (VmHWM) restarts from the current RSS
        start = time.perf_counter()
        stats = mh.cluster(units, outs, params, memory_budget=64 << 20, threads=1)
        out = {
            "documents": stats.documents,
            "clusters": stats.clusters,
            "sort_runs": stats.sort_runs,
            "cluster_s": time.perf_counter() - start,
            "rss_before_mb": before / 1024,
            "cluster_peak_mb": _rss_kb("VmHWM") / 1024,
        }
    else:
        raise SystemExit(f"unknown child {kind}")
    out["wall"] = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out["cpu"] = usage.ru_utime + usage.ru_stime
    out["max_rss_mb"] = usage.ru_maxrss / 1024
    print(json.dumps(out))


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def measured(kind: str, *args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", kind, *args], check=True, capture_output=True, text=True, cwd=REPO
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def text_mb(files: list[str]) -> float:
    total = 0
    for path in files:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            total += sum(len(json.loads(line)["text"].encode("utf-8")) for line in f)
    return total / 1e6


def bench_end_to_end(copies: int) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        files = build_copies(Path(tmp), copies)
        mb = text_mb(files)
        rows = []
        for kind in ("datasketch", "ours", "command-1", "command-2"):
            r = measured(kind, f"{tmp}/{kind}", *files)
            r.update(case=kind, mb=round(mb, 1), docs_per_s=round(r["documents"] / r["wall"]), mb_per_s=mb / r["wall"])
            r["speedup"] = round(rows[0]["wall"] / r["wall"], 1) if rows else 1.0
            rows.append(r)
        return rows


# ----------------------------------------------------------------------------------------------------------
# Clustering memory
# ----------------------------------------------------------------------------------------------------------


def bench_memory(sizes: list[int]) -> list[dict]:
    from dolma import minhash as mh

    params = mh.MinHashParams(threshold=THRESHOLD)
    rows = []
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            rng = random.Random(n)
            vocab = [f"w{i}" for i in range(50_000)]
            per_file = 250_000
            units = []
            start = time.perf_counter()
            for f in range((n + per_file - 1) // per_file):
                path = Path(tmp) / "documents" / f"{f}.jsonl.gz"
                path.parent.mkdir(exist_ok=True)
                with gzip.open(path, "wt", compresslevel=1) as out:
                    previous: list[str] = []
                    for i in range(min(per_file, n - f * per_file)):
                        if previous and rng.random() < 0.1:
                            words = list(previous)
                            words[rng.randrange(len(words))] = "changed"
                        else:
                            words = rng.choices(vocab, k=25)
                        previous = words
                        out.write(json.dumps({"id": f"{f}-{i}", "text": " ".join(words)}) + "\n")
                unit = f"{tmp}/keys/{f}.mhk"
                mh.sign_file(str(path), unit, f, params)
                units.append(unit)
            prepare = time.perf_counter() - start
            (Path(tmp) / "units.json").write_text(json.dumps(units))
            r = measured("cluster", f"{tmp}/units.json", f"{tmp}/results")
            r.update(n=n, prepare_s=round(prepare, 1))
            r["growth_mb"] = r["cluster_peak_mb"] - r["rss_before_mb"]
            r["bytes_per_doc_beyond_budget"] = round((r["growth_mb"] - 64) * 2**20 / n, 1)
            rows.append(r)
    return rows


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3:])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--copies", type=int, default=8)
    ap.add_argument("--memory-docs", default="250000,1000000")
    ap.add_argument("--only", choices=["signatures", "end_to_end", "memory", "signing"])
    ap.add_argument("--corpus", type=Path, help="documents directory for --only signing")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    report = {"load_average": list(__import__("os").getloadavg())}
    if args.only == "signing":
        if args.corpus is None:
            ap.error("--only signing needs --corpus DIR")
        report["signing"] = bench_signing(args.corpus, args.repeats)
        for row in report["signing"]:
            print(row)
        if args.out:
            args.out.write_text(json.dumps(report, indent=1) + "\n")
        return
    if args.only in (None, "signatures"):
        report["signatures"] = bench_signatures(args.repeats)
        for row in report["signatures"]:
            print(row)
    if args.only in (None, "end_to_end"):
        report["end_to_end"] = bench_end_to_end(args.copies)
        for row in report["end_to_end"]:
            print(row)
    if args.only not in (None, "memory"):
        return
    sizes = [int(x) for x in args.memory_docs.split(",") if x]
    report["memory"] = bench_memory(sizes)
    for row in report["memory"]:
        print(row)
    report["load_average_end"] = list(__import__("os").getloadavg())
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
