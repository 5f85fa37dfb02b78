"""Config sections and helpers shared by several commands."""

from __future__ import annotations

import contextlib
import cProfile
import pstats
import sys
from collections.abc import Iterator
from io import StringIO
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from dolma import atomic
from dolma.config import Base
from dolma.io import S3Config


class WorkDir(Base):
    """Accepted for compatibility with reference configs. Temporary files are written beside their outputs
    (hidden names, renamed on success), so no separate work directory is needed."""

    input: Annotated[str | None, Meta(description="Reference-compatible; not needed here.")] = None
    output: Annotated[str | None, Meta(description="Reference-compatible; not needed here.")] = None


ProfileSortKey = Literal[
    "calls",
    "cumulative",
    "cumtime",
    "file",
    "filename",
    "module",
    "ncalls",
    "pcalls",
    "line",
    "name",
    "nfl",
    "stdname",
    "time",
    "tottime",
]


class ProfileConfig(Base):
    """The reference's `profile` section of `dolma tag`: profile the run with cProfile (in one process)."""

    enable: Annotated[bool, Meta(description="Profile the run (forces processes: 1, as the reference does).")] = False
    output: Annotated[
        str | None,
        Meta(description="File (local or s3://) for the pstats text; default: printed to stdout after the run."),
    ] = None
    steps: Annotated[
        int | None, Meta(description="Reference-compatible; accepted and ignored: the whole run is profiled.")
    ] = None
    sort_key: Annotated[ProfileSortKey, Meta(description="pstats sort key of the listing.")] = "tottime"
    lines: Annotated[int, Meta(description="Rows of the listing.", ge=1)] = 100


@contextlib.contextmanager
def profiled(config: ProfileConfig) -> Iterator[None]:
    """Run the body under cProfile when `config.enable`; then write the listing (also after a failure)."""
    if not config.enable:
        yield
        return
    profile = cProfile.Profile()
    profile.enable()
    try:
        yield
    finally:
        profile.disable()
        text = StringIO()
        pstats.Stats(profile, stream=text).sort_stats(config.sort_key).print_stats(config.lines)
        if config.output is None:
            sys.stdout.write(text.getvalue())
        else:
            atomic.write_bytes(config.output, text.getvalue().encode("utf-8"))


class SparkOptions(Base):
    """Where and how to run on Spark (used when `executor: spark`)."""

    master: Annotated[
        str | None,
        Meta(
            description="Spark master URL: local[N], spark://host:7077, yarn, k8s://https://host:443. Ignored "
            "under spark-submit, which sets it. Default: local[*]."
        ),
    ] = None
    app_name: Annotated[str, Meta(description="Application name shown in the Spark UI.")] = "dolma"
    conf: Annotated[
        dict[str, str | int | float | bool],
        Meta(
            description="Free Spark settings, e.g. {spark.executor.memory: 4g, spark.task.maxFailures: 4}; on "
            "the command line as one inline mapping: --spark.conf '{spark.executor.cores: 2}'."
        ),
    ] = {}


class RunOptions(Base):
    """Execution options every file-level command shares."""

    processes: Annotated[int, Meta(description="Worker processes (1 runs in this process).")] = 1
    ignore_existing: Annotated[
        bool, Meta(description="Redo files whose outputs already exist (by default a rerun resumes and skips them).")
    ] = False
    skip_bad_lines: Annotated[
        bool,
        Meta(
            description="Skip and count input lines that are not valid documents instead of failing the file "
            "(each is reported with file and line)."
        ),
    ] = False
    retries: Annotated[int, Meta(description="Times a file that failed with an unexpected error is retried.")] = 2
    debug: Annotated[bool, Meta(description="Run in one process with verbose logging.")] = False
    dryrun: Annotated[bool, Meta(description="Print the planned work and exit without running it.")] = False
    quiet: Annotated[bool, Meta(description="No progress bar or summary table (errors are still printed).")] = False
    summary_path: Annotated[
        str | None,
        Meta(
            description="Where to write the JSON run summary (local path or s3:// URL). Default: "
            "<deepest directory holding every output>/.dolma-run-summary.<command>.json (docs/run-summary.md)."
        ),
    ] = None
    work_dir: Annotated[WorkDir, Meta(description="Reference-compatible work directories.")] = msgspec.field(
        default_factory=WorkDir
    )
    s3: Annotated[
        S3Config,
        Meta(description="S3 access: endpoint_url (for S3-compatible stores), profile, region."),
    ] = msgspec.field(default_factory=S3Config)
    executor: Annotated[
        Literal["local", "spark"],
        Meta(description="Run units on local processes ('local') or as Spark tasks ('spark', see 'spark.*')."),
    ] = "local"
    spark: Annotated[SparkOptions, Meta(description="Spark settings, used when executor is 'spark'.")] = msgspec.field(
        default_factory=SparkOptions
    )
