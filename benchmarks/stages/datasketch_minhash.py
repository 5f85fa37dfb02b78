"""Near-duplicate detection with datasketch in Python: the baseline of the near_dup stage of `make bench`.

Read every documents file, shingle each text with our shingler (word 5-grams, so both sides hash the same
shingles), `datasketch.MinHash(num_perm, seed=1)` (sha1 of the UTF-8 shingles), then `MinHashLSH(threshold,
num_perm)`: query before insert, each candidate is an edge, clusters are the connected components (union-find,
the smallest ordinal is the root). With `--workers N > 1` the signatures are computed by a process pool, one
documents file per task (the index is one Python object: insert and query stay in the parent).

Writes `--output` (JSON): the candidate pairs and, per document in a cluster of two or more, its cluster root.
"""

from __future__ import annotations

import argparse
import glob
import gzip
import json
from multiprocessing import Pool

import numpy as np

NUM_PERM = 128
SEED = 1


def sign_file(path: str) -> list[tuple[str, np.ndarray | None]]:
    """(id, MinHash hash values or None when the text has no shingle) of every document of one file."""
    from datasketch import MinHash

    from dolma.minhash import shingles

    out: list[tuple[str, np.ndarray | None]] = []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            doc = json.loads(line)
            grams = shingles(doc["text"])
            if not grams:
                out.append((doc["id"], None))
                continue
            m = MinHash(num_perm=NUM_PERM, seed=SEED)
            m.update_batch([g.encode("utf-8") for g in grams])
            out.append((doc["id"], m.hashvalues))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--documents", required=True, help="glob of .jsonl.gz documents files")
    ap.add_argument("--output", required=True)
    ap.add_argument("--threshold", type=float, required=True)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()

    from datasketch import LeanMinHash, MinHashLSH

    files = sorted(glob.glob(args.documents))
    if args.workers > 1:
        with Pool(args.workers) as pool:
            signed = pool.map(sign_file, files, chunksize=1)
    else:
        signed = [sign_file(f) for f in files]

    lsh = MinHashLSH(threshold=args.threshold, num_perm=NUM_PERM)
    parent: list[int] = []
    ids: list[str] = []
    pairs = 0

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for per_file in signed:
        for doc_id, values in per_file:
            n = len(ids)
            ids.append(doc_id)
            parent.append(n)
            if values is None:
                continue
            m = LeanMinHash(seed=SEED, hashvalues=values, scheme="affine32")
            for other in lsh.query(m):
                pairs += 1
                a, b = find(other), find(n)
                parent[max(a, b)] = min(a, b)
            lsh.insert(n, m)
    roots = [find(x) for x in range(len(ids))]
    size: dict[int, int] = {}
    for r in roots:
        size[r] = size.get(r, 0) + 1
    clusters = {ids[x]: r for x, r in enumerate(roots) if size[r] > 1}
    with open(args.output, "w", encoding="utf-8") as fh:
        json.dump({"documents": len(ids), "pairs": pairs, "clusters": clusters}, fh)


if __name__ == "__main__":
    main()
