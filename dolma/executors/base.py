"""What every executor shares: units, jobs, unit stats, the summary, the one retry rule and the interface.

A `Job` knows how to run one `Unit`; an `Executor` (dolma.executors.local, dolma.executors.spark) runs units
wherever they run, skips units whose outputs already exist (outputs are written atomically, so existing means
complete), retries failed units a bounded number of times (`run_with_retries`, `retry`) and returns a
`Summary` whose `failed` count decides the exit code. Input errors (bad lines, truncated files) are
deterministic and are not retried.
"""

from __future__ import annotations

import errno
import logging
import sys
import threading
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import msgspec

from dolma import atomic, io
from dolma.errors import DolmaError

log = logging.getLogger("dolma")


class CompletionRecord(msgspec.Struct):
    """A small JSON file a job writes after a unit's outputs, naming the parts of the work they hold.

    Existence of the outputs alone cannot say *what* they hold when one output gathers several pieces of
    work (an attribute set written by several taggers): the record can, so adding a piece is not mistaken
    for "already complete".
    """

    completed: list[str]


def read_record(path: str) -> set[str] | None:
    """The names a completion record lists; None when it is missing or unreadable (then nothing is proven)."""
    try:
        if not io.exists(path):
            return None
        return set(msgspec.json.decode(io.read_bytes(path), type=CompletionRecord).completed)
    except (DolmaError, msgspec.DecodeError, OSError):
        return None


class Unit(msgspec.Struct, frozen=True):
    """One input file and the files it produces.

    With a `record`, the unit is done only when its outputs exist and the record lists every name in `needs`.
    """

    input: str
    outputs: tuple[str, ...]
    record: str | None = None
    needs: tuple[str, ...] = ()

    def done(self) -> bool:
        if not self.outputs or not all(io.exists(path) for path in self.outputs):
            return False
        if self.record is None:
            return True
        completed = read_record(self.record)
        return completed is not None and set(self.needs) <= completed


class UnitStats(msgspec.Struct):
    """Counters a unit reports when it finishes."""

    documents_in: int = 0
    documents_out: int = 0
    bad_lines: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    counters: dict[str, int] = {}
    # counts by section and name, e.g. {"taggers": {"gopher_v1": {"documents": 10, "spans": 30}}}: what the run
    # summary reports per tagger or rule, summed across units like the counters
    groups: dict[str, dict[str, dict[str, int]]] = {}

    def add(self, other: UnitStats) -> None:
        self.documents_in += other.documents_in
        self.documents_out += other.documents_out
        self.bad_lines += other.bad_lines
        self.bytes_in += other.bytes_in
        self.bytes_out += other.bytes_out
        for key, value in other.counters.items():
            self.counters[key] = self.counters.get(key, 0) + value
        for section, names in other.groups.items():
            mine = self.groups.setdefault(section, {})
            for name, counts in names.items():
                into = mine.setdefault(name, {})
                for key, value in counts.items():
                    into[key] = into.get(key, 0) + value


Progress = Callable[[int, int], None]
"""progress(documents, bytes): increments reported by a running unit."""


class Job(ABC):
    """A picklable description of the work; created once per worker process.

    `sequential`: the units share one state that each of them reads and changes (dedupe's Bloom filter), so
    they must run in the order given, in one process, each after the one before succeeded. The local executor
    then runs them in this process whatever `processes` says (the job may use threads inside a unit) and stops
    at the first unit that fails for good; the Spark executor refuses such a job (its tasks run anywhere, in
    any order, on copies of the job).

    `unit_threads` (not for sequential jobs): how many of its units may run at once on threads when the local
    executor runs them in its own process; each unit's result is still recorded in unit order.

    `reraise` (sequential jobs only): a unit's exception of one of these types is the job's own error, to be
    handled by the command that ran it. It is not retried; the executor records the failure in its summary (with
    the units it leaves unrun), closes its progress display and then raises that exception from `run` (dedupe
    keeps a batch's error, with its fields and exit code, this way).
    """

    sequential: bool = False
    reraise: tuple[type[Exception], ...] = ()
    # Units the local executor may run at once on threads of its own process (when it runs them there: one
    # process), for jobs whose units spend their time in calls that release the GIL (Rust, compression, I/O).
    unit_threads: int = 1

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.reraise and not cls.sequential:
            # a pool or Spark runs units elsewhere: the error would come back a copy, after other units ran
            raise TypeError(f"{cls.__name__}: only a sequential job may set `reraise`")
        if cls.sequential and cls.unit_threads != 1:
            raise TypeError(f"{cls.__name__}: a sequential job runs one unit at a time")

    @abstractmethod
    def run_unit(self, unit: Unit, progress: Progress) -> UnitStats: ...

    def setup(self) -> None:  # noqa: B027 - an optional hook, empty by default
        """Called once in each worker process before its first unit (load models here)."""


class UnitFailure(msgspec.Struct):
    unit: Unit
    error: str
    attempts: int


@dataclass
class Summary:
    units: int = 0
    skipped: int = 0
    succeeded: int = 0
    failures: list[UnitFailure] = field(default_factory=list)
    stats: UnitStats = field(default_factory=UnitStats)
    seconds: float = 0.0
    # what the user should see but does not stop the run (e.g. a mix rule naming an attribute no file has)
    warnings: list[str] = field(default_factory=list)
    # the stats of each unit processed by this run, by unit input (the run summary's per-source numbers)
    by_unit: dict[str, UnitStats] = field(default_factory=dict)

    def record(self, unit: Unit, stats: UnitStats) -> None:
        """Count a unit that succeeded."""
        self.succeeded += 1
        self.stats.add(stats)
        self.by_unit[unit.input] = stats

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def ok(self) -> bool:
        return not self.failures


class ProgressDisplay:
    """A rich progress bar (files, documents, bytes, rate), or nothing when quiet / not a terminal."""

    def __init__(self, total_units: int, description: str, quiet: bool):
        self.enabled = not quiet and sys.stderr.isatty()
        self.docs = 0
        self.bytes = 0
        self.units = 0
        self._progress = None
        self._task = None
        self._start = time.monotonic()
        self._lock = threading.Lock()
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("files"),
                TextColumn("{task.fields[docs]} docs"),
                TextColumn("{task.fields[mb]} MB"),
                TextColumn("{task.fields[rate]} docs/s"),
                TimeElapsedColumn(),
                transient=False,
            )
            self._task = self._progress.add_task(description, total=total_units, docs=0, mb="0.0", rate="0")
            self._progress.start()

    def update(self, docs: int = 0, nbytes: int = 0, units: int = 0) -> None:
        with self._lock:  # units running on threads report at once
            self.docs += docs
            self.bytes += nbytes
            self.units += units
            if self._progress is not None:
                elapsed = max(time.monotonic() - self._start, 1e-6)
                self._progress.update(
                    self._task,
                    advance=units,
                    docs=f"{self.docs:,}",
                    mb=f"{self.bytes / 1e6:,.1f}",
                    rate=f"{self.docs / elapsed:,.0f}",
                )

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


# Errors of the machine, not of the data or the network: the same file fails the same way if retried.
_NOT_RETRYABLE_ERRNO = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EISDIR}
_ERRNO_TEXT = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EISDIR: "is a directory",
}


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, DolmaError):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno in _ERRNO_TEXT:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{os_error_text(exc)}"
    return f"{type(exc).__name__}: {exc}"


def os_error_text(exc: OSError) -> str:
    """What went wrong, without the file name (for messages that name the file themselves)."""
    return _ERRNO_TEXT.get(exc.errno or 0) or exc.strerror or str(exc)


def is_retryable(exc: BaseException) -> bool:
    """Input errors are deterministic and a full or read-only disk stays so: retrying only repeats the failure.
    A DolmaError may say otherwise (an S3 error after throttling or a lost upload: running the file again may
    succeed)."""
    if isinstance(exc, OSError) and exc.errno in _NOT_RETRYABLE_ERRNO:
        return False
    return bool(getattr(exc, "retryable", not isinstance(exc, DolmaError)))


# ----------------------------------------------------------------------------------------------------------
# Driver side
# ----------------------------------------------------------------------------------------------------------


def retry(unit: Unit, exc: Exception, attempts: int, retries: int) -> bool:
    """The one retry rule of every executor: retry an unexpected error while attempts remain (and say so)."""
    log.debug("unit %s failed: %s", unit.input, "".join(traceback.format_exception(exc)))
    if is_retryable(exc) and attempts <= retries:
        log.warning("retrying %s after error: %s", unit.input, describe_error(exc))
        return True
    return False


def run_with_retries(
    job: Job, unit: Unit, retries: int, progress: Progress
) -> tuple[UnitStats | None, Exception | None, int]:
    """Run one unit in this process until it succeeds or `retry` gives up: (stats or None, error, attempts).

    The loop of the inline executor and of every Spark task; the process pool retries by resubmitting the
    unit to a worker (a crashed worker takes its process with it) with the same `retry` rule. An error of the
    job's `reraise` types ends the unit at once.
    """
    attempts = 0
    while True:
        attempts += 1
        try:
            return job.run_unit(unit, progress), None, attempts
        except Exception as exc:
            if isinstance(exc, job.reraise) or not retry(unit, exc, attempts, retries):
                return None, exc, attempts


class Executor(ABC):
    """The one executor interface: run a job's units wherever they run and say how it went.

    Executors only schedule units, track completion, retry and report; they never hold a command's logic.
    """

    @abstractmethod
    def run(self, job: Job, units: Sequence[Unit]) -> Summary: ...


class UnitExecutor(Executor):
    """What every executor shares: retry/quiet/resume settings and the choice of units still to run."""

    def __init__(
        self, retries: int = 2, quiet: bool = False, ignore_existing: bool = False, description: str = "working"
    ):
        self.retries = max(0, int(retries))
        self.quiet = quiet
        self.ignore_existing = ignore_existing
        self.description = description

    def pending(self, units: Sequence[Unit]) -> tuple[list[Unit], int]:
        """(units to run, number skipped because their outputs exist); nothing is skipped with ignore_existing."""
        if self.ignore_existing:
            return list(units), 0
        todo = [u for u in units if not u.done()]
        return todo, len(units) - len(todo)

    def start(self, units: Sequence[Unit]) -> tuple[Summary, list[Unit]]:
        """A fresh summary and the units to run, logging how many a resumed run skips.

        Temporaries that stopped runs on this machine left beside the outputs and completion records are removed
        first.
        """
        # a missing bucket, wrong credentials or a dead endpoint is one clear error now, not one per file
        io.check_destinations([path for unit in units for path in unit.outputs])
        written = [path for unit in units for path in (*unit.outputs, *((unit.record,) if unit.record else ()))]
        atomic.remove_dead_temporaries(dict.fromkeys(io.dirname(path) for path in written))
        summary = Summary(units=len(units))
        todo, summary.skipped = self.pending(units)
        if summary.skipped and not self.quiet:
            log.info("resuming: %d of %d units already complete", summary.skipped, len(units))
        return summary, todo
