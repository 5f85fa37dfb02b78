"""Throughput of the PII and language-ID taggers, ours next to the reference toolkit on the same files.

Builds (once) a corpus of >= 100 MB of synthetic English/multilingual documents with e-mail addresses,
phone numbers and IP addresses, then times `dolma tag` (ours and the reference's CLI) with 1 and 2
processes, reporting docs/s, MB/s, CPU seconds (user + sys of the command and all its processes) and the
peak RSS of the largest process (both from /usr/bin/time).

    python benchmarks/bench_pii_langid.py [--mb 100] [--taggers pii_regex_v2 ...] [--reference PATH]

The machine's cores are shared, so wall-clock rates depend on the load; the CPU-time ratio (reference CPU
seconds / ours for the same work) is much less sensitive to it, so it is printed too, with `uptime`'s load
before each run.
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
# Run as a script, benchmarks/ comes first on sys.path and its taggers.py would shadow the taggers package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO / "benchmarks"]
sys.path[:0] = [str(REPO / "tests"), str(REPO)]

_WORD_TEXT = (
    "the of and to in is was for on that with as by at from his her an which have are were this be or "
    "research data model system city river history music team season government school church film album"
)
WORDS = _WORD_TEXT.split()
EXTRA = [
    "contact john.doe@example.com for details",
    "call (555) 123-4567 today",
    "server 192.168.1.20 responded",
    "Ceci est une phrase en français.",
    "Dies ist ein deutscher Satz.",
]


def make_corpus(root: Path, mb: int, files: int = 8) -> tuple[int, int]:
    rng = random.Random(0)
    target = mb * 1_000_000
    per_file = target // files
    docs = size = 0
    for f in range(files):
        path = root / "documents" / f"part{f % 2}" / f"{f:03d}.jsonl.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        with gzip.open(path, "wt", encoding="utf-8", compresslevel=1) as out:
            while written < per_file:
                paras = []
                for _ in range(rng.randint(1, 8)):
                    words = [rng.choice(WORDS) for _ in range(rng.randint(20, 120))]
                    if rng.random() < 0.3:
                        words.insert(rng.randrange(len(words)), rng.choice(EXTRA))
                    paras.append(" ".join(words).capitalize() + ".")
                text = "\n".join(paras)
                out.write(json.dumps({"id": f"{f}-{docs}", "text": text, "source": "bench"}) + "\n")
                written += len(text.encode())
                docs += 1
        size += written
    return docs, size


def load() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 1)[0] if Path("/proc/loadavg").exists() else "?"


def run(cmd: list[str], cwd: Path, env: dict) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds of all its processes, peak RSS in MB of the largest process) of one command."""
    start = time.perf_counter()
    result = subprocess.run(["/usr/bin/time", "-v", *cmd], cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{result.stderr[-3000:]}")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr)
    cpu = sum(float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", result.stderr))
    return elapsed, cpu, (int(rss.group(1)) / 1024 if rss else float("nan"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--work", default="/tmp/dolma-bench-pii")
    parser.add_argument(
        "--taggers",
        nargs="+",
        default=[
            "pii_regex_v2",
            "pii_regex_with_counts_fast_v2",
            "ft_lang_id_en_doc_v2",
            "ft_lang_id_en_paragraph_v2",
        ],
    )
    parser.add_argument("--processes", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--reference", default=os.environ.get("DOLMA_REFERENCE_PYTHON", "/tmp/refdolma/bin/python"))
    args = parser.parse_args()
    from reference import reference_env

    work = Path(args.work)
    corpus = work / "corpus"
    stamp = corpus / f".built-{args.mb}"
    if not stamp.exists():
        shutil.rmtree(corpus, ignore_errors=True)
        docs, size = make_corpus(corpus, args.mb)
        stamp.write_text(json.dumps([docs, size]))
    docs, size = json.loads(stamp.read_text())
    print(f"corpus: {docs} documents, {size / 1e6:.1f} MB of text in {corpus}")
    ours_env = dict(os.environ, PYTHONPATH=str(REPO))
    ref_env = reference_env(work)
    rows = []
    for tagger in args.taggers:
        for procs in args.processes:
            for who, cmd, env in [
                ("ours", [sys.executable, "-m", "dolma", "tag", "--quiet"], ours_env),
                ("reference", [str(Path(args.reference).parent / "dolma"), "tag"], ref_env),
            ]:
                shutil.rmtree(corpus / "attributes", ignore_errors=True)
                full = [*cmd, "--documents", "documents/*/*.jsonl.gz", "--taggers", tagger, "--processes", str(procs)]
                before = load()
                elapsed, cpu, rss = run(full, corpus, env)
                rows.append((tagger, procs, who, docs / elapsed, size / 1e6 / elapsed, cpu, rss, before))
                print(
                    f"{tagger:32s} p={procs} {who:9s} {docs / elapsed:9.0f} docs/s {size / 1e6 / elapsed:7.2f} MB/s "
                    f"CPU {cpu:7.1f} s  peak RSS {rss:6.0f} MB  load before {before}",
                    flush=True,
                )
    print(
        "\n| tagger | processes | ours docs/s (MB/s) | reference docs/s (MB/s) | wall speed-up "
        "| CPU s ours / reference | CPU ratio | peak RSS MB ours / reference | load before (ours, ref) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for i in range(0, len(rows), 2):
        (t, p, _, d, m, c, r, ld), (_, _, _, rd, rm, rc, rr, rld) = rows[i], rows[i + 1]
        print(
            f"| {t} | {p} | {d:.0f} ({m:.2f}) | {rd:.0f} ({rm:.2f}) | {d / rd:.1f}x | {c:.1f} / {rc:.1f} "
            f"| {rc / c:.1f}x | {r:.0f} / {rr:.0f} | {ld}, {rld} |"
        )


if __name__ == "__main__":
    main()
