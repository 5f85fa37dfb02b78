"""S3 for `dolma.io`: settings, one client per process, bounded retries and clear errors.

Longer than 400 lines because the client, its botocore hooks (deadline, breaker) and the error translation
share this process's S3 state (settings, clients, breakers) and are read together.

Every S3 request goes through `call`, so every failure becomes an `S3Error` that names the object, what
was being done, the attempts and the last error, and says what to check. Retries are botocore's own
(standard or adaptive mode, connect and read timeouts); two event hooks add what botocore lacks:

- a deadline: no new attempt of a request starts after `s3.request_deadline` seconds;
- a circuit breaker per process: once a request has given up because the endpoint could not be reached,
  requests in the next `request_deadline` seconds fail at once instead of each waiting the full time, so a
  dead endpoint fails a command in about one deadline, not one per file.

Reads and uploads of whole objects are in dolma.s3_transfer.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from dolma.errors import S3Error

log = logging.getLogger("dolma")

MIN_PART_SIZE = 5 << 20
"""S3's smallest part (every part but the last)."""

RUN_STARTED_ENV = "DOLMA_RUN_STARTED"
"""Wall-clock start of the current run (set by the driver, inherited by local workers)."""


class S3Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How to reach S3. Anything left unset comes from the usual AWS environment variables and profiles."""

    endpoint_url: Annotated[
        str | None, Meta(description="S3 endpoint for S3-compatible stores (else $AWS_ENDPOINT_URL).")
    ] = None
    profile: Annotated[str | None, Meta(description="AWS profile name (else $AWS_PROFILE / default).")] = None
    region: Annotated[str | None, Meta(description="AWS region (else from the profile, or us-east-1).")] = None
    connect_timeout: Annotated[
        float, Meta(gt=0, description="Seconds to wait for a connection to the endpoint before an attempt fails.")
    ] = 10.0
    read_timeout: Annotated[
        float,
        Meta(gt=0, description="Seconds without a byte from the endpoint before an attempt fails (and is retried)."),
    ] = 60.0
    max_attempts: Annotated[
        int,
        Meta(
            ge=1,
            description="Attempts per request, the first included (botocore retries with exponential backoff and "
            "jitter, at most 20 s apart; throttling and 5xx answers, timeouts and dropped connections are retried).",
        ),
    ] = 8
    retry_mode: Annotated[
        Literal["standard", "adaptive"],
        Meta(description="botocore retry mode: 'adaptive' also slows the client down when the store throttles."),
    ] = "standard"
    request_deadline: Annotated[
        float,
        Meta(
            gt=0,
            description="Seconds after which no new attempt of a request starts: the request fails naming the "
            "object and the last error. A dead endpoint fails a command in about this time.",
        ),
    ] = 120.0
    part_size: Annotated[
        int,
        Meta(
            ge=MIN_PART_SIZE,
            description="Bytes per part of a multipart upload (smaller files are written with one PUT); >= 5 MiB.",
        ),
    ] = 16 << 20


# ----------------------------------------------------------------------------------------------------------
# Settings, run start, clients
# ----------------------------------------------------------------------------------------------------------

_settings = S3Config()
_clients: dict[tuple[int, S3Config], Any] = {}
_clients_lock = threading.Lock()
_run_started: float | None = None


def configure(config: S3Config | None) -> None:
    """Set the S3 options for this process (workers receive them with their job)."""
    global _settings
    _settings = config or S3Config()


def settings() -> S3Config:
    return _settings


def begin_run() -> None:
    """Mark the start of a run (the driver calls this once); uploads initiated earlier count as stale."""
    global _run_started
    _run_started = time.time()
    os.environ[RUN_STARTED_ENV] = repr(_run_started)


def run_started() -> float | None:
    """The current run's start: set by `begin_run` here, or inherited from the driver; None if unknown."""
    if _run_started is not None:
        return _run_started
    try:
        return float(os.environ[RUN_STARTED_ENV])
    except (KeyError, ValueError):
        return None


def endpoint_of(config: S3Config) -> str | None:
    return config.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def client() -> Any:
    """The boto3 S3 client of this process (clients are not fork-safe, so they are cached per pid)."""
    key = (os.getpid(), _settings)
    with _clients_lock:
        found = _clients.get(key)
        if found is None:
            found = _clients[key] = _new_client(_settings)
        return found


def _new_client(config: S3Config) -> Any:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    logging.getLogger("botocore.credentials").setLevel(logging.WARNING)  # "Found credentials in ..." is noise
    profile = config.profile or os.environ.get("AWS_PROFILE") or None
    try:
        session = boto3.session.Session(profile_name=profile)
        made = session.client(
            "s3",
            endpoint_url=endpoint_of(config),
            region_name=config.region or session.region_name or "us-east-1",
            config=Config(
                connect_timeout=config.connect_timeout,
                read_timeout=config.read_timeout,
                retries={"total_max_attempts": config.max_attempts, "mode": config.retry_mode},
            ),
        )
    except BotoCoreError as exc:
        where = f"profile '{profile}'" if profile else "the AWS configuration"
        raise S3Error("", f"cannot set up S3 access from {where}: {words(exc)} (check s3.profile, ~/.aws)") from exc
    events = made.meta.events
    events.register("before-call.s3", _before_call)
    events.register("request-created.s3", _before_attempt)
    events.register_first("needs-retry.s3", _after_attempt)
    return made


# ----------------------------------------------------------------------------------------------------------
# Deadline and circuit breaker (botocore event hooks)
# ----------------------------------------------------------------------------------------------------------


class _GiveUp(Exception):
    """Raised inside botocore to stop a request: past its deadline, or the endpoint is known to be down."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class _Breaker:
    """Remembers that the endpoint could not be reached, so later requests fail fast for a while."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.down_since: float | None = None
        self.until = 0.0
        self.last_error = ""

    def trip(self, last_error: str, hold: float) -> None:
        with self.lock:
            now = time.monotonic()
            if self.down_since is None:
                self.down_since = time.time()
            self.until = now + hold
            self.last_error = last_error

    def reset(self) -> None:
        with self.lock:
            self.down_since = None
            self.until = 0.0

    def open_reason(self) -> str | None:
        with self.lock:
            if self.down_since is None or time.monotonic() >= self.until:
                return None
            since = time.strftime("%H:%M:%S", time.localtime(self.down_since))
            return f"the endpoint has been unreachable since {since} (last error: {self.last_error})"


_breakers: dict[str, _Breaker] = {}
_current = threading.local()


def _breaker() -> _Breaker:
    """The breaker of the endpoint now configured (one per endpoint, so one dead store does not stop another)."""
    endpoint = endpoint_of(_settings) or "aws"
    with _clients_lock:
        return _breakers.setdefault(endpoint, _Breaker())


def _before_call(context: dict[str, Any], **_: Any) -> None:
    reason = _breaker().open_reason()
    context["dolma"] = {"t0": time.monotonic(), "attempts": 0, "last": "", "connection": False}
    _current.state = context["dolma"]
    if reason is not None:
        context["dolma"]["connection"] = True
        context["dolma"]["last"] = reason
        raise _GiveUp(f"not attempted: {reason}")


def _before_attempt(request: Any, **_: Any) -> None:
    state = getattr(request, "context", {}).get("dolma")
    if state is None:
        return
    state["attempts"] += 1
    if state["attempts"] > 1:
        elapsed = time.monotonic() - state["t0"]
        if elapsed >= _settings.request_deadline:
            state["attempts"] -= 1
            raise _GiveUp(
                f"gave up after {state['attempts']} attempt(s) in {elapsed:.1f} s "
                f"(s3.request_deadline {_settings.request_deadline:g} s)"
            )


def _after_attempt(request_dict: dict[str, Any], response: Any, caught_exception: Any, **_: Any) -> None:
    state = request_dict.get("context", {}).get("dolma")
    if state is None:
        return None
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    if caught_exception is not None:
        state["last"] = words(caught_exception)
        state["connection"] = isinstance(caught_exception, (BotoConnectionError, HTTPClientError))
    elif response is not None:
        http, parsed = response
        status = getattr(http, "status_code", 0)
        if status >= 300:
            err = parsed.get("Error", {}) if isinstance(parsed, dict) else {}
            state["last"] = f"{err.get('Code') or 'HTTP error'} (HTTP {status})"
            state["connection"] = False
    return None


def last_call_attempts() -> int:
    """How many attempts the last request of this thread took (an upload started twice leaves a twin to abort)."""
    return (getattr(_current, "state", None) or {}).get("attempts", 1)


def words(exc: BaseException) -> str:
    """A short description of a low-level error, in our words where we know it."""
    from botocore import exceptions as be

    detail = str(getattr(exc, "kwargs", {}).get("error", "") or "")
    if "[Errno" in detail:  # keep the system's reason, not urllib3's description of its connection object
        detail = detail[detail.index("[Errno") :].rstrip(")")
    table: list[tuple[type, str]] = [
        (be.EndpointConnectionError, "could not connect"),
        (be.ConnectTimeoutError, "timed out connecting"),
        (be.ReadTimeoutError, "timed out waiting for data (s3.read_timeout)"),
        (be.ConnectionClosedError, "the connection was closed"),
        (be.ResponseStreamingError, "the connection broke while receiving the answer"),
        (be.IncompleteReadError, "the answer ended before its announced length"),
        (be.NoCredentialsError, "no credentials found"),
    ]
    for cls, words in table:
        if isinstance(exc, cls):
            return f"{words} ({detail})" if detail else words
    if isinstance(exc, _GiveUp):
        return exc.reason
    code = _error_code(exc)
    if code:
        return f"{code} (HTTP {_status(exc)})"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


# ----------------------------------------------------------------------------------------------------------
# Requests and their errors
# ----------------------------------------------------------------------------------------------------------

NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
_CREDENTIALS = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "TokenRefreshRequired",
    "InvalidSecurity",
    "AuthorizationHeaderMalformed",
}
_RETRYABLE_CODES = {"SlowDown", "Throttling", "RequestTimeout", "InternalError", "NoSuchUpload", "ServiceUnavailable"}


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", "") or "")


def _status(exc: BaseException) -> int:
    response = getattr(exc, "response", None) or {}
    return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def split(url: str) -> tuple[str, str]:
    bucket, _, key = url[len("s3://") :].partition("/")
    return bucket, key


def call(op: str, url: str, what: str, **params: Any) -> Any:
    """Run one S3 request; any failure becomes an S3Error naming `url` and `what` was being done."""
    _current.state = None
    try:
        result = getattr(client(), op)(**params)
    except S3Error:
        raise
    except Exception as exc:
        raise translate(exc, url, what) from exc
    _breaker().reset()
    return result


def _endpoint_in_use() -> str:
    try:
        return str(client().meta.endpoint_url)
    except Exception:
        return endpoint_of(_settings) or "AWS S3"


def translate(exc: BaseException, url: str, what: str) -> S3Error:
    """The S3Error for a failed request: the object, the action, the attempts, the last error and a hint."""
    from botocore import exceptions as be

    state: dict[str, Any] = getattr(_current, "state", None) or {}
    bucket = split(url)[0] if url.startswith("s3://") else url
    endpoint = _endpoint_in_use()
    attempts = state.get("attempts", 0)
    elapsed = time.monotonic() - state["t0"] if "t0" in state else 0.0
    tried = f" after {attempts} attempt(s) in {elapsed:.1f} s" if attempts > 1 else ""
    if isinstance(exc, (be.NoCredentialsError, be.PartialCredentialsError, be.CredentialRetrievalError)):
        return S3Error(
            url,
            f"{what}: no usable AWS credentials ({words(exc)}); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "a profile (s3.profile or AWS_PROFILE), or run where an instance role is available",
            code="NoCredentials",
        )
    code = _error_code(exc)
    if code == "NoSuchBucket":
        return S3Error(
            url,
            f"{what}: bucket '{bucket}' does not exist at {endpoint} (check the bucket name, s3.endpoint_url and "
            "s3.region)",
            code=code,
        )
    if code in _CREDENTIALS:
        return S3Error(
            url,
            f"{what}: the S3 endpoint {endpoint} rejected the credentials ({code}); check AWS_ACCESS_KEY_ID / "
            "AWS_SECRET_ACCESS_KEY or the profile (s3.profile), and s3.endpoint_url",
            code=code,
        )
    if code in ("AccessDenied", "AllAccessDisabled", "403"):
        return S3Error(
            url,
            f"{what}: access denied to bucket '{bucket}' ({code}); check that these credentials may read and write "
            "it (and s3.profile)",
            code=code,
        )
    if code:
        status = _status(exc)
        return S3Error(
            url,
            f"{what} failed{tried}: {code} (HTTP {status})",
            code=code,
            retryable=status >= 500 or code in _RETRYABLE_CODES,
        )
    connection = isinstance(exc, (be.ConnectionError, be.HTTPClientError)) or (
        isinstance(exc, _GiveUp) and state.get("connection", False)
    )
    if isinstance(exc, _GiveUp):
        last = state.get("last") or "none"
        detail = f"{exc.reason}; last error: {last}" if not exc.reason.startswith("not attempted") else exc.reason
    else:
        detail = f"failed{tried}: {words(exc)}"
    if connection:
        if not (isinstance(exc, _GiveUp) and exc.reason.startswith("not attempted")):
            _breaker().trip(state.get("last") or words(exc), _settings.request_deadline)
        return S3Error(
            url,
            f"{what}: cannot reach the S3 endpoint {endpoint}: {detail}; check s3.endpoint_url / AWS_ENDPOINT_URL, "
            "the network and that the store is up",
            code="Unreachable",
        )
    return S3Error(url, f"{what}: {detail}", code="Failed", retryable=True)


def supports(operation: str, parameter: str) -> bool:
    """Whether this botocore knows a request parameter (conditional writes came with botocore 1.35)."""
    return parameter in client().meta.service_model.operation_model(operation).input_shape.members


def head(url: str, what: str = "reading the object's details") -> dict[str, Any] | None:
    """HEAD an object; None when it does not exist."""
    bucket, key = split(url)
    try:
        return call("head_object", url, what, Bucket=bucket, Key=key)
    except S3Error as exc:
        if exc.code in NOT_FOUND:
            return None
        raise


def list_keys(bucket: str, prefix: str) -> Any:
    """Every key under `prefix`, page by page (each page is one request with its own retries)."""
    url = f"s3://{bucket}/{prefix}"
    token: str | None = None
    while True:
        params: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if token:
            params["ContinuationToken"] = token
        page = call("list_objects_v2", url, "listing objects", **params)
        for obj in page.get("Contents", []) or []:
            yield obj["Key"]
        if not page.get("IsTruncated"):
            return
        token = page.get("NextContinuationToken")


def check_bucket(url: str, what: str) -> None:
    """Fail early, with one clear message, when a bucket is missing, unreachable or the credentials are wrong.

    A permission error is let through: these credentials may be allowed to write but not to list.
    """
    bucket, key = split(url)
    try:
        call("list_objects_v2", f"s3://{bucket}/", what, Bucket=bucket, Prefix=key, MaxKeys=1)
    except S3Error as exc:
        if exc.code not in ("AccessDenied", "403", "AllAccessDisabled"):
            raise
