"""Near-duplicate detection (MinHash-LSH): `dolma dedupe` with `dedupe.minhash` vs datasketch vs datatrove.

Same input files (the first 30 MB of the corpus for all three, and the whole corpus for ours and datasketch),
128 permutations, seed 1, threshold 0.8 (bands x rows as datasketch's `MinHashLSH` chooses
them, given explicitly to datatrove), word 5-grams:

- ours: the whole command (sign, cluster, write the attribute files), default xxh3 shingle hash, no verify;
- datasketch: benchmarks/stages/datasketch_minhash.py in our environment (our shingles, `MinHash` with sha1,
  `MinHashLSH` query + insert, union-find), the signatures on a process pool when processes > 1;
- datatrove: its four MinHash steps (benchmarks/stages/datatrove_minhash.py, in the datatrove environment), with
  its own shingles (spaCy words of its normalised text).

Quality, per implementation: clusters of 2+ documents, near-duplicates (documents that are not their cluster's
keeper), candidate pairs (ours: distinct pairs from shared LSH buckets; datasketch: query results; datatrove:
its duplicate-pair records, one per bucket), and the recall of the corpus's planted pairs (ground_truth.json:
`near_duplicates`, word edits of a document; `exact_duplicates`, each copy with the group's first document):
the share whose two documents end up in one cluster.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from benchmarks.harness import Case, Command, Context, Impl, link_documents
from benchmarks.stages.common import documents_pattern, dolma_command, read_jsonl_dir

HERE = Path(__file__).resolve().parent
NAME = "bench_near_dup"
ATTRIBUTE = "nd"
THRESHOLD = 0.8
NUM_PERM = 128
INPUT_MB = 30  # datasketch and datatrove read ~1 MB/s of text in one process


def band_rows() -> tuple[int, int]:
    from dolma.minhash import MinHashParams

    return MinHashParams(num_perm=NUM_PERM, threshold=THRESHOLD).band_rows()


def planted_recall(ctx: Context, cluster_of: dict[str, object]) -> dict:
    """Share of the planted pairs (both documents in the input) whose documents share a cluster."""
    ids = set(ctx.input_ids)
    out = {}
    for kind, label in (("near_duplicates", "recall (planted near-dups)"), ("exact_duplicates", "recall (exact)")):
        pairs = []
        for group in ctx.ground_truth.get(kind, []):
            members = [i for i in group["ids"] if i in ids]
            pairs += [(members[0], other) for other in members[1:]]
        found = sum(1 for a, b in pairs if a in cluster_of and cluster_of.get(a) == cluster_of.get(b))
        out[label] = f"{found / len(pairs):.3f}" if pairs else "n/a"
    return out


def summary(ctx: Context, cluster_of: dict[str, object], pairs: int) -> dict:
    sizes: dict[object, int] = {}
    for label in cluster_of.values():
        sizes[label] = sizes.get(label, 0) + 1
    clusters = sum(1 for n in sizes.values() if n > 1)
    dups = sum(n - 1 for n in sizes.values() if n > 1)
    return {"clusters": clusters, "near-duplicates": dups, "pairs": pairs, **planted_recall(ctx, cluster_of)}


def ours_check(ctx: Context):
    def check(workdir: Path) -> dict:
        cluster_of = {}
        for rec in read_jsonl_dir(workdir / "attributes" / NAME):
            spans = rec["attributes"].get(f"{ATTRIBUTE}__cluster")
            if spans:
                cluster_of[rec["id"]] = spans[0][2]
        stats = json.loads((workdir / "minhash" / "results" / "cluster.json").read_text())["stats"]
        return summary(ctx, cluster_of, stats["candidate_pairs"])

    return check


def datasketch_check(ctx: Context):
    def check(workdir: Path) -> dict:
        result = json.loads((workdir / "clusters.json").read_text())
        return summary(ctx, result["clusters"], result["pairs"])

    return check


def datatrove_check(ctx: Context):
    def check(workdir: Path) -> dict:
        out = workdir / "datatrove"
        cluster_of = {}
        for part in ("kept", "removed"):
            for rec in read_jsonl_dir(out / part):
                label = rec.get("metadata", {}).get("minhash_cluster_id", -1)
                if label != -1:
                    cluster_of[rec["id"]] = label
        pairs = sum(f.stat().st_size for f in (out / "buckets").glob("*.dups")) // 16  # four uint32 per pair
        return summary(ctx, cluster_of, pairs)

    return check


def cases(ctx: Context) -> list[Case]:
    name = f"MinHash-LSH, {NUM_PERM} perms, threshold {THRESHOLD}, word 5-grams"
    if "dedupe" not in ctx.our_commands:
        return [Case("near_dup", name, missing="no `dolma dedupe` command on this branch")]
    bands, rows = band_rows()

    def ours(workdir: Path, p: int) -> Command:
        cmd = dolma_command(ctx.ours, ctx, workdir, [])
        section = {"attribute_name": ATTRIBUTE, "threshold": THRESHOLD, "work_dir": str(workdir / "minhash")}
        cfg = {"documents": [documents_pattern(workdir)], "processes": p, "dedupe": {"name": NAME, "minhash": section}}
        (workdir / "dedupe.yaml").write_text(yaml.safe_dump(cfg))
        cmd.argv += ["-c", str(workdir / "dedupe.yaml"), "dedupe"]
        return cmd

    def datasketch(workdir: Path, p: int) -> Command:
        link_documents(ctx.input_root, workdir)
        argv = [sys.executable, str(HERE / "datasketch_minhash.py"), "--documents", documents_pattern(workdir)]
        argv += ["--output", str(workdir / "clusters.json"), "--threshold", str(THRESHOLD), "--workers", str(p)]
        return Command(argv, cwd=workdir)

    def datatrove(workdir: Path, p: int) -> Command:
        link_documents(ctx.input_root, workdir)
        argv = [str(ctx.datatrove_python), str(HERE / "datatrove_minhash.py"), "--documents"]
        argv += [str(workdir / "documents"), "--output", str(workdir / "datatrove"), "--workers", str(p)]
        argv += ["--bands", str(bands), "--rows", str(rows)]
        return Command(argv, cwd=workdir, env=ctx.reference_env)

    case = Case("near_dup", name, input_mb=INPUT_MB)
    case.impls["ours"] = Impl(ours, ours_check(ctx))
    case.impls["datasketch"] = Impl(datasketch, datasketch_check(ctx), note="signatures on p processes")
    if ctx.datatrove_python:
        case.impls["datatrove"] = Impl(datatrove, datatrove_check(ctx))
    # The whole corpus for ours and datasketch only: on the capped input our command's time is mostly its fixed
    # start-up, which a real corpus amortises (datatrove's four steps would take hours here).
    whole = Case("near_dup", f"{name}, whole corpus", input_mb=None)
    whole.impls["ours"] = Impl(ours, ours_check(ctx))
    whole.impls["datasketch"] = Impl(datasketch, datasketch_check(ctx), note="signatures on p processes")
    return [case, whole]
