"""Config sections and helpers shared by several commands."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from dolma.config import Base
from dolma.io import S3Config


class WorkDir(Base):
    """Accepted for compatibility with reference configs. Temporary files are written beside their outputs
    (hidden names, renamed on success), so no separate work directory is needed."""

    input: Annotated[str | None, Meta(description="Reference-compatible; not needed here.")] = None
    output: Annotated[str | None, Meta(description="Reference-compatible; not needed here.")] = None


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
    work_dir: Annotated[WorkDir, Meta(description="Reference-compatible work directories.")] = msgspec.field(
        default_factory=WorkDir
    )
    s3: Annotated[
        S3Config,
        Meta(description="S3 access: endpoint_url (for S3-compatible stores), profile, region."),
    ] = msgspec.field(default_factory=S3Config)
