"""datatrove's MinHash deduplication, its four steps, for the near_dup stage (run with the datatrove environment).

1. JsonlReader -> MinhashDedupSignature (signatures per task, sorted per bucket); `--workers` tasks.
2. MinhashDedupBuckets: duplicate pairs per bucket (one task per bucket, `--workers` at a time).
3. MinhashDedupCluster: union-find over the pairs, one task (with the cluster ids saved).
4. JsonlReader -> MinhashDedupFilter -> JsonlWriter: kept documents to <output>/kept, removed ones to
   <output>/removed, each with its `minhash_cluster_id` in the metadata; `--workers` tasks.

Bands x rows are given (ours for the same threshold and 128 permutations); its shingles are its own (spaCy
English words of its normalised text, 5-grams, xxhash64), as a datatrove user runs it.
"""

from __future__ import annotations

import argparse


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--documents", required=True, help="the folder holding <source>/*.jsonl.gz")
    ap.add_argument("--output", required=True)
    ap.add_argument("--bands", type=int, required=True)
    ap.add_argument("--rows", type=int, required=True)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()

    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    config = MinhashConfig(n_grams=5, num_buckets=args.bands, hashes_per_bucket=args.rows, seed=1)
    out = args.output

    def reader() -> JsonlReader:
        return JsonlReader(args.documents, glob_pattern="*/*.jsonl.gz", doc_progress=False)

    def run(name: str, pipeline: list, tasks: int) -> None:
        LocalPipelineExecutor(
            pipeline=pipeline,
            tasks=tasks,
            workers=min(tasks, args.workers),
            logging_dir=f"{out}/logs/{name}",
            skip_completed=False,
        ).run()

    run(
        "signatures", [reader(), MinhashDedupSignature(output_folder=f"{out}/signatures", config=config)], args.workers
    )
    run(
        "buckets",
        [MinhashDedupBuckets(input_folder=f"{out}/signatures", output_folder=f"{out}/buckets", config=config)],
        config.num_buckets,
    )
    run(
        "clusters",
        [
            MinhashDedupCluster(
                input_folder=f"{out}/buckets", output_folder=f"{out}/remove", config=config, save_cluster_id=True
            )
        ],
        1,
    )
    run(
        "filter",
        [
            reader(),
            MinhashDedupFilter(
                input_folder=f"{out}/remove",
                exclusion_writer=JsonlWriter(f"{out}/removed"),
                load_cluster_ids=True,
            ),
            JsonlWriter(f"{out}/kept"),
        ],
        args.workers,
    )


if __name__ == "__main__":
    main()
