"""One executor interface (`make_executor` returns an `Executor`: run(job, units) -> Summary) and one retry loop."""

from __future__ import annotations

import os
import threading
import time
import typing
from pathlib import Path

import pytest

from dolma import config as dconfig
from dolma.commands import dedupe
from dolma.commands.tag import TagConfig
from dolma.dedupe import local
from dolma.dedupe.job import BloomJob
from dolma.errors import BadInputError, ConfigError
from dolma.executors import make_executor
from dolma.executors.base import Executor, Job, Progress, Summary, Unit, UnitStats, run_with_retries
from dolma.executors.local import LocalExecutor
from tests.conftest import write_jsonl_gz

REPO = Path(__file__).resolve().parents[2]


def test_make_executor_is_typed_with_the_interface():
    hints = typing.get_type_hints(make_executor)
    assert hints["return"] is Executor
    assert typing.get_type_hints(Executor.run)["return"] is Summary
    with pytest.raises(TypeError):
        Executor()  # abstract: an executor must implement run


@pytest.mark.parametrize("executor", ["local", "spark"])
def test_both_executors_implement_it(executor):
    config = dconfig.build(TagConfig, overrides=["--documents", "x", "--taggers", "a", "--executor", executor])
    made = make_executor(config, "test")
    assert isinstance(made, Executor)
    assert isinstance(made, LocalExecutor) == (executor == "local")


class FlakyJob(Job):
    """Fails its first `failures` attempts with `error`, then succeeds."""

    def __init__(self, failures: int, error: Exception):
        self.failures = failures
        self.error = error
        self.calls = 0

    def run_unit(self, unit: Unit, progress: Progress) -> UnitStats:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return UnitStats(documents_in=1)


@pytest.mark.parametrize(
    ("failures", "error", "retries", "want"),
    [
        (0, RuntimeError("x"), 2, (True, 1)),
        (2, RuntimeError("x"), 2, (True, 3)),
        (3, RuntimeError("flaky"), 2, (False, 3)),
        (1, BadInputError("f", 1, "bad"), 5, (False, 1)),  # an input error is not retried
    ],
)
def test_the_one_retry_loop(failures, error, retries, want):
    job = FlakyJob(failures, error)
    stats, message, attempts = run_with_retries(job, Unit(input="in", outputs=()), retries, lambda d, b: None)
    assert (stats is not None, attempts) == want
    assert (message is None) == (stats is not None)


def test_every_executor_retries_through_one_rule():
    # the inline loop and Spark tasks use run_with_retries, the process pool its `retry` rule: nothing else
    # decides whether a unit runs again
    for path in (REPO / "dolma").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        calls = text.count("is_retryable(") - text.count("def is_retryable(")
        assert calls == (1 if path == REPO / "dolma" / "executors" / "base.py" else 0), path
    spark = (REPO / "dolma" / "executors" / "spark.py").read_text()
    assert "run_with_retries(" in spark and "retrying" not in spark


class OrderJob(Job):
    """Records which process ran which unit, in order; fails on the unit named `fail`."""

    sequential = True

    def __init__(self, fail: str | None = None):
        self.ran: list[tuple[str, int]] = []
        self.fail = fail

    def run_unit(self, unit: Unit, progress: Progress) -> UnitStats:
        self.ran.append((unit.input, os.getpid()))
        if unit.input == self.fail:
            raise BadInputError(unit.input, 1, "bad")
        return UnitStats(documents_in=1)


def _units(tmp_path: Path, count: int) -> list[Unit]:
    return [Unit(input=f"u{i}", outputs=(str(tmp_path / f"out{i}"),)) for i in range(count)]


def test_a_sequential_job_runs_in_order_in_one_process(tmp_path):
    job = OrderJob()
    summary = LocalExecutor(processes=2, quiet=True, ignore_existing=True).run(job, _units(tmp_path, 5))
    assert job.ran == [(f"u{i}", os.getpid()) for i in range(5)]
    assert (summary.succeeded, summary.failed) == (5, 0)


def test_a_sequential_job_stops_at_its_first_failed_unit(tmp_path):
    job = OrderJob(fail="u1")
    summary = LocalExecutor(processes=2, quiet=True, ignore_existing=True).run(job, _units(tmp_path, 4))
    assert [name for name, _ in job.ran] == ["u0", "u1"]
    assert summary.succeeded == 1
    assert [(f.unit.input, f.attempts) for f in summary.failures] == [("u1", 1), ("u2", 0), ("u3", 0)]
    assert summary.failures[1].error == "not run: u1 before it failed"


def test_spark_refuses_a_sequential_job(tmp_path):
    config = dconfig.build(TagConfig, overrides=["--documents", "x", "--taggers", "a", "--executor", "spark"])
    with pytest.raises(ConfigError, match="cannot run on Spark"):
        make_executor(config, "test").run(OrderJob(), _units(tmp_path, 2))


class OwnError(RuntimeError):
    """An error the retry rule would retry (not a DolmaError), declared the job's own by `reraise`."""


class ReraiseJob(Job):
    """A sequential job whose OwnError comes out of `Executor.run`; raises `errors[unit.input]` on that unit."""

    sequential = True
    reraise = (OwnError,)

    def __init__(self, errors: dict[str, Exception]):
        self.errors = errors
        self.ran: list[str] = []

    def run_unit(self, unit: Unit, progress: Progress) -> UnitStats:
        self.ran.append(unit.input)
        if unit.input in self.errors:
            raise self.errors[unit.input]
        return UnitStats(documents_in=1)


def test_a_reraise_error_is_not_retried_and_comes_out_of_run_as_raised(tmp_path):
    own = OwnError("the job's own error")
    job = ReraiseJob({"u1": own})
    with pytest.raises(OwnError) as info:
        LocalExecutor(processes=2, retries=2, quiet=True, ignore_existing=True).run(job, _units(tmp_path, 4))
    assert info.value is own
    assert job.ran == ["u0", "u1"]  # one attempt, and the units after it are not run


def test_other_errors_of_a_reraise_job_are_retried_and_recorded_in_the_summary(tmp_path):
    job = ReraiseJob({"u1": RuntimeError("flaky")})
    summary = LocalExecutor(processes=2, retries=2, quiet=True, ignore_existing=True).run(job, _units(tmp_path, 4))
    assert job.ran == ["u0", "u1", "u1", "u1"]
    assert [(f.unit.input, f.attempts) for f in summary.failures] == [("u1", 3), ("u2", 0), ("u3", 0)]
    assert summary.failures[0].error == "RuntimeError: flaky"


def test_only_a_sequential_job_may_reraise():
    with pytest.raises(TypeError, match="only a sequential job may set `reraise`"):

        class PoolJob(Job):  # its units would fail in other processes, the error coming back a copy
            reraise = (OwnError,)

            def run_unit(self, unit: Unit, progress: Progress) -> UnitStats:
                return UnitStats()


class ThreadedJob(Job):
    """Units that run two at a time on threads: the first two meet at a barrier (one thread alone would wait
    there until its timeout, a guard against a hang, and fail), the unit named `fail` fails, each reports its
    index as documents."""

    def __init__(self, fail: str | None = None):
        self.unit_threads = 2
        self.fail = fail
        self.meet = threading.Barrier(2, timeout=120)
        self.threads: set[int] = set()

    def run_unit(self, unit: Unit, progress: Progress) -> UnitStats:
        self.threads.add(threading.get_ident())
        index = int(unit.input[1:])
        if index < 2:
            self.meet.wait()
        if unit.input == self.fail:
            raise BadInputError(unit.input, 1, "bad")
        progress(index, 0)
        return UnitStats(documents_in=index, counters={unit.input: 1})


def test_units_of_a_threaded_job_run_at_once_and_are_recorded_in_order(tmp_path):
    job = ThreadedJob(fail="u3")
    summary = LocalExecutor(processes=1, quiet=True, ignore_existing=True).run(job, _units(tmp_path, 6))
    assert len(job.threads) == 2 and threading.get_ident() not in job.threads
    assert list(summary.by_unit) == ["u0", "u1", "u2", "u4", "u5"]
    assert summary.stats.documents_in == 0 + 1 + 2 + 4 + 5
    assert [(f.unit.input, f.attempts) for f in summary.failures] == [("u3", 1)]


def test_a_sequential_job_cannot_run_units_on_threads():
    with pytest.raises(TypeError, match="runs one unit at a time"):

        class Both(Job):
            sequential = True
            unit_threads = 2

            def run_unit(self, unit: Unit, progress: Progress) -> UnitStats:
                return UnitStats()


def test_a_bloom_dedupe_on_two_processes_runs_its_batches_here_in_order_once_each(tmp_path, monkeypatch):
    """The Bloom filter pass is a sequential job run by the executor `make_executor` gives (processes: 2):
    every batch runs in this process, in input order, each input in exactly one batch, each batch once."""
    for i in range(20):  # more files than one batch holds (8 with 2 threads)
        rows = [{"id": f"{i}-{j}", "text": f"paragraph {j % 3}\nfile {i}", "source": "s"} for j in range(3)]
        write_jsonl_gz(tmp_path / "documents" / f"part-{i:02d}.jsonl.gz", rows)
    executors: list[Executor] = []
    ran: list[tuple[str, tuple[str, ...], int]] = []

    def recording_make_executor(*args, **kwargs):
        executors.append(make_executor(*args, **kwargs))
        return executors[-1]

    def recording_run_unit(self, unit, progress):
        ran.append((unit.input, unit.outputs, os.getpid()))
        return real_run_unit(self, unit, progress)

    real_run_unit = BloomJob.run_unit
    monkeypatch.setattr(local, "make_executor", recording_make_executor)
    monkeypatch.setattr(BloomJob, "run_unit", recording_run_unit)
    config = dconfig.build(
        dedupe.CONFIG,
        overrides=[
            "--documents", str(tmp_path / "documents" / "*.jsonl.gz"),
            "--dedupe.name", "dd",
            "--dedupe.paragraphs.attribute_name", "dup",
            "--bloom_filter.file", str(tmp_path / "filter.bin"),
            "--bloom_filter.estimated_doc_count", "1000",
            "--bloom_filter.desired_false_positive_rate", "1e-6",
            "--processes", "2",
            "--quiet",
        ],
    )  # fmt: skip
    assert dedupe.run(config) == 0
    assert len(executors) == 1 and isinstance(executors[0], LocalExecutor) and executors[0].processes == 2
    attributes = [str(tmp_path / "attributes" / "dd" / f"part-{i:02d}.jsonl.gz") for i in range(20)]
    assert len(ran) == 3 and {pid for _, _, pid in ran} == {os.getpid()}
    assert [output for _, outputs, _ in ran for output in outputs] == attributes
    assert [name for name, _, _ in ran] == [str(tmp_path / "documents" / f"part-{i:02d}.jsonl.gz") for i in (0, 8, 16)]
    assert all(Path(path).exists() for path in attributes)


def _sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def test_stopped_pool_leaves_no_manager_thread():
    """After a stop (Ctrl-C, SIGTERM) the pool's manager thread has finished: at interpreter exit CPython wakes
    every live manager through a pipe that manager may be closing, which printed a "Bad file descriptor" traceback
    under load."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from dolma.executors.local import _stop_workers

    pool = ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn"))
    future = pool.submit(_sleep, 60)
    manager = pool._executor_manager_thread
    assert manager is not None and manager.is_alive()
    _stop_workers(pool, grace=30)
    assert not manager.is_alive()
    assert future.done()
