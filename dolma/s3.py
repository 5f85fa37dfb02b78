"""S3 for `dolma.io`: one client per process, bounded retries, resumable reads, atomic uploads, clear errors.

Every S3 request goes through `call`, so every failure becomes an `S3Error` that names the object, what
was being done, the attempts and the last error, and says what to check. Retries are botocore's own
(standard or adaptive mode, connect and read timeouts); two event hooks add what botocore lacks:

- a deadline: no new attempt of a request starts after `s3.request_deadline` seconds;
- a circuit breaker per process: once a request has given up because the endpoint could not be reached,
  requests in the next `request_deadline` seconds fail at once instead of each waiting the full time, so a
  dead endpoint fails a command in about one deadline, not one per file.

Uploads are our own (`S3Upload`, boto3's multipart API) rather than smart-open's or s3transfer's, for
three things they do not give: completion that is idempotent when the answer to CompleteMultipartUpload is
lost (the object is recognised by our upload token, its ETag and size), the abort of our own stale uploads
of the same key left by a killed earlier run (never a live run's: only uploads initiated before this run
started), and messages that name the object. Reads (`S3Reader`) resume with a ranged GET after a connection
dies mid-body, pinned to the object's ETag.
"""

from __future__ import annotations

import hashlib
import io as _stdio
import logging
import os
import threading
import time
import uuid
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
        raise S3Error("", f"cannot set up S3 access from {where}: {_words(exc)} (check s3.profile, ~/.aws)") from exc
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
        state["last"] = _words(caught_exception)
        state["connection"] = isinstance(caught_exception, (BotoConnectionError, HTTPClientError))
    elif response is not None:
        http, parsed = response
        status = getattr(http, "status_code", 0)
        if status >= 300:
            err = parsed.get("Error", {}) if isinstance(parsed, dict) else {}
            state["last"] = f"{err.get('Code') or 'HTTP error'} (HTTP {status})"
            state["connection"] = False
    return None


def _words(exc: BaseException) -> str:
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

_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
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
            f"{what}: no usable AWS credentials ({_words(exc)}); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
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
        detail = f"failed{tried}: {_words(exc)}"
    if connection:
        if not (isinstance(exc, _GiveUp) and exc.reason.startswith("not attempted")):
            _breaker().trip(state.get("last") or _words(exc), _settings.request_deadline)
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
        if exc.code in _NOT_FOUND:
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


# ----------------------------------------------------------------------------------------------------------
# Reading: a ranged GET that resumes where a broken connection left off
# ----------------------------------------------------------------------------------------------------------


class _ShortRead(Exception):
    """A body that ended cleanly before the object's size."""


class S3Reader(_stdio.RawIOBase):
    """The stored bytes of one object. A connection that dies mid-body is reopened at the current offset
    (pinned to the ETag, so a replaced object is an error, not a mix of two versions)."""

    def __init__(self, url: str):
        super().__init__()
        self.url = url
        self.bucket, self.key = split(url)
        self.pos = 0
        self.size = 0
        self.etag: str | None = None
        self._body: Any = None
        self._open()

    def _open(self) -> None:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key}
        if self.etag is not None:
            params["IfMatch"] = self.etag
            params["Range"] = f"bytes={self.pos}-"
        try:
            response = call("get_object", self.url, "reading", **params)
        except S3Error as exc:
            if exc.code in _NOT_FOUND:
                raise S3Error(self.url, "no such object", code="NoSuchKey") from None
            if exc.code == "PreconditionFailed":
                raise S3Error(self.url, "the object was replaced while it was being read", retryable=True) from None
            raise
        if self.etag is None:
            self.etag = response.get("ETag")
            self.size = int(response.get("ContentLength", 0))
        self._body = response["Body"]

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        failures = 0
        t0 = time.monotonic()
        last = ""
        while True:
            if self.pos >= self.size:
                return b""
            try:
                if self._body is None:
                    self._open()
                data = self._body.read(size)
                if not data:
                    raise _ShortRead(f"the answer ended {self.size - self.pos} byte(s) early")
            except S3Error:
                raise
            except Exception as exc:
                failures += 1
                last = _words(exc)
                self._drop_body()
                elapsed = time.monotonic() - t0
                if failures >= _settings.max_attempts or elapsed >= _settings.request_deadline:
                    raise S3Error(
                        self.url,
                        f"reading at byte {self.pos} of {self.size} failed {failures} time(s) in {elapsed:.1f} s; "
                        f"last error: {last}",
                        retryable=True,
                    ) from None
                log.debug("%s: reading at byte %d failed (%s); resuming", self.url, self.pos, last)
                time.sleep(min(0.05 * 2**failures, 2.0))
                continue
            self.pos += len(data)
            return data

    def readall(self) -> bytes:
        out = bytearray()
        while chunk := self.read(1 << 20):
            out += chunk
        return bytes(out)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _drop_body(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            try:
                body.close()
            except Exception as exc:  # a broken connection may fail to close; it is discarded either way
                log.debug("closing a broken S3 body: %s", exc)

    def close(self) -> None:
        self._drop_body()
        super().close()


# ----------------------------------------------------------------------------------------------------------
# Writing: one PUT for small objects, a multipart upload for large ones, completed only on success
# ----------------------------------------------------------------------------------------------------------

UPLOAD_TOKEN = "dolma-upload"
"""User metadata key holding a random token per upload: how a lost completion answer is recognised."""


class S3Upload:
    """A file-like sink whose object appears only when `close()` succeeds; `abort()` leaves nothing behind."""

    def __init__(self, url: str):
        self.url = url
        self.bucket, self.key = split(url)
        self.part_size = _settings.part_size
        self.upload_id: str | None = None
        self.token = uuid.uuid4().hex
        self.parts: list[dict[str, Any]] = []
        self.part_md5s: list[bytes] = []
        self.whole = hashlib.md5(usedforsecurity=False)
        self.total = 0
        self._buffer = bytearray()
        self.closed = False

    def write(self, data: bytes) -> int:
        self._buffer += data
        self.whole.update(data)
        self.total += len(data)
        while len(self._buffer) >= self.part_size:
            self._upload_part(bytes(self._buffer[: self.part_size]))
            del self._buffer[: self.part_size]
        return len(data)

    def flush(self) -> None:
        """Parts go out when full; nothing to do here (a writer may still call it)."""

    def _start(self) -> None:
        abort_stale_uploads(self.url)
        before = time.time()
        response = call(
            "create_multipart_upload",
            self.url,
            "starting a multipart upload",
            Bucket=self.bucket,
            Key=self.key,
            Metadata={UPLOAD_TOKEN: self.token},
        )
        self.upload_id = response["UploadId"]
        if (getattr(_current, "state", None) or {}).get("attempts", 1) > 1:
            # an earlier attempt may have created an upload whose answer was lost: abort it, it is ours
            self._abort_twins(before - 1.0, time.time() + 1.0)

    def _abort_twins(self, start: float, end: float) -> None:
        """Abort other uploads of this key initiated during our own (retried) CreateMultipartUpload."""
        try:
            listing = call(
                "list_multipart_uploads", self.url, "listing incomplete uploads", Bucket=self.bucket, Prefix=self.key
            )
        except S3Error:
            return
        for upload in listing.get("Uploads", []) or []:
            initiated = upload.get("Initiated")
            if upload.get("Key") != self.key or upload["UploadId"] == self.upload_id or initiated is None:
                continue
            if start <= initiated.timestamp() <= end:
                try:
                    call(
                        "abort_multipart_upload",
                        self.url,
                        "aborting a duplicate upload",
                        Bucket=self.bucket,
                        Key=self.key,
                        UploadId=upload["UploadId"],
                    )
                except S3Error as exc:
                    log.debug("%s", exc)

    def _upload_part(self, data: bytes) -> None:
        if self.upload_id is None:
            self._start()
        number = len(self.parts) + 1
        response = call(
            "upload_part",
            self.url,
            f"uploading part {number}",
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            PartNumber=number,
            Body=data,
        )
        part = {"ETag": response["ETag"], "PartNumber": number}
        for field in ("ChecksumCRC32", "ChecksumCRC32C", "ChecksumCRC64NVME", "ChecksumSHA1", "ChecksumSHA256"):
            if response.get(field):
                part[field] = response[field]
        self.parts.append(part)
        self.part_md5s.append(hashlib.md5(data, usedforsecurity=False).digest())

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.upload_id is None:
            call(
                "put_object",
                self.url,
                "writing",
                Bucket=self.bucket,
                Key=self.key,
                Body=bytes(self._buffer),
                Metadata={UPLOAD_TOKEN: self.token},
            )
            self._buffer.clear()
            return
        if self._buffer:
            self._upload_part(bytes(self._buffer))
            self._buffer.clear()
        try:
            call(
                "complete_multipart_upload",
                self.url,
                f"completing the upload of {len(self.parts)} part(s)",
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": self.parts},
            )
        except S3Error as exc:
            # The completion may have been applied with its answer lost (a retry then gets NoSuchUpload):
            # if the object now is ours, the upload succeeded.
            if self._landed():
                log.debug("%s: completion answer lost, but the object is ours (%s)", self.url, exc)
                self._abort_quietly()
                return
            raise
        self.upload_id = None

    def _landed(self) -> bool:
        try:
            found = head(self.url, "checking whether the upload completed")
        except S3Error:
            return False
        if found is None or int(found.get("ContentLength", -1)) != self.total:
            return False
        metadata = {k.lower(): v for k, v in (found.get("Metadata") or {}).items()}
        if metadata.get(UPLOAD_TOKEN) == self.token:
            return True
        etag = str(found.get("ETag", "")).strip('"')
        multipart = hashlib.md5(b"".join(self.part_md5s), usedforsecurity=False).hexdigest()
        return etag in (f"{multipart}-{len(self.parts)}", self.whole.hexdigest())

    def abort(self) -> None:
        """Discard the upload; the object is never created (a failure here is logged, a rerun cleans up)."""
        self.closed = True
        self._buffer.clear()
        self._abort_quietly()

    def _abort_quietly(self) -> None:
        if self.upload_id is None:
            return
        upload_id, self.upload_id = self.upload_id, None
        try:
            call(
                "abort_multipart_upload",
                self.url,
                "aborting the upload",
                Bucket=self.bucket,
                Key=self.key,
                UploadId=upload_id,
            )
        except S3Error as exc:
            if exc.code != "NoSuchUpload":
                log.warning("%s (a later run removes the incomplete upload)", exc)


def abort_stale_uploads(url: str) -> int:
    """Abort incomplete multipart uploads of exactly this key that started before this run (killed writers).

    Uploads of other keys, and uploads started by this run (a live writer), are never touched. Without a
    known run start (a Spark executor) nothing is aborted.
    """
    started = run_started()
    if started is None:
        return 0
    bucket, key = split(url)
    try:
        listing = call("list_multipart_uploads", url, "listing incomplete uploads", Bucket=bucket, Prefix=key)
    except S3Error as exc:
        if exc.code in ("NoSuchUpload", "AccessDenied", "403", "NotImplemented"):
            return 0  # NoSuchUpload: some stores' answer to "none"; the others: cannot list, leave them
        raise
    aborted = 0
    for upload in listing.get("Uploads", []) or []:
        initiated = upload.get("Initiated")
        if upload.get("Key") != key or initiated is None or initiated.timestamp() >= started:
            continue
        try:
            call(
                "abort_multipart_upload",
                url,
                "aborting a stale upload",
                Bucket=bucket,
                Key=key,
                UploadId=upload["UploadId"],
            )
            aborted += 1
        except S3Error as exc:
            if exc.code != "NoSuchUpload":
                log.warning("%s", exc)
    if aborted:
        log.info("%s: aborted %d incomplete upload(s) left by an earlier run", url, aborted)
    return aborted
