"""`dolma mix`: one stream with an exclude rule on a length attribute, ours vs the reference.

The attributes (char_length_v1 under the experiment `bench`) are made once with our `dolma tag`, untimed, and
shared by both implementations. Quality: documents kept (must be equal between implementations).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml

from benchmarks.harness import Case, Command, Context, Impl
from benchmarks.stages.common import documents_pattern, read_jsonl_dir

RULE = "$.attributes[?(@.bench__char_length_v1__length[0][2] < 300)]"


def shared_attributes(ctx: Context) -> Path:
    """attributes/bench/ made once by our tagger (in the scratch directory)."""
    base = ctx.scratch / "mix-attributes"
    done = base / "attributes" / ".done"
    if not done.exists():
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)
        (base / "documents").symlink_to((ctx.corpus / "documents").resolve(), target_is_directory=True)
        args = ["tag", "--documents", documents_pattern(base), "--taggers", "char_length_v1"]
        subprocess.run(
            [str(ctx.ours), *args, "--experiment", "bench", "--processes", "2", "--quiet"], cwd=base, check=True
        )
        done.touch()
    return base / "attributes"


def cases(ctx: Context) -> list[Case]:
    if "mix" not in ctx.our_commands:
        return [Case("mix", "length filter", missing="no `dolma mix` command on this branch")]

    def make(exe: Path, reference: bool):
        def prepare(workdir: Path, p: int) -> Command:
            attrs = shared_attributes(ctx)
            if workdir.exists():
                shutil.rmtree(workdir)
            workdir.mkdir(parents=True)
            os.symlink((ctx.corpus / "documents").resolve(), workdir / "documents")
            os.symlink(attrs.resolve(), workdir / "attributes")
            cfg = {
                "streams": [
                    {
                        "name": "bench",
                        "documents": [documents_pattern(workdir)],
                        "attributes": ["bench"],
                        "output": {"path": str(workdir / "output"), "max_size_in_bytes": 100_000_000},
                        "filter": {"exclude": [RULE]},
                    }
                ],
                "processes": p,
            }
            (workdir / "mix.yaml").write_text(yaml.safe_dump(cfg))
            return Command(
                [str(exe), "-c", str(workdir / "mix.yaml"), "mix"],
                cwd=workdir,
                env=ctx.reference_env if reference else None,
            )

        return prepare

    def kept(workdir: Path) -> dict:
        return {"kept docs": sum(1 for _ in read_jsonl_dir(workdir / "output", "*.gz"))}

    case = Case("mix", "exclude char_length < 300")
    case.impls["ours"] = Impl(make(ctx.ours, False), kept)
    if ctx.reference:
        case.impls["reference"] = Impl(make(ctx.reference, True), kept)
    return [case]
