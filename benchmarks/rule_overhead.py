#!/usr/bin/env python3
"""Per-document cost of mixer rules: the same filter and span rule as JSONPath and as jq, timed in one process.

Measures what a rule costs the mixer per document (not part of `make bench`, which times whole commands): the
sample corpus (tests/data/sample) is copied `--copies` times with fresh ids and tagged once with our `dolma tag`
(untimed; char_length_v1 and random_number_v1 as `bench`, pii_regex_v2 as `pii`), then one stream keeping
documents of at least 100 characters, dropping those whose random number is >= 0.9 and replacing e-mail spans is
mixed with `processes: 1` and plain output (no compression, so rules are most of the work). Every variant runs
`--repeat` times; the table shows the best wall time and the best CPU time (this process plus the rule sandbox,
which ends with the run), both per document. CPU time is the steadier number on a busy machine.

    .venv/bin/python benchmarks/rule_overhead.py --scratch /tmp/rule-overhead
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VARIANTS = {
    "none (no rules)": {},
    "jsonpath": {
        "filter": {
            "include": ["$.attributes[?(@.bench__char_length_v1__length[0][2] >= 100)]"],
            "exclude": ["$.attributes[?(@.bench__random_number_v1__random[0][2] >= 0.9)]"],
        },
        "span_replacement": [{"span": "$.attributes.pii__pii_regex_v2__EMAIL_ADDRESS", "min_score": 0.5}],
    },
    "jq": {
        "filter": {
            "syntax": "jq",
            "include": [".attributes.bench__char_length_v1__length[0][2] >= 100"],
            "exclude": [".attributes.bench__random_number_v1__random[0][2] >= 0.9"],
        },
        "span_replacement": [
            {"span": ".attributes.pii__pii_regex_v2__EMAIL_ADDRESS", "min_score": 0.5, "syntax": "jq"}
        ],
    },
}


def build_corpus(scratch: Path, copies: int) -> Path:
    """<scratch>/corpus/{documents,attributes}: the sample `copies` times (ids made unique), tagged once."""
    root = scratch / "corpus"
    if (root / ".done").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    sample = sorted((ROOT / "tests" / "data" / "sample" / "documents").rglob("*.jsonl.gz"))
    for copy in range(copies):
        for src in sample:
            rel = src.relative_to(ROOT / "tests" / "data" / "sample" / "documents")
            dst = root / "documents" / f"copy{copy:02d}" / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            with gzip.open(src, "rt", encoding="utf-8") as fin, gzip.open(dst, "wt", encoding="utf-8") as fout:
                for line in fin:
                    if line.strip():
                        doc = json.loads(line)
                        doc["id"] = f"{doc['id']}-{copy}"
                        fout.write(json.dumps(doc) + "\n")
    exe = ROOT / ".venv" / "bin" / "dolma"
    pattern = str(root / "documents" / "**" / "*.jsonl.gz")
    for experiment, taggers in {"bench": ["char_length_v1", "random_number_v1"], "pii": ["pii_regex_v2"]}.items():
        args = ["tag", "--documents", pattern, "--taggers", *taggers, "--experiment", experiment]
        subprocess.run([str(exe), *args, "--processes", "2", "--quiet"], check=True)
    (root / ".done").touch()
    return root


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def time_variant(root: Path, scratch: Path, stream_rules: dict, repeat: int) -> tuple[float, float, int]:
    """(best wall seconds, best CPU seconds, documents) over `repeat` runs."""
    from dolma.config import build
    from mixers.mix import run_mix
    from mixers.mix_config import MixConfig

    best_wall = best_cpu = float("inf")
    docs = 0
    for _ in range(repeat):
        out = scratch / "out"
        shutil.rmtree(out, ignore_errors=True)
        stream = {
            "name": "bench",
            "documents": [str(root / "documents" / "**" / "*.jsonl.gz")],
            "attributes": ["bench", "pii"],
            "output": {"path": str(out), "max_size_in_bytes": 1 << 40},
            "compression": {"output": "none"},
            "span_replacement": [],
            **stream_rules,
        }
        for sr in stream["span_replacement"]:
            sr.setdefault("replacement", "|||EMAIL_ADDRESS|||")
        report = scratch / "report.json"
        config = build(
            MixConfig, overrides={"streams": [stream], "quiet": True, "processes": 1, "report": str(report)}
        )
        cpu, start = _cpu(), time.perf_counter()
        run_mix(config)
        best_wall = min(best_wall, time.perf_counter() - start)
        best_cpu = min(best_cpu, _cpu() - cpu)
        docs = json.loads(report.read_text())[0]["documents_in"]
    return best_wall, best_cpu, docs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/dolma-rule-overhead"))
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    args.scratch.mkdir(parents=True, exist_ok=True)
    root = build_corpus(args.scratch, args.copies)
    rows = []
    for name, rules in VARIANTS.items():
        wall, cpu, docs = time_variant(root, args.scratch, json.loads(json.dumps(rules)), args.repeat)
        n = max(docs, 1)
        rows.append(f"| {name} | {docs:,} | {wall:.2f} | {wall / n * 1e6:.1f} | {cpu:.2f} | {cpu / n * 1e6:.1f} |")
    print("| rules | documents | best wall s | wall us/doc | best CPU s | CPU us/doc |")
    print("|---|---:|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
