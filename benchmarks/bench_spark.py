"""Spark executor benchmark: tag and dedupe on local[1] vs local[2], and Spark vs the local executor.

    .venv/bin/python benchmarks/bench_spark.py --size-mb 100 [--tasks tag,dedupe,minhash] [--repeats 3] [--out r.json]

Builds a synthetic corpus (16 gzip files, `--size-mb` of uncompressed JSON lines, planted repeated
paragraphs), then runs every configuration in a fresh process and prints one table:
- throughput of the work itself (MB/s of uncompressed input, docs/s), measured around `executor.run`
  (tag) or `dedupe.run` (dedupe: paragraphs with a Bloom filter; minhash: `dedupe.minhash`, threshold 0.8) once
  the SparkContext is up, and end-to-end wall time including JVM start-up;
  each process runs the work `--runs` times (default 2): the first run is "cold" (a new Spark application
  also starts its Python workers and warms up the JVM then, a few seconds), the best later one "warm" (the
  steady state of a long job);
- scaling ratio = local[1] / local[2] time; overhead ratio = Spark / local executor time at the same
  parallelism (1.0 = no overhead), for cold and warm runs;
- peak RSS of the process tree (Spark: driver, JVM and Python workers are separate processes, reported as
  the largest single one, from getrusage of the children).
Not part of `make test`. The machine may be shared: treat the numbers as indicative.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

TAGGERS = ["char_length_v1", "whitespace_tokenizer_with_paragraphs_v1", "ft_lang_id_en_doc_v2"]
FILES = 16
LOOPBACK = {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1", "spark.ui.enabled": "false"}


def build_corpus(root: Path, size_mb: int) -> Path:
    docs_dir = root / "documents"
    marker = root / f".built-{size_mb}"
    if marker.exists():
        return docs_dir
    rng = random.Random(0)
    vocab = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10))) for _ in range(5000)]
    boiler = [" ".join(rng.choice(vocab) for _ in range(12)) + "." for _ in range(200)]
    per_file = size_mb * 1_000_000 // FILES
    docs_dir.mkdir(parents=True, exist_ok=True)
    n = 0
    for f in range(FILES):
        written = 0
        with gzip.open(docs_dir / f"part-{f:02d}.jsonl.gz", "wt", encoding="utf-8", compresslevel=1) as fh:
            while written < per_file:
                paras = []
                for _ in range(rng.randint(2, 12)):
                    if rng.random() < 0.15:
                        paras.append(rng.choice(boiler))
                    else:
                        paras.append(" ".join(rng.choice(vocab) for _ in range(rng.randint(5, 80))))
                line = json.dumps({"id": f"d{n}", "text": "\n".join(paras), "source": "bench"}) + "\n"
                fh.write(line)
                written += len(line)
                n += 1
    marker.touch()
    return docs_dir


def _clean_dedupe_outputs(work: Path, name: str) -> None:
    """Remove what a dedupe run left (filter, MinHash working files, attribute files) so that the next run redoes
    everything."""
    import shutil

    (work / "out" / f"{name}.bloom").unlink(missing_ok=True)
    shutil.rmtree(work / "out" / f"{name}-work", ignore_errors=True)
    shutil.rmtree(work / "attributes" / name, ignore_errors=True)


def one(args: argparse.Namespace) -> None:
    """Run one configuration in this process and print a JSON line."""
    from dolma import config as dconfig
    from dolma.commands import tag
    from dolma.commands.common import SparkOptions
    from dolma.executors.local import LocalExecutor

    work = Path(args.workdir)
    docs = str(work / "documents" / "*.jsonl.gz")
    out = work / "out" / f"{args.task}-{args.executor}-{args.parallelism}"
    started = time.monotonic()
    sc = None
    if args.executor == "spark":
        from dolma.executors.spark import get_context

        sc, _ = get_context(SparkOptions(master=f"local[{args.parallelism}]", conf=LOOPBACK))
    ready = time.monotonic()
    if args.task == "tag":
        config = dconfig.build(
            tag.TagConfig,
            overrides={"documents": [docs], "taggers": TAGGERS, "destination": str(out), "quiet": True},
        )
        sets, units = tag.plan(config)
        job = tag.TagJob(config, sets)
        if sc is not None:
            from dolma.executors.spark import SparkExecutor

            executor = SparkExecutor(SparkOptions(), quiet=True, ignore_existing=True)
        else:
            executor = LocalExecutor(processes=args.parallelism, quiet=True, ignore_existing=True)
        seconds = []
        for _ in range(args.runs):
            t0 = time.monotonic()
            summary = executor.run(job, units)
            seconds.append(time.monotonic() - t0)
            assert summary.ok, summary.failures[:3]
    else:
        from dolma import io
        from dolma.commands import dedupe
        from dolma.dedupe.config import DedupeConfig

        name = f"{args.task}-{args.executor}-{args.parallelism}"
        bloom = work / "out" / f"{name}.bloom"
        bloom.unlink(missing_ok=True)
        common = {"documents": [docs], "processes": args.parallelism, "executor": args.executor, "quiet": True}
        if args.task == "minhash":
            # near-duplicates: MinHash-LSH (xxh3, 128 permutations, threshold 0.8), no Bloom filter
            mh_work = work / "out" / f"{name}-work"
            section = {"attribute_name": "nd", "threshold": 0.8, "work_dir": str(mh_work)}
            overrides = {**common, "dedupe": {"name": name, "minhash": section}}
        else:
            filter_ = {"file": str(bloom), "estimated_doc_count": 20_000_000, "desired_false_positive_rate": 1e-9}
            section = {"name": name, "paragraphs": {"attribute_name": "dup"}, "skip_empty": True}
            overrides = {**common, "dedupe": section, "bloom_filter": filter_}
        config = dconfig.build(DedupeConfig, overrides=overrides)
        seconds = []
        for _ in range(args.runs):
            _clean_dedupe_outputs(work, name)
            t0 = time.monotonic()
            assert dedupe.run(config) == 0
            seconds.append(time.monotonic() - t0)
        _clean_dedupe_outputs(work, name)
        from dolma.executors.base import Summary

        summary = Summary(units=0)  # counts for the report, read outside the timed part
        for path in io.glob(docs):
            data = io.read_bytes(path)
            summary.stats.documents_in += data.count(b"\n")
            summary.stats.bytes_in += len(data)
    if sc is not None:
        sc.stop()
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "task": args.task,
                "executor": args.executor,
                "parallelism": args.parallelism,
                "startup_s": ready - started,
                "run_s": seconds[0],
                "warm_s": min(seconds[1:] or seconds),
                "total_s": ready - started + seconds[0],
                "docs": summary.stats.documents_in,
                "bytes": summary.stats.bytes_in,
                "peak_rss_mb": max(children, own) / 1024,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--workdir", default=None, help="default: /tmp/dolma-bench-spark-<size>mb")
    parser.add_argument("--tasks", default="tag,dedupe")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved runs per configuration (median used)")
    parser.add_argument("--out", default=None, help="also write the runs and ratios to this JSON file")
    parser.add_argument(
        "--runs", type=int, default=2, help="runs in each process: the first is cold, the best later one warm"
    )
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--task", default="tag", help=argparse.SUPPRESS)
    parser.add_argument("--executor", default="local", help=argparse.SUPPRESS)
    parser.add_argument("--parallelism", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args)
        return
    work = Path(args.workdir or f"/tmp/dolma-bench-spark-{args.size_mb}mb")
    build_corpus(work, args.size_mb)
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    runs = []
    configs = [(t, e, p) for t in args.tasks.split(",") for e in ("local", "spark") for p in (1, 2)]
    for repeat in range(args.repeats):
        for task, executor, parallelism in configs:
            cmd = [sys.executable, __file__, "--one", "--workdir", str(work), "--task", task]
            cmd += ["--executor", executor, "--parallelism", str(parallelism)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            row["repeat"] = repeat
            runs.append(row)
            print(
                f"{task:7} {executor:6} x{parallelism}: run {row['run_s']:7.2f} s "
                f"({row['bytes'] / 1e6 / row['run_s']:6.2f} MB/s, {row['docs'] / row['run_s']:8.0f} docs/s), "
                f"warm {row['warm_s']:7.2f} s ({row['bytes'] / 1e6 / row['warm_s']:6.2f} MB/s), "
                f"start-up {row['startup_s']:5.1f} s, total {row['total_s']:7.2f} s, "
                f"driver peak RSS {row['peak_rss_mb']:6.0f} MB",
                flush=True,
            )

    def median(task: str, executor: str, p: int, field: str) -> float:
        values = [r[field] for r in runs if (r["task"], r["executor"], r["parallelism"]) == (task, executor, p)]
        return statistics.median(values)

    print(f"\nmedians of {args.repeats} run(s); load average after: {os.getloadavg()[0]:.2f}")
    ratios = {}
    for task in args.tasks.split(","):
        cells = [(e, p) for e in ("local", "spark") for p in (1, 2)]
        total = {c: median(task, *c, "total_s") for c in cells}
        ratios[task] = {}
        for kind, field in (("cold", "run_s"), ("warm", "warm_s")):
            run = {c: median(task, *c, field) for c in cells}
            ratios[task][kind] = {
                "spark_scaling": run["spark", 1] / run["spark", 2],
                "local_scaling": run["local", 1] / run["local", 2],
                "overhead_1": run["spark", 1] / run["local", 1],
                "overhead_2": run["spark", 2] / run["local", 2],
            }
            r = ratios[task][kind]
            print(f"{task} ({kind}: {'first run in the process' if kind == 'cold' else 'best later run'}):")
            for (e, p), seconds in run.items():
                print(f"  {e} x{p}: {seconds:.2f} s")
            print(f"  Spark scaling local[2]/local[1] = {r['spark_scaling']:.2f} (target >= 1.7)")
            print(
                f"  Spark/local time at 1 core = {r['overhead_1']:.2f}, at 2 cores = {r['overhead_2']:.2f}"
                " (target <= 1.3)"
            )
            print(f"  local executor scaling 2/1 processes = {r['local_scaling']:.2f}")
        with_jvm = [total["spark", p] / total["local", p] for p in (1, 2)]
        print(f"{task}: Spark/local with JVM start-up, cold: {with_jvm[0]:.2f} at 1 core, {with_jvm[1]:.2f} at 2")
    if args.out:
        Path(args.out).write_text(
            json.dumps({"size_mb": args.size_mb, "repeats": args.repeats, "runs": runs, "ratios": ratios}, indent=1)
        )


if __name__ == "__main__":
    main()
