"""The local executor: units on N worker processes (or in this process), with a progress bar.

A crashed worker breaks its process pool: its units go to a fresh pool, under the one retry rule of
dolma.executors.base. Ctrl-C, SIGTERM or a setup error stop the workers at once (they discard partial outputs).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import queue
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from dolma import lifecycle
from dolma.errors import DolmaError
from dolma.executors.base import (
    Job,
    Progress,
    ProgressDisplay,
    Summary,
    Unit,
    UnitExecutor,
    UnitFailure,
    UnitStats,
    describe_error,
    retry,
    run_with_retries,
)

log = logging.getLogger("dolma")


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


class LocalExecutor(UnitExecutor):
    """Runs units on `processes` worker processes (in this process when processes == 1 or the job is
    sequential)."""

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
        raised: Exception | None = None
        try:
            if self.processes == 1 or len(todo) <= 1 or job.sequential:
                raised = self._run_inline(job, todo, summary, display)
            else:
                self._run_pool(job, todo, summary, display)
        finally:
            display.close()
        summary.seconds = time.monotonic() - start
        if raised is not None:
            raise raised  # the job's own error (`Job.reraise`), now that the summary records it
        return summary

    def _record(self, summary: Summary, unit: Unit, stats: UnitStats, display: ProgressDisplay) -> None:
        summary.record(unit, stats)
        display.update(units=1)

    def _run_inline(self, job: Job, todo: list[Unit], summary: Summary, display: ProgressDisplay) -> Exception | None:
        """Run the units here, in order; returns the error of the job's `reraise` types that stopped it, if any."""
        if todo:
            try:
                job.setup()
            except Exception as exc:
                raise SetupError(describe_error(exc)) from exc
        for position, (unit, (stats, error, attempts)) in enumerate(zip(todo, self._results(job, todo, display))):
            if stats is None:
                message = "" if error is None else describe_error(error)
                summary.failures.append(UnitFailure(unit=unit, error=message, attempts=attempts))
                display.update(units=1)
                if job.sequential:
                    # the units after it would start from a state this one did not finish
                    for later in todo[position + 1 :]:
                        summary.failures.append(
                            UnitFailure(unit=later, error=f"not run: {unit.input} before it failed", attempts=0)
                        )
                    display.update(units=len(todo) - position - 1)
                    return error if isinstance(error, job.reraise) else None
            else:
                self._record(summary, unit, stats, display)
        return None

    def _results(
        self, job: Job, todo: list[Unit], display: ProgressDisplay
    ) -> Iterator[tuple[UnitStats | None, Exception | None, int]]:
        """`run_with_retries` of each unit, in unit order: one after the other, or `job.unit_threads` at a time on
        threads (a unit not yet started when the caller stops, or is stopped, is cancelled)."""
        progress: Progress = lambda d, b: display.update(docs=d, nbytes=b)  # noqa: E731
        threads = min(job.unit_threads, len(todo))
        if threads <= 1:
            for unit in todo:
                yield run_with_retries(job, unit, self.retries, progress)
            return
        pool = ThreadPoolExecutor(threads, thread_name_prefix="dolma-unit")
        try:
            futures = [pool.submit(run_with_retries, job, unit, self.retries, progress) for unit in todo]
            for future in futures:
                yield future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

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
    # The pool's manager thread, taken before `shutdown` forgets it (no public accessor).
    manager = getattr(pool, "_executor_manager_thread", None)
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
    # Let the manager thread finish (it closes its wake-up pipe): at interpreter exit CPython wakes the manager of
    # every pool through that pipe without a lock, and a pipe closed meanwhile printed a "Bad file descriptor"
    # traceback (seen under load).
    if manager is not None:
        manager.join(grace)
