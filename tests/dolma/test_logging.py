"""Log output never shows credentials: `--debug` against the S3 test server, library logs on request, redaction."""

from __future__ import annotations

import logging
import re

import pytest
import yaml

from dolma.redact import MASK, RedactSecrets, redact
from tests.conftest import S3_KEY, S3_SECRET, make_docs, run_cli, write_jsonl_gz

SESSION_TOKEN = "FQoGZXIvYXdzEPlaceholderSessionToken0123456789"
LEAKS = ("authorization", "signature=", "x-amz-signature", "credential=", "x-amz-security-token", "akia")


def _mix_on_s3(tmp_path, s3_server, bucket: str, *flags: str, env: dict | None = None):
    """`dolma mix` reading documents from and writing shards to the S3 test server."""
    local = write_jsonl_gz(tmp_path / "documents" / "part-0.jsonl.gz", make_docs(20))
    s3_server.client().put_object(Bucket=bucket, Key="documents/part-0.jsonl.gz", Body=local.read_bytes())
    cfg = tmp_path / "mix.yaml"
    stream = {
        "name": "logs",
        "documents": [f"s3://{bucket}/documents/*.jsonl.gz"],
        "output": {"path": f"s3://{bucket}/mixed"},
    }
    cfg.write_text(yaml.safe_dump({"streams": [stream]}))
    result = run_cli("-c", str(cfg), "mix", *flags, env={"AWS_SESSION_TOKEN": SESSION_TOKEN, **(env or {})})
    assert result.returncode == 0, result.stderr
    assert "mixed/logs-0000.jsonl.gz" in s3_server.keys(bucket, "mixed/")  # it really talked to S3
    return result


def _assert_no_credentials(text: str) -> None:
    for secret in (S3_KEY, S3_SECRET, SESSION_TOKEN):
        assert secret not in text
    lowered = text.lower()
    for marker in LEAKS:
        assert marker not in lowered, marker


@pytest.mark.s3
def test_debug_run_against_s3_prints_no_credentials(tmp_path, s3_server, s3_bucket):
    result = _mix_on_s3(tmp_path, s3_server, s3_bucket, "--debug")
    _assert_no_credentials(result.stdout + result.stderr)
    assert "dolma mix: stream logs" in result.stderr  # the run reported (debug does not silence our output)


@pytest.mark.s3
def test_library_debug_logs_on_request_are_redacted(tmp_path, s3_server, s3_bucket):
    """DOLMA_LIBRARY_LOG_LEVEL=DEBUG shows botocore's wire log: the redaction filter still masks what is signed."""
    result = _mix_on_s3(tmp_path, s3_server, s3_bucket, "--debug", env={"DOLMA_LIBRARY_LOG_LEVEL": "DEBUG"})
    output = result.stderr  # logs go to stderr with the summary; stdout carries only a command's own output
    assert "Sending http request" in output and "Sending http request" not in result.stdout  # botocore's log ...
    assert re.search(r"'Authorization': b?\[REDACTED\]", output)  # ... with its Authorization header masked
    for secret in (S3_KEY, S3_SECRET, SESSION_TOKEN):
        assert secret not in output
    flat = " ".join(output.split())  # rich wraps long log lines
    for name in ("Signature", "Credential", "X-Amz-Security-Token", "x-amz-security-token", "Authorization"):
        for found in re.finditer(rf"{name}['\"]?\s*[:=]\s*b?", flat):
            assert flat[found.end() :].startswith(MASK), flat[found.start() : found.end() + 40]


@pytest.mark.s3
def test_normal_run_does_not_say_where_credentials_were_found(tmp_path, s3_server, s3_bucket):
    result = _mix_on_s3(tmp_path, s3_server, s3_bucket)
    output = result.stdout + result.stderr
    assert "Found credentials" not in output
    assert "credentials" not in output.lower()
    _assert_no_credentials(output)


def test_bad_library_log_level_is_an_error(tmp_path):
    result = run_cli("list", env={"DOLMA_LIBRARY_LOG_LEVEL": "LOUD"})
    assert result.returncode != 0
    assert "DOLMA_LIBRARY_LOG_LEVEL='LOUD'" in result.stderr


@pytest.mark.parametrize(
    "line, hidden",
    [
        (
            "headers={'X-Amz-Date': b'20240101T000000Z', 'Authorization': b'AWS4-HMAC-SHA256 "
            "Credential=AKIAIOSFODNN7EXAMPLE/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, "
            "Signature=0123abcd0123abcd0123abcd'}",
            ["AKIAIOSFODNN7EXAMPLE", "0123abcd0123abcd", "us-east-1/s3/aws4_request"],
        ),
        (
            "Authorization: AWS4-HMAC-SHA256 Credential=ASIAXXXXXXXXXXXXXXXX/20240101/eu-west-1/s3/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=fedcba9876543210fedcba",
            ["ASIAXXXXXXXXXXXXXXXX", "fedcba9876543210fedcba", "eu-west-1/s3/aws4_request"],
        ),
        (
            "GET https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=KEYID%2F20240101"
            "&X-Amz-Signature=deadbeefdeadbeef&X-Amz-Security-Token=TOKENVALUE123 HTTP/1.1",
            ["KEYID", "deadbeefdeadbeef", "TOKENVALUE123"],
        ),
        ("GET /k?AWSAccessKeyId=OLDSTYLEKEY&Signature=c2lnbmF0dXJl&Expires=1", ["OLDSTYLEKEY", "c2lnbmF0dXJl"]),
        ("CanonicalRequest:\nGET\n/\n\nhost:x\nx-amz-security-token:SESSIONTOKENXYZ\n", ["SESSIONTOKENXYZ"]),
        ("Signature:\n0f1e2d3c4b5a69780f1e2d3c4b5a6978", ["0f1e2d3c4b5a6978"]),
        (
            "<Error><Code>SignatureDoesNotMatch</Code><AWSAccessKeyId>KEYINBODY</AWSAccessKeyId>"
            "<StringToSign>AWS4-HMAC-SHA256\n20240101T000000Z\nscope</StringToSign>"
            "<SignatureProvided>abcabc</SignatureProvided></Error>",
            ["KEYINBODY", "abcabc", "scope"],
        ),
    ],
)
def test_redaction_patterns(line, hidden):
    clean = redact(line, secrets=[])
    for value in hidden:
        assert value not in clean
    assert MASK in clean


def test_redaction_masks_environment_credentials_and_tracebacks(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret-value-42")
    monkeypatch.setenv("MY_API_TOKEN", "tok-987654")
    monkeypatch.setenv("HARMLESS", "keep-this-value")
    record = logging.LogRecord(
        "botocore", logging.DEBUG, __file__, 1, "key %s and %s", ("very-secret-value-42", 1), None
    )
    try:
        raise RuntimeError("failed with tok-987654 and keep-this-value")
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    assert RedactSecrets().filter(record)
    text = record.getMessage()
    assert "very-secret-value-42" not in text and "tok-987654" not in text
    assert "keep-this-value" in text and "RuntimeError" in text
