"""Helpers shared by the stage plugins."""

from __future__ import annotations

import gzip
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

from benchmarks.harness import Command, Context, link_documents


def documents_pattern(workdir: Path) -> str:
    return str(workdir / "documents" / "*" / "*.jsonl.gz")


def dolma_command(exe: Path, ctx: Context, workdir: Path, args: list[str], reference: bool = False) -> Command:
    """`dolma <args>` in a fresh work directory whose documents/ links to the case's input (see harness.Input)."""
    link_documents(ctx.input_root, workdir)
    env = ctx.reference_env if reference else None
    return Command([str(exe), *args], cwd=workdir, env=env)


def tagged_attributes(ctx: Context, name: str, sets: dict[str, list[str]]) -> Path:
    """attributes/<experiment>/ for the current input, tagged once by our `dolma tag` (untimed, in the scratch
    directory) with the taggers of each experiment in `sets`, and shared by every implementation."""
    base = ctx.scratch / f"{name}-attributes-{ctx.input_root.name}"
    done = base / "attributes" / ".done"
    if not done.exists():
        link_documents(ctx.input_root, base)
        for experiment, taggers in sets.items():
            args = ["tag", "--documents", documents_pattern(base), "--taggers", *taggers, "--experiment", experiment]
            subprocess.run([str(ctx.ours), *args, "--processes", "2", "--quiet"], cwd=base, check=True)
        done.touch()
    return base / "attributes"


def link_inputs(ctx: Context, workdir: Path, attributes: Path) -> None:
    """A fresh work directory whose documents/ links to the case's input and attributes/ to `attributes`."""
    link_documents(ctx.input_root, workdir)
    (workdir / "attributes").symlink_to(attributes.resolve(), target_is_directory=True)


def read_jsonl_dir(path: Path, pattern: str = "**/*.jsonl.gz") -> Iterator[dict]:
    for f in sorted(path.glob(pattern)):
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)
