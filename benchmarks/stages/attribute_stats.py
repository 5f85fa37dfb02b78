"""`dolma stat`: histograms, sums and quantiles of the Gopher and paragraph-length attributes of the input.

The attributes (`gopher_v1`: 24 keys, one span per document each; `char_length_with_paragraphs_v1`: a span per
paragraph) are made once per input with our `dolma tag`, untimed, and read by both implementations with the
same config (1000 bins). Quality: the number of histograms and of values counted, which must be equal.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from benchmarks.harness import Case, Command, Context, Impl
from benchmarks.stages.common import link_inputs, tagged_attributes

INPUT_MB = 100
TAGGERS = ["gopher_v1", "char_length_with_paragraphs_v1"]


def summary_counts(workdir: Path) -> dict:
    names = values = 0
    with gzip.open(workdir / "report" / "summaries.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            names += 1
            values += sum(row["counts"])
    return {"histograms": names, "values counted": values}


def cases(ctx: Context) -> list[Case]:
    name = "gopher_v1 + paragraph lengths, 1000 bins"
    if "stat" not in ctx.our_commands:
        return [Case("stat", name, missing="no `dolma stat` command on this branch")]

    def make(exe: Path, reference: bool):
        def prepare(workdir: Path, p: int) -> Command:
            link_inputs(ctx, workdir, tagged_attributes(ctx, "stat", {"stat": TAGGERS}))
            args = ["stat", "--attributes", str(workdir / "attributes" / "stat" / "*" / "*.jsonl.gz")]
            args += ["--report", str(workdir / "report"), "--bins", "1000", "--processes", str(p)]
            return Command([str(exe), *args], cwd=workdir, env=ctx.reference_env if reference else None)

        return prepare

    case = Case("stat", name, input_mb=INPUT_MB)
    case.impls["ours"] = Impl(make(ctx.ours, False), summary_counts)
    if ctx.reference:
        case.impls["reference"] = Impl(make(ctx.reference, True), summary_counts)
    return [case]
