"""S3 under faults (issue 14 items 2 and 7): requests through a fault proxy on 127.0.0.1 recover or fail with
a message naming the object and the last error; lost completions, stale uploads and clear errors."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dolma import atomic, io, s3
from dolma.errors import S3Error
from tests.conftest import REPO, S3_KEY, S3_SECRET, make_docs, run_cli
from tests.helpers.faultproxy import Rule

MB = 1 << 20
FAST = {"connect_timeout": 2.0, "read_timeout": 5.0, "request_deadline": 20.0, "part_size": 5 * MB}


@pytest.fixture
def faulty(fault_s3):
    """This process talks to the fault proxy (short timeouts, 5 MiB parts) for the test, then to the usual server."""
    saved = io.s3_settings()
    io.configure_s3(io.S3Config(endpoint_url=fault_s3.endpoint, **FAST))
    fault_s3.server.client().create_bucket(Bucket="faults")
    try:
        yield fault_s3
    finally:
        io.configure_s3(saved)


def _payload(n: int, seed: int = 0) -> bytes:
    import random

    return random.Random(seed).randbytes(n)


def test_resets_mid_body_503s_and_delays_are_recovered(faulty):
    """Every kind of request (PUT, multipart, HEAD, LIST, GET) survives cut answers, 503s and slow answers."""
    faulty.proxy.set_rules(
        Rule("reset", probability=0.2),
        Rule("slowdown", probability=0.1),
        Rule("delay", probability=0.05, seconds=0.5),
    )
    big = _payload(12 * MB)
    small = b'{"id": "a", "text": "x"}\n' * 1000
    atomic.write_bytes("s3://faults/out/big.bin", big)
    for i in range(10):
        atomic.write_bytes(f"s3://faults/out/small-{i}.jsonl", small)
    assert io.glob("s3://faults/out/*") == ["s3://faults/out/big.bin"] + [
        f"s3://faults/out/small-{i}.jsonl" for i in range(10)
    ]
    assert io.read_bytes("s3://faults/out/big.bin") == big
    for i in range(10):
        assert io.exists(f"s3://faults/out/small-{i}.jsonl")
        assert io.read_bytes(f"s3://faults/out/small-{i}.jsonl") == small
    faults = faulty.proxy.counters.faults
    assert faults.get("reset", 0) > 0 and faults.get("slowdown", 0) > 0
    assert faulty.server.uploads("faults") == []


def test_read_resumes_after_the_connection_dies_mid_body(faulty):
    data = _payload(3 * MB, seed=1)
    atomic.write_bytes("s3://faults/r.bin", data)
    is_get = lambda r: r.method == "GET" and "r.bin" in r.target  # noqa: E731
    faulty.proxy.set_rules(Rule("reset", match=is_get, limit=3))
    assert io.read_bytes("s3://faults/r.bin") == data
    assert faulty.proxy.counters.faults == {"reset": 3}


def test_completion_whose_answer_was_lost_is_recognised(faulty):
    """The server applies CompleteMultipartUpload but its answer never arrives: the retry gets NoSuchUpload,
    and the writer recognises the object as its own instead of failing or re-sending forever."""
    faulty.proxy.set_rules(Rule("drop", match=lambda r: r.is_complete_upload, limit=1))
    data = _payload(11 * MB, seed=2)
    atomic.write_bytes("s3://faults/done.bin", data)
    assert faulty.proxy.counters.faults == {"drop": 1}
    assert io.read_bytes("s3://faults/done.bin") == data
    assert faulty.server.uploads("faults") == []


def test_upload_created_twice_after_a_lost_answer_leaves_no_stray_upload(faulty):
    """CreateMultipartUpload applied but its answer lost: botocore's retry creates a second upload; the first
    (ours, unknown id) is found and aborted instead of lingering incomplete."""
    faulty.proxy.set_rules(Rule("drop", match=lambda r: r.is_create_upload, limit=1))
    data = _payload(6 * MB, seed=5)
    atomic.write_bytes("s3://faults/twice.bin", data)
    assert faulty.proxy.counters.faults == {"drop": 1}
    assert io.read_bytes("s3://faults/twice.bin") == data
    assert faulty.server.uploads("faults") == []


def test_lost_completion_of_someone_elses_object_is_not_taken_for_ours(faulty):
    """If the completion really failed and another object sits at the key, the write fails (naming the key)."""
    io.configure_s3(io.S3Config(endpoint_url=faulty.endpoint, **(FAST | {"max_attempts": 2})))
    faulty.server.client().put_object(Bucket="faults", Key="other.bin", Body=b"someone else's")
    # the completion is refused before it reaches the server, every time
    faulty.proxy.set_rules(Rule("slowdown", match=lambda r: r.is_complete_upload))
    with pytest.raises(S3Error) as info:
        atomic.write_bytes("s3://faults/other.bin", _payload(11 * MB, seed=3))
    assert str(info.value).startswith("s3://faults/other.bin: completing the upload of 3 part(s) failed after 2 ")
    assert str(info.value).endswith("SlowDown (HTTP 503)")
    assert faulty.server.client().get_object(Bucket="faults", Key="other.bin")["Body"].read() == b"someone else's"
    assert faulty.server.uploads("faults") == []


def test_persistent_throttling_fails_naming_object_attempts_and_last_error(faulty):
    io.configure_s3(io.S3Config(endpoint_url=faulty.endpoint, **(FAST | {"max_attempts": 3})))
    faulty.proxy.set_rules(Rule("slowdown"))
    with pytest.raises(S3Error) as info:
        atomic.write_bytes("s3://faults/slow.jsonl", b"x\n")
    message = str(info.value)
    assert message.startswith("s3://faults/slow.jsonl: writing failed after 3 attempt(s) in ")
    assert message.endswith("SlowDown (HTTP 503)")
    assert info.value.retryable


def test_dead_endpoint_gives_up_at_the_deadline_then_fails_fast(faulty):
    io.configure_s3(
        io.S3Config(endpoint_url=faulty.endpoint, **(FAST | {"request_deadline": 3.0, "max_attempts": 100}))
    )
    atomic.write_bytes("s3://faults/x.jsonl", b"x\n")
    faulty.proxy.set_down(True)
    with pytest.raises(S3Error) as first:
        io.read_bytes("s3://faults/x.jsonl")
    assert str(first.value).startswith(
        f"s3://faults/x.jsonl: reading: cannot reach the S3 endpoint {faulty.endpoint}: gave up after "
    )
    assert "(s3.request_deadline 3 s); last error: could not connect ([Errno 111] Connection refused)" in str(
        first.value
    )
    # the next requests of this process are not attempted while the endpoint is known to be down
    with pytest.raises(S3Error, match="not attempted: the endpoint has been unreachable since") as second:
        io.exists("s3://faults/y.jsonl")
    assert second.value.code == "Unreachable" and not second.value.retryable
    # once the endpoint is back (and the hold has passed) requests go through again
    faulty.proxy.set_down(False)
    s3._breaker().reset()
    assert io.read_bytes("s3://faults/x.jsonl") == b"x\n"


WRITER = textwrap.dedent(
    """
    import os, sys, time
    from dolma import atomic, io, s3
    io.configure_s3(io.S3Config(endpoint_url=sys.argv[1], part_size=5 << 20))
    s3.begin_run()
    out = atomic.AtomicWriter(sys.argv[2], compression=None)
    out.write(os.urandom(6 << 20))  # one part goes out
    print("uploading", flush=True)
    time.sleep(600)
    """
)


def _killed_writer(endpoint: str, url: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, endpoint, url],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "uploading"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def test_rerun_aborts_our_stale_uploads_only(fault_s3):
    client = fault_s3.server.client()
    client.create_bucket(Bucket="stale")
    _killed_writer(fault_s3.endpoint, "s3://stale/out/a.bin")
    _killed_writer(fault_s3.endpoint, "s3://stale/out/b.bin")
    assert sorted(u["Key"] for u in fault_s3.server.uploads("stale")) == ["out/a.bin", "out/b.bin"]
    saved = io.s3_settings()
    io.configure_s3(io.S3Config(endpoint_url=fault_s3.endpoint, **FAST))
    try:
        s3.begin_run()
        time.sleep(0.05)  # the store reports times in milliseconds: the live upload is clearly after the start
        live = client.create_multipart_upload(Bucket="stale", Key="out/a.bin")["UploadId"]  # a live writer's
        data = _payload(6 * MB, seed=4)
        atomic.write_bytes("s3://stale/out/a.bin", data)
        assert io.read_bytes("s3://stale/out/a.bin") == data
    finally:
        io.configure_s3(saved)
    left = {(u["Key"], u["UploadId"]) for u in fault_s3.server.uploads("stale")}
    # a.bin's killed upload is gone; b.bin (not rewritten by this run) and the live upload are untouched
    assert ("out/a.bin", live) in left
    assert sorted(k for k, _ in left) == ["out/a.bin", "out/b.bin"]


def test_killed_command_leaves_no_upload_after_the_rerun(fault_s3, tmp_path):
    """mix writes a 6 MB part to S3; killed mid-upload, the rerun finishes and no incomplete upload is left."""
    client = fault_s3.server.client()
    client.create_bucket(Bucket="mixkill")
    docs = tmp_path / "documents" / "a.jsonl.gz"
    docs.parent.mkdir(parents=True)
    import random

    rng = random.Random(0)
    words = [f"w{i}" for i in range(5000)]
    with gzip.open(docs, "wt") as fh:
        for i in range(4000):
            fh.write(json.dumps({"id": str(i), "text": " ".join(rng.choices(words, k=300))}) + "\n")
    config = tmp_path / "mix.yaml"
    config.write_text(
        json.dumps(
            {
                "streams": [
                    {
                        "name": "s",
                        "documents": [str(docs)],
                        "output": {"path": "s3://mixkill/out", "max_size_in_bytes": 1 << 30},
                        "compression": {"output": "none"},
                    }
                ],
                "s3": {"endpoint_url": fault_s3.endpoint, "part_size": 5 * MB},
            }
        )
    )
    # the upload of the staged part stalls after its first part, so the kill lands mid-upload
    fault_s3.proxy.set_rules(
        Rule("delay", seconds=60, match=lambda r: r.is_upload_part and "partNumber=2" in r.target)
    )
    env = dict(os.environ, **fault_s3.env())
    proc = subprocess.Popen(
        [sys.executable, "-m", "dolma", "-c", str(config), "mix"],
        env=env | {"PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while fault_s3.proxy.counters.faults.get("delay", 0) == 0:
        assert proc.poll() is None
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(fault_s3.server.uploads("mixkill")) == 1
    assert [k for k in fault_s3.server.keys("mixkill") if not k.split("/")[-1].startswith(".")] == []
    fault_s3.proxy.clear()
    done = run_cli("-c", str(config), "mix", env=fault_s3.env())
    assert done.returncode == 0, done.stderr
    assert fault_s3.server.uploads("mixkill") == []
    assert fault_s3.server.keys("mixkill") == ["out/.s.mix-shards.json", "out/s-0000.jsonl"]


# ----------------------------------------------------------------------------------------------------------
# Item 7 (S3): one-line errors instead of tracebacks
# ----------------------------------------------------------------------------------------------------------


def _tag(tmp_path: Path, *args: str, env: dict | None = None):
    return run_cli("tag", "--taggers", "char_length_v1", "--quiet", *args, env=env)


def _one_line_error(result) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def s3_docs(s3_server, s3_bucket) -> str:
    rows = "".join(json.dumps(d) + "\n" for d in make_docs(5)).encode()
    atomic.write_bytes(f"s3://{s3_bucket}/c/documents/a.jsonl.gz", rows)
    return f"s3://{s3_bucket}/c/documents/*.jsonl.gz"


def test_missing_input_bucket_is_one_line(tmp_path, s3_server):
    line = _one_line_error(_tag(tmp_path, "--documents", "s3://no-such-bucket-xyz/documents/*.gz"))
    assert line == (
        "error: s3://no-such-bucket-xyz/documents/: listing objects: bucket 'no-such-bucket-xyz' does not exist at "
        f"{s3_server.endpoint} (check the bucket name, s3.endpoint_url and s3.region)"
    )


def test_missing_output_bucket_is_one_line(tmp_path, s3_docs):
    line = _one_line_error(_tag(tmp_path, "--documents", s3_docs, "--destination", "s3://no-such-bucket-xyz/attr"))
    assert line.startswith("error: s3://no-such-bucket-xyz/: checking the output bucket: bucket 'no-such-bucket-xyz'")


def test_wrong_credentials_are_one_line(tmp_path, s3_docs):
    line = _one_line_error(_tag(tmp_path, "--documents", s3_docs, env={"AWS_SECRET_ACCESS_KEY": "wrong"}))
    assert line.startswith(f"error: {s3_docs.rsplit('/', 1)[0]}/: listing objects: the S3 endpoint ")
    assert "rejected the credentials (SignatureDoesNotMatch); check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY" in line


def test_no_credentials_are_one_line(tmp_path, s3_docs):
    env = dict(os.environ, HOME=str(tmp_path), AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    env.pop("AWS_ACCESS_KEY_ID")
    env.pop("AWS_SECRET_ACCESS_KEY")
    result = subprocess.run(
        [sys.executable, "-m", "dolma", "tag", "--taggers", "char_length_v1", "--documents", s3_docs],
        capture_output=True,
        text=True,
        env=env | {"PYTHONPATH": str(REPO)},
    )
    line = _one_line_error(result)
    assert "no usable AWS credentials" in line and "AWS_ACCESS_KEY_ID" in line


def test_unreachable_endpoint_is_one_line(tmp_path, s3_docs):
    from tests.conftest import _free_port

    dead = f"http://127.0.0.1:{_free_port()}"
    line = _one_line_error(
        # enough attempts that the deadline, not the attempt count, ends the request (eight attempts with
        # botocore's jittered backoff can all fail within 2 s, and then the message says "failed after 8")
        _tag(
            tmp_path,
            "--documents",
            s3_docs,
            "--s3.endpoint_url",
            dead,
            "--s3.request_deadline",
            "2",
            "--s3.max_attempts",
            "1000",
        )
    )
    assert line.startswith(
        f"error: {s3_docs.rsplit('/', 1)[0]}/: listing objects: cannot reach the S3 endpoint {dead}"
    )
    assert "last error: could not connect" in line and "check s3.endpoint_url" in line


def test_credentials_info_line_is_not_printed(tmp_path, s3_docs):
    dest = f"{s3_docs.split('/c/')[0]}/attr"
    result = run_cli("tag", "--taggers", "char_length_v1", "--documents", s3_docs, "--destination", dest)
    assert result.returncode == 0, result.stderr
    assert "dolma tag: char_length_v1" in result.stderr  # not quiet: the summary is printed
    assert "Found credentials" not in result.stderr + result.stdout


def test_s3_settings_are_documented_in_help():
    result = run_cli("tag", "--help")
    for name in ("connect_timeout", "read_timeout", "max_attempts", "retry_mode", "request_deadline", "part_size"):
        assert f"s3.{name}" in result.stdout


def test_s3_keys_and_secret_stay_out_of_errors(tmp_path, s3_docs):
    result = _tag(tmp_path, "--documents", s3_docs, env={"AWS_SECRET_ACCESS_KEY": "wrong"})
    assert S3_SECRET not in result.stderr and "wrong" not in result.stderr
    assert S3_KEY not in result.stderr


def test_retryable_s3_errors_are_retried_by_executors_and_travel_between_processes():
    import pickle

    from dolma.executors.base import is_retryable

    lost = S3Error("s3://b/k", "uploading part 2 failed: NoSuchUpload (HTTP 404)", code="NoSuchUpload", retryable=True)
    missing = S3Error("s3://b/k", "bucket 'b' does not exist", code="NoSuchBucket")
    assert is_retryable(lost) and not is_retryable(missing)
    back = pickle.loads(pickle.dumps(lost))
    assert (str(back), back.code, back.retryable) == (str(lost), "NoSuchUpload", True)
