"""The tests reach nothing but 127.0.0.1 (issue 14 item 10): no cloud metadata service, no proxies, in this
process and in the processes it starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from tests.conftest import OFFLINE_ENV, REPO, UNSET_ENV

PROXIES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def _check(env: dict[str, str]) -> None:
    assert env.get("AWS_EC2_METADATA_DISABLED") == "true"
    assert env.get("NO_PROXY") == env.get("no_proxy") == "127.0.0.1,localhost"
    for name in PROXIES:
        assert name not in env, name


def test_this_process_and_its_children_are_offline():
    _check(dict(os.environ))
    assert set(PROXIES) <= set(UNSET_ENV) and OFFLINE_ENV["AWS_EC2_METADATA_DISABLED"] == "true"
    child = subprocess.run(
        [sys.executable, "-c", "import json, os; print(json.dumps(dict(os.environ)))"],
        capture_output=True,
        text=True,
        check=True,
    )
    _check(json.loads(child.stdout))


CONNECTS = textwrap.dedent(
    """
    import json, socket, sys
    seen = []
    real = socket.socket.connect
    def connect(self, address):
        seen.append(address[0] if isinstance(address, tuple) else str(address))
        return real(self, address)
    socket.socket.connect = connect
    real_create = socket.create_connection
    def create_connection(address, *args, **kwargs):
        seen.append(address[0])
        return real_create(address, *args, **kwargs)
    socket.create_connection = create_connection
    import boto3
    from dolma import io
    print(json.dumps({"credentials": boto3.session.Session().get_credentials() is not None}))
    io.configure_s3(io.S3Config(endpoint_url=sys.argv[1]))
    try:
        io.exists("s3://bucket/key")
    except Exception as exc:  # no credentials: the request cannot even be signed
        print(json.dumps({"error": str(exc)}))
    print(json.dumps({"addresses": sorted(set(seen))}))
    """
)


def test_without_credentials_nothing_but_loopback_is_contacted(tmp_path):
    """botocore looks for instance credentials at 169.254.169.254 when it finds none; here it must not."""
    from tests.conftest import _free_port

    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") or k in OFFLINE_ENV}
    env |= {"HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", CONNECTS, f"http://127.0.0.1:{_free_port()}"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0] == {"credentials": False}
    assert "credentials" in lines[1]["error"]
    assert all(address == "127.0.0.1" for address in lines[2]["addresses"]), lines[2]
