"""Run the same units the local executor runs as Spark tasks: one unit (input file -> its outputs) per task.

Why this shape: a unit is already idempotent (its outputs are written atomically under their final names, and
the content is a deterministic function of the input), so Spark's task retries and speculative copies can
run a unit twice without ever leaving duplicates or partial files: the last rename / completed upload wins
and both attempts wrote the same bytes. The job object (config only; models are dropped when pickled) is
shipped with the task and set up once per Python worker process, keyed by a run token, so taggers and
models load once per executor process and are reused by every later task of the run.

Two kinds of retries, deliberately separate:
- an exception raised by a unit (network hiccup, S3 5xx) is retried inside the task, `retries` times, like
  the local executor; deterministic input errors (DolmaError) are not retried and are reported as failures;
- a task whose process dies (killed worker, OOM, lost executor) is retried by Spark itself, up to
  `spark.task.maxFailures` attempts (in local mode the master is rewritten to `local[N,F]` so that the
  same setting applies there too).
A unit that still fails is reported in the summary and makes the command exit non-zero; if Spark gives up
on a task the job aborts, the units that completed keep their outputs (a rerun resumes) and every unit
without a result is reported as failed.

All I/O, S3 included, happens in Python on the executors (dolma.io), so no Hadoop S3 jars are needed.
"""

from __future__ import annotations

import contextlib
import glob as _glob
import logging
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import msgspec

from dolma import atomic, io, lifecycle
from dolma.errors import ConfigError, DolmaError
from dolma.executors.base import (
    Job,
    ProgressDisplay,
    Summary,
    Unit,
    UnitExecutor,
    UnitFailure,
    UnitStats,
    describe_error,
    run_with_retries,
)

log = logging.getLogger("dolma")

DEFAULT_MAX_FAILURES = 4
_LOCAL_MASTER = re.compile(r"^local\[(\*|\d+)\]$")


# ----------------------------------------------------------------------------------------------------------
# Spark context
# ----------------------------------------------------------------------------------------------------------


def under_spark_submit() -> bool:
    """True when this driver was launched by spark-submit (which owns the JVM and the master URL)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def effective_master(master: str | None, conf: dict[str, str]) -> str:
    """The master URL to use; `local[N]` gets a failure count so Spark retries tasks in local mode too."""
    master = master or "local[*]"
    found = _LOCAL_MASTER.match(master)
    if found:
        failures = int(conf.get("spark.task.maxFailures", DEFAULT_MAX_FAILURES))
        return f"local[{found.group(1)},{failures}]"
    if master == "local":
        return effective_master("local[1]", conf)
    return master


def spark_conf_entries(options: Any) -> dict[str, str]:
    """`spark.conf` values as the strings Spark expects (YAML gives ints and booleans)."""
    out: dict[str, str] = {}
    for key, value in (options.conf or {}).items():
        out[str(key)] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


def get_context(options: Any) -> tuple[Any, bool]:
    """The active SparkContext, or a new one from `options` (a SparkOptions). Returns (context, created)."""
    try:
        from pyspark import SparkConf, SparkContext
    except ImportError:
        raise DolmaError(
            "executor spark needs pyspark, which is not installed in this environment: "
            "pip install 'dolma-toolkit[spark]' (Spark also needs a Java runtime, 17 or newer)"
        ) from None
    check_importable_on_workers()

    logging.getLogger("py4j").setLevel(logging.WARNING)
    active = SparkContext._active_spark_context
    if active is not None:
        return active, False
    entries = spark_conf_entries(options)
    conf = SparkConf()
    if under_spark_submit():
        if options.master and conf.get("spark.master", None) not in (None, options.master):
            log.warning("spark.master %s ignored: spark-submit set %s", options.master, conf.get("spark.master"))
        if not conf.contains("spark.app.name"):
            conf.setAppName(options.app_name)
    else:
        conf.setMaster(effective_master(options.master, entries))
        conf.setAppName(options.app_name)
    if not os.environ.get("PYSPARK_PYTHON"):
        # pyspark takes the executors' interpreter from $PYSPARK_PYTHON when it creates the context: by default
        # the driver's own (same venv, same image); spark.pyspark.python names another (packed venvs: docs/spark.md).
        os.environ["PYSPARK_PYTHON"] = entries.get("spark.pyspark.python") or sys.executable
    conf.setIfMissing("spark.ui.showConsoleProgress", "false")
    for key, value in entries.items():
        conf.set(key, value)
    sc = SparkContext.getOrCreate(conf)
    sc.setLogLevel(os.environ.get("DOLMA_SPARK_LOG_LEVEL", "WARN"))
    return sc, True


def check_importable_on_workers(cwd: str | None = None) -> None:
    """Refuse to start when Spark's Python workers would import another `dolma` than this driver's.

    Python workers start in the driver's directory with it first on their import path, so a `dolma/` source
    tree there (a checkout) shadows the installed package; without its compiled extension every task then
    fails with an import error deep in the executors. Detected here, it is one message that says what to do.
    """
    import dolma

    here = os.path.abspath(cwd or os.getcwd())
    local = os.path.join(here, "dolma")
    if not os.path.isfile(os.path.join(local, "__init__.py")):
        return
    installed = os.path.dirname(os.path.abspath(dolma.__file__))
    if os.path.realpath(local) == os.path.realpath(installed):
        return
    if _glob.glob(os.path.join(_glob.escape(local), "_rust*.so")) or _glob.glob(
        os.path.join(_glob.escape(local), "_rust*.pyd")
    ):
        return
    raise DolmaError(
        f"the current directory {here} holds a dolma/ source tree without its compiled extension (dolma._rust); "
        f"Spark's Python workers would import it instead of the installed package ({installed}) and fail. Run "
        "from another directory, or build the tree in place (`make build`, or `maturin develop` in it)"
    )


# ----------------------------------------------------------------------------------------------------------
# Executor side
# ----------------------------------------------------------------------------------------------------------

_jobs: dict[str, Job] = {}
_jobs_lock = threading.Lock()


def executor_job(token: str, job: Job) -> Job:
    """The job for this run in this Python worker process, set up on first use and reused by later tasks."""
    with _jobs_lock:
        cached = _jobs.get(token)
        if cached is None:
            job.setup()
            _jobs.clear()  # one run at a time per worker process: free the models of earlier runs
            _jobs[token] = job
            cached = job
        return cached


class UnitResult(msgspec.Struct, array_like=True):
    """What a task sends back for one unit."""

    index: int
    stats: UnitStats | None = None
    error: str | None = None
    attempts: int = 1


def run_unit_with_retries(job: Job, unit: Unit, retries: int, index: int) -> UnitResult:
    # Attempts killed on this machine (a lost or cancelled task) may have left temporaries beside the outputs.
    atomic.remove_dead_temporaries(io.dirname(path) for path in unit.outputs)
    stats, error, attempts = run_with_retries(job, unit, retries, lambda _d, _b: None)
    message = None if error is None else describe_error(error)
    return UnitResult(index=index, stats=stats, error=message, attempts=attempts)


class _MergeDict:
    """{unit index: encoded UnitResult}, merged as tasks finish, so results survive a Spark job that aborts.

    A duck-typed AccumulatorParam, so that this module imports without pyspark.
    """

    def zero(self, value: dict[int, bytes]) -> dict[int, bytes]:
        return {}

    def addInPlace(self, a: dict[int, bytes], b: dict[int, bytes]) -> dict[int, bytes]:
        a.update(b)
        return a


class TaskRunner:
    """The function every Spark task runs (pickled with its job; no pyspark import needed here)."""

    def __init__(self, token: str, job: Job, retries: int, accumulators: tuple[Any, Any, Any, Any]):
        self.token = token
        self.job = job
        self.retries = retries
        self.accumulators = accumulators

    def __call__(self, items: Iterable[tuple[int, bytes]]) -> Iterator[bytes]:
        units_acc, docs_acc, bytes_acc, results_acc = self.accumulators
        for index, encoded in items:
            unit = msgspec.msgpack.decode(encoded, type=Unit)
            job = executor_job(self.token, self.job)
            result = run_unit_with_retries(job, unit, self.retries, index)
            packed = msgspec.msgpack.encode(result)
            units_acc.add(1)
            if result.stats is not None:
                docs_acc.add(result.stats.documents_in)
                bytes_acc.add(result.stats.bytes_in)
            results_acc.add({index: packed})
            yield packed


# ----------------------------------------------------------------------------------------------------------
# Driver side
# ----------------------------------------------------------------------------------------------------------


def remove_stale_temporaries(paths: Iterable[str]) -> int:
    """Delete temporaries that killed attempts on this machine left beside local outputs (`atomic.temp_name`).

    Only files of processes that are gone are removed: a speculative attempt still writing keeps its file, and
    temporaries written on other machines are theirs to clean. S3 uploads leave nothing behind.
    """
    return len(atomic.remove_dead_temporaries(io.dirname(path) for path in paths))


def remove_temporaries_after_stop(paths: Sequence[str], grace: float = 30.0) -> None:
    """After a stopped run (Ctrl-C, SIGTERM): wait for this driver's own Spark workers (local mode) that still
    hold temporaries beside `paths` to end, then remove the temporaries of every process that is gone.

    Spark kills a cancelled task's Python worker outright, so the worker cannot discard its partial file itself.
    """
    dirs = list(dict.fromkeys(io.dirname(path) for path in paths if not io.is_s3(path)))
    me = atomic.host_tag()
    deadline = time.monotonic() + grace
    while True:
        atomic.remove_dead_temporaries(dirs)
        ours = lifecycle.descendants()
        waiting = False
        for directory in dirs:
            try:
                names = os.listdir(directory)
            except OSError:
                continue
            for name in names:
                owner = atomic.temp_owner(name)
                waiting |= owner is not None and owner[0] == me and owner[1] in ours
        if not waiting or time.monotonic() > deadline:
            return
        time.sleep(0.1)


@contextlib.contextmanager
def spark_context(options: Any, outputs: Sequence[str]) -> Iterator[Any]:
    """The SparkContext for a run writing `outputs`: one this run created is stopped at the end; after a stopped
    run (Ctrl-C, SIGTERM) the temporaries its workers left beside `outputs` are removed."""
    sc, created = get_context(options)
    try:
        yield sc
    except KeyboardInterrupt:
        if created:
            sc.stop()
            created = False
        remove_temporaries_after_stop(outputs)
        raise
    finally:
        if created:
            sc.stop()


_PYTHON_ERROR = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit)): (.+)$")


def _short_error(exc: BaseException) -> str:
    """One line for a failed Spark job: the Python exception raised in the task when there is one."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        found = _PYTHON_ERROR.match(line)
        if found and not found.group(1).startswith(("org.", "java.", "py4j.", "scala.")):
            return f"{found.group(1).rsplit('.', 1)[-1]}: {found.group(2)}"[:500]
    for line in lines:
        if "Job aborted" in line or "exited unexpectedly" in line:
            return line[:500]
    return (lines[0] if lines else type(exc).__name__)[:500]


def collect_with_progress(
    sc: Any, rdd: Any, progress: Sequence[Any], total: int, description: str, quiet: bool
) -> tuple[list[Any], BaseException | None]:
    """`rdd.collect()` in a thread while the driver shows units, documents and bytes from three accumulators.

    Returns the collected results, or ([], the job's error) when it failed; Ctrl-C cancels the Spark jobs.
    """
    outcome: dict[str, Any] = {}

    def collect() -> None:
        try:
            outcome["results"] = rdd.collect()
        except BaseException as exc:
            outcome["error"] = exc

    display = ProgressDisplay(total, description, quiet)
    thread = threading.Thread(target=collect, name="dolma-spark-job", daemon=True)
    thread.start()
    seen = [0, 0, 0]
    try:
        while thread.is_alive():
            thread.join(0.25)
            now = [acc.value for acc in progress]
            display.update(units=now[0] - seen[0], docs=now[1] - seen[1], nbytes=now[2] - seen[2])
            seen = now
    except KeyboardInterrupt:
        sc.cancelAllJobs()
        raise
    finally:
        display.close()
    if "error" in outcome:
        return [], outcome["error"]
    return outcome["results"], None


class SparkExecutor(UnitExecutor):
    """Runs units as Spark tasks with the same contract as LocalExecutor.run: (job, units) -> Summary."""

    def __init__(
        self,
        options: Any,
        retries: int = 2,
        quiet: bool = False,
        ignore_existing: bool = False,
        description: str = "working",
    ):
        super().__init__(retries, quiet, ignore_existing, description)
        self.options = options

    def run(self, job: Job, units: Sequence[Unit]) -> Summary:
        if job.sequential:
            raise ConfigError(
                f"{self.description}: this work runs its units in order in one process and cannot run on Spark"
            )
        start = time.monotonic()
        summary, todo = self.start(units)
        outputs = [path for unit in todo for path in unit.outputs]
        if todo:
            with spark_context(self.options, outputs) as sc:
                self._run(sc, job, todo, summary)
            # A speculative or killed attempt may have left a temporary behind; the final files are complete.
            remove_stale_temporaries(outputs)
        summary.seconds = time.monotonic() - start
        return summary

    def _run(self, sc: Any, job: Job, todo: list[Unit], summary: Summary) -> None:
        accumulators = (sc.accumulator(0), sc.accumulator(0), sc.accumulator(0), sc.accumulator({}, _MergeDict()))
        runner = TaskRunner(uuid.uuid4().hex, job, self.retries, accumulators)
        items = [(idx, msgspec.msgpack.encode(unit)) for idx, unit in enumerate(todo)]
        rdd = sc.parallelize(items, len(items)).mapPartitions(runner)
        sc.setJobDescription(f"dolma {self.description}: {len(todo)} unit(s)")

        packed, error = collect_with_progress(sc, rdd, accumulators[:3], len(todo), self.description, self.quiet)
        if error is not None:
            log.error("Spark job failed: %s", _short_error(error))
            packed = list(accumulators[3].value.values())
        results = {r.index: r for r in (msgspec.msgpack.decode(p, type=UnitResult) for p in packed)}
        for idx, unit in enumerate(todo):
            result = results.get(idx)
            if result is None:
                reason = _short_error(error) if error is not None else "no result returned by Spark"
                summary.failures.append(UnitFailure(unit=unit, error=f"Spark task failed: {reason}", attempts=1))
            elif result.error is not None:
                summary.failures.append(UnitFailure(unit=unit, error=result.error, attempts=result.attempts))
            else:
                assert result.stats is not None
                summary.record(unit, result.stats)
