"""Helpers shared by the stage plugins."""

from __future__ import annotations

import gzip
import json
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


def read_jsonl_dir(path: Path, pattern: str = "**/*.jsonl.gz") -> Iterator[dict]:
    for f in sorted(path.glob(pattern)):
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)
