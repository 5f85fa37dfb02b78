"""`dolma stat`: histograms, sums and quantiles of the Gopher and paragraph-length attributes of the input.

The attributes (`gopher_v1`: 24 keys, one span per document each; `char_length_with_paragraphs_v1`: a span per
paragraph) are made once per input with our `dolma tag`, untimed, and read by both implementations with the
same config (1000 bins). Quality: the number of histograms and of values counted, which must be equal.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
from pathlib import Path

from benchmarks.harness import Case, Command, Context, Impl
from benchmarks.stages.common import documents_pattern

INPUT_MB = 100
TAGGERS = ["gopher_v1", "char_length_with_paragraphs_v1"]


def shared_attributes(ctx: Context) -> Path:
    """attributes/stat/ for the current input, made once by our tagger (in the scratch directory)."""
    base = ctx.scratch / f"stat-attributes-{ctx.input_root.name}"
    done = base / "attributes" / ".done"
    if not done.exists():
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)
        (base / "documents").symlink_to((ctx.input_root / "documents").resolve(), target_is_directory=True)
        args = ["tag", "--documents", documents_pattern(base), "--taggers", *TAGGERS, "--experiment", "stat"]
        subprocess.run([str(ctx.ours), *args, "--processes", "2", "--quiet"], cwd=base, check=True)
        done.touch()
    return base / "attributes"


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
            attrs = shared_attributes(ctx)
            if workdir.exists():
                shutil.rmtree(workdir)
            workdir.mkdir(parents=True)
            os.symlink(attrs.resolve(), workdir / "attributes")
            args = ["stat", "--attributes", str(workdir / "attributes" / "stat" / "*" / "*.jsonl.gz")]
            args += ["--report", str(workdir / "report"), "--bins", "1000", "--processes", str(p)]
            return Command([str(exe), *args], cwd=workdir, env=ctx.reference_env if reference else None)

        return prepare

    case = Case("stat", name, input_mb=INPUT_MB)
    case.impls["ours"] = Impl(make(ctx.ours, False), summary_counts)
    if ctx.reference:
        case.impls["reference"] = Impl(make(ctx.reference, True), summary_counts)
    return [case]
