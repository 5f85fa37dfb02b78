"""Whole-object S3 transfers for `dolma.io`: resumable reads (`S3Reader`) and atomic uploads (`S3Upload`).

Uploads are our own (boto3's multipart API) rather than smart-open's or s3transfer's, for three things they
do not give: completion that is idempotent when the answer to CompleteMultipartUpload is lost (the object is
recognised by our upload token, its ETag and size), the abort of our own stale uploads of the same key left by
a killed earlier run (never a live run's: only uploads initiated before this run started), and messages that
name the object. Reads resume with a ranged GET after a connection dies mid-body, pinned to the object's ETag.
Every request goes through `dolma.s3.call` (its retries, deadline and errors).
"""

from __future__ import annotations

import hashlib
import io as _stdio
import logging
import time
import uuid
from typing import Any

from dolma import s3
from dolma.errors import S3Error

log = logging.getLogger("dolma")

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
        self.bucket, self.key = s3.split(url)
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
            response = s3.call("get_object", self.url, "reading", **params)
        except S3Error as exc:
            if exc.code in s3.NOT_FOUND:
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
                last = s3.words(exc)
                self._drop_body()
                elapsed = time.monotonic() - t0
                if failures >= s3.settings().max_attempts or elapsed >= s3.settings().request_deadline:
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
        self.bucket, self.key = s3.split(url)
        self.part_size = s3.settings().part_size
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
        response = s3.call(
            "create_multipart_upload",
            self.url,
            "starting a multipart upload",
            Bucket=self.bucket,
            Key=self.key,
            Metadata={UPLOAD_TOKEN: self.token},
        )
        self.upload_id = response["UploadId"]
        if s3.last_call_attempts() > 1:
            # an earlier attempt may have created an upload whose answer was lost: abort it, it is ours
            self._abort_twins(before - 1.0, time.time() + 1.0)

    def _abort_twins(self, start: float, end: float) -> None:
        """Abort other uploads of this key initiated during our own (retried) CreateMultipartUpload."""
        try:
            listing = s3.call(
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
                    s3.call(
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
        response = s3.call(
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
            s3.call(
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
            s3.call(
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
            found = s3.head(self.url, "checking whether the upload completed")
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
            s3.call(
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
    started = s3.run_started()
    if started is None:
        return 0
    bucket, key = s3.split(url)
    try:
        listing = s3.call("list_multipart_uploads", url, "listing incomplete uploads", Bucket=bucket, Prefix=key)
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
            s3.call(
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
