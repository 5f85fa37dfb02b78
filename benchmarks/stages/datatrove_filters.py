"""Run datatrove's counterparts of our taggers as a pipeline (executed with the datatrove virtual environment).

JsonlReader -> filters -> JsonlWriter (kept documents), on LocalPipelineExecutor with one task per worker.
"""

from __future__ import annotations

import argparse


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--documents", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--lid-model", default="")
    ap.add_argument("--filters", nargs="+", required=True, choices=["language", "gopher", "c4"])
    args = ap.parse_args()

    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    steps: list = [JsonlReader(args.documents, glob_pattern="*/*.jsonl.gz", doc_progress=False)]
    for name in args.filters:
        if name == "language":
            from datatrove.pipeline.filters import LanguageFilter

            steps.append(LanguageFilter(languages=["en"], language_threshold=0.5))
        elif name == "gopher":
            from datatrove.pipeline.filters import GopherQualityFilter

            steps.append(GopherQualityFilter())
        elif name == "c4":
            from datatrove.pipeline.filters import C4QualityFilter

            steps.append(C4QualityFilter())
    steps.append(JsonlWriter(args.output))
    executor = LocalPipelineExecutor(
        pipeline=steps,
        tasks=args.workers,
        workers=args.workers,
        logging_dir=f"{args.output}-logs",
        skip_completed=False,
    )
    executor.run()


if __name__ == "__main__":
    main()
