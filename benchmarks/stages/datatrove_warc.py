"""datatrove's counterpart of `dolma warc --linearizer trafilatura` (run with the datatrove virtual environment).

WarcReader (warcio; keeps HTML responses and WET conversions) -> Trafilatura extractor -> JsonlWriter, on
LocalPipelineExecutor with one task per WARC file and `--workers` processes. The extractor's own settings are
datatrove's defaults (favour_precision, dedupe, a 1 s timeout per page in a sandbox process).
"""

from __future__ import annotations

import argparse


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--warc", required=True, help="directory of *.warc.gz files")
    ap.add_argument("--output", required=True)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--tasks", type=int, default=1)
    args = ap.parse_args()

    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.readers import WarcReader
    from datatrove.pipeline.writers import JsonlWriter

    executor = LocalPipelineExecutor(
        pipeline=[
            WarcReader(args.warc, glob_pattern="*.warc.gz", doc_progress=False),
            Trafilatura(),
            JsonlWriter(args.output),
        ],
        tasks=args.tasks,
        workers=args.workers,
        logging_dir=f"{args.output}-logs",
        skip_completed=False,
    )
    executor.run()


if __name__ == "__main__":
    main()
