"""Executors schedule units of work (one input file -> its output files); they contain no tagging logic.

A `Job` knows how to run one `Unit`; the `LocalExecutor` runs units on N processes with a progress bar,
skips units whose outputs already exist (outputs are written atomically, so existing means complete),
retries failed units a bounded number of times and returns a summary whose `failed` count decides the exit
code. Input errors (bad lines, truncated files) are deterministic and are not retried.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import multiprocessing as mp
import os
import queue
import sys
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

import msgspec

from dolma import io, lifecycle
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
    """A picklable description of the work; created once per worker process."""

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


# ----------------------------------------------------------------------------------------------------------
# Worker side
# ----------------------------------------------------------------------------------------------------------

_worker_job: Job | None = None
_worker_queue: mp.Queue | None = None
_worker_setup_error: str | None = None


class SetupError(DolmaError):
    """A job could not be set up in a worker (a model or list failed to load): every unit would fail alike."""


def _worker_init(job: Job, progress_queue: mp.Queue, parent_pid: int) -> None:
    global _worker_job, _worker_queue, _worker_setup_error
    lifecycle.prepare_worker(parent_pid)
    _worker_job = job
    _worker_queue = progress_queue
    try:
        job.setup()
    except Exception as exc:
        # Raised here, the error would break the pool and be retried as a crash, once per file; reported
        # with the first unit instead, it stops the run with one message.
        log.debug("job setup failed: %s", traceback.format_exc())
        _worker_setup_error = describe_error(exc)


class _Throttled:
    """Batches progress increments so a worker sends at most a few messages per second."""

    def __init__(self, sink: Callable[[int, int], None], interval: float = 0.25):
        self.sink = sink
        self.interval = interval
        self.docs = 0
        self.bytes = 0
        self.last = time.monotonic()

    def __call__(self, docs: int, nbytes: int) -> None:
        self.docs += docs
        self.bytes += nbytes
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.flush()
            self.last = now

    def flush(self) -> None:
        if self.docs or self.bytes:
            self.sink(self.docs, self.bytes)
            self.docs = 0
            self.bytes = 0


def _run_in_worker(unit: Unit) -> UnitStats:
    assert _worker_job is not None and _worker_queue is not None
    if _worker_setup_error is not None:
        raise SetupError(_worker_setup_error)
    q = _worker_queue
    throttled = _Throttled(lambda d, b: q.put((d, b)))
    with lifecycle.unit_scope():
        try:
            return _worker_job.run_unit(unit, throttled)
        finally:
            throttled.flush()


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
) -> tuple[UnitStats | None, str | None, int]:
    """Run one unit in this process until it succeeds or `retry` gives up: (stats or None, error, attempts).

    The loop of the inline executor and of every Spark task; the process pool retries by resubmitting the
    unit to a worker (a crashed worker takes its process with it) with the same `retry` rule.
    """
    attempts = 0
    while True:
        attempts += 1
        try:
            return job.run_unit(unit, progress), None, attempts
        except Exception as exc:
            if not retry(unit, exc, attempts, retries):
                return None, describe_error(exc), attempts


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

        Temporaries that stopped runs on this machine left beside the outputs are removed first.
        """
        # a missing bucket, wrong credentials or a dead endpoint is one clear error now, not one per file
        io.check_destinations([path for unit in units for path in unit.outputs])
        io.remove_dead_temporaries(io.dirname(path) for unit in units for path in unit.outputs)
        summary = Summary(units=len(units))
        todo, summary.skipped = self.pending(units)
        if summary.skipped and not self.quiet:
            log.info("resuming: %d of %d units already complete", summary.skipped, len(units))
        return summary, todo


class LocalExecutor(UnitExecutor):
    """Runs units on `processes` worker processes (in this process when processes == 1)."""

    def __init__(
        self,
        processes: int = 1,
        retries: int = 2,
        quiet: bool = False,
        ignore_existing: bool = False,
        description: str = "working",
    ):
        super().__init__(retries, quiet, ignore_existing, description)
        self.processes = max(1, int(processes))

    def run(self, job: Job, units: Sequence[Unit]) -> Summary:
        start = time.monotonic()
        summary, todo = self.start(units)
        display = ProgressDisplay(len(todo), self.description, self.quiet)
        try:
            if self.processes == 1 or len(todo) <= 1:
                self._run_inline(job, todo, summary, display)
            else:
                self._run_pool(job, todo, summary, display)
        finally:
            display.close()
        summary.seconds = time.monotonic() - start
        return summary

    def _record(self, summary: Summary, unit: Unit, stats: UnitStats, display: ProgressDisplay) -> None:
        summary.record(unit, stats)
        display.update(units=1)

    def _run_inline(self, job: Job, todo: list[Unit], summary: Summary, display: ProgressDisplay) -> None:
        if todo:
            try:
                job.setup()
            except Exception as exc:
                raise SetupError(describe_error(exc)) from exc
        for unit in todo:
            stats, error, attempts = run_with_retries(
                job, unit, self.retries, lambda d, b: display.update(docs=d, nbytes=b)
            )
            if stats is None:
                summary.failures.append(UnitFailure(unit=unit, error=error or "", attempts=attempts))
                display.update(units=1)
            else:
                self._record(summary, unit, stats, display)

    def _run_pool(self, job: Job, todo: list[Unit], summary: Summary, display: ProgressDisplay) -> None:
        """Run units on a process pool. A crashed worker breaks the pool: its units go to a fresh pool."""
        ctx = mp.get_context("spawn")
        progress_queue: mp.Queue = ctx.Queue()
        attempts: dict[Unit, int] = {unit: 0 for unit in todo}
        remaining = list(todo)
        while remaining:
            workers = min(self.processes, len(remaining))
            again: list[Unit] = []
            pool = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=ctx,
                initializer=_worker_init,
                initargs=(job, progress_queue, os.getpid()),
            )
            try:
                futures: dict[Future, Unit] = {}
                for unit in remaining:
                    attempts[unit] += 1
                    futures[pool.submit(_run_in_worker, unit)] = unit
                while futures:
                    done, _ = wait(list(futures), timeout=0.2, return_when=FIRST_COMPLETED)
                    self._drain(progress_queue, display)
                    for fut in done:
                        unit = futures.pop(fut)
                        try:
                            stats = fut.result()
                        except SetupError:
                            raise
                        except Exception as exc:
                            if not retry(unit, exc, attempts[unit], self.retries):
                                summary.failures.append(
                                    UnitFailure(unit=unit, error=describe_error(exc), attempts=attempts[unit])
                                )
                                display.update(units=1)
                                continue
                            if isinstance(exc, BrokenProcessPool):
                                again.append(unit)
                                continue
                            try:
                                attempts[unit] += 1
                                futures[pool.submit(_run_in_worker, unit)] = unit
                            except BrokenProcessPool:
                                attempts[unit] -= 1
                                again.append(unit)
                            continue
                        self._record(summary, unit, stats, display)
                self._drain(progress_queue, display)
            except BaseException:
                # Ctrl-C, SIGTERM or a setup error: stop the workers now (they discard their partial outputs)
                # instead of waiting for their units to finish.
                _stop_workers(pool)
                raise
            pool.shutdown(wait=True)
            remaining = again

    @staticmethod
    def _drain(progress_queue: mp.Queue, display: ProgressDisplay) -> None:
        while True:
            try:
                docs, nbytes = progress_queue.get_nowait()
            except (queue.Empty, OSError, EOFError):
                return
            display.update(docs=docs, nbytes=nbytes)


def _stop_workers(pool: ProcessPoolExecutor, grace: float = 30.0) -> None:
    """SIGTERM every worker of `pool`, give them `grace` seconds to clean up, then SIGKILL the rest."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # no public accessor before 3.14
    for proc in processes:
        with contextlib.suppress(Exception):
            proc.terminate()
    deadline = time.monotonic() + grace
    for proc in processes:
        with contextlib.suppress(Exception):
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(5)
    with contextlib.suppress(Exception):
        pool.shutdown(wait=False, cancel_futures=True)


def make_executor(config: Any, description: str, ignore_existing: bool | None = None) -> Executor:
    """The executor a command's RunOptions ask for: LocalExecutor, or SparkExecutor when `executor: spark`.

    Both have the same `run(job, units) -> Summary` contract, so commands never depend on where units run.
    `ignore_existing` overrides the config's (a pass that must always run, like the mixer's counting pass).
    """
    skip = config.ignore_existing if ignore_existing is None else ignore_existing
    if getattr(config, "executor", "local") == "spark":
        from dolma.spark_executor import SparkExecutor

        return SparkExecutor(
            config.spark,
            retries=config.retries,
            quiet=config.quiet,
            ignore_existing=skip,
            description=description,
        )
    return LocalExecutor(
        processes=1 if config.debug else config.processes,
        retries=config.retries,
        quiet=config.quiet,
        ignore_existing=skip,
        description=description,
    )
