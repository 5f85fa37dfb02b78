"""Document ids, timestamps and URLs of WARC records (pure functions: no WARC library needed)."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from urllib.parse import urlsplit, urlunsplit

_UUID_URN = re.compile(r"^<?urn:uuid:([0-9a-fA-F-]{36})>?$")
_WWW = re.compile(r"^www\d*\.", re.IGNORECASE)
_WARC_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z$")


def document_id(record_id: str) -> str | None:
    """The document id of a record: its WARC-Record-ID (a UUID URN), lower-case, without `<urn:uuid:` and `>`.

    Every record has its own WARC-Record-ID, so ids are unique within a crawl and the same file always gives
    the same ids. (The reference uses the payload digest, which two URLs with the same page share.) Record ids
    that are not UUID URNs are kept as they are, without the angle brackets. None when there is no id.
    """
    record_id = record_id.strip()
    if not record_id:
        return None
    match = _UUID_URN.match(record_id)
    if match:
        return match.group(1).lower()
    return record_id.strip("<>") or None


def parse_warc_date(value: str | None) -> datetime | None:
    """A WARC-Date (`2024-03-01T12:00:00Z`, optionally with fractions of a second) as a UTC datetime."""
    if not value:
        return None
    match = _WARC_DATE.match(value.strip())
    if not match:
        return None
    year, month, day, hour, minute, second, frac = match.groups()
    micro = int((frac or "0").ljust(6, "0")[:6])
    try:
        return datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=timezone.utc
        )
    except ValueError:
        return None


def dolma_timestamp(when: datetime) -> str:
    """The timestamp format of Dolma documents: `2024-03-01T12:00:00.000Z` (UTC, milliseconds)."""
    when = when.astimezone(timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def normalize_url(url: str) -> str:
    """The URL without scheme, `www.`, default port, fragment and trailing slashes; host in lower case.

    This is what `metadata.url` holds (the full URL is `metadata.warc_url`), so that the same page fetched as
    http/https, with or without `www.`, compares equal. It is a close approximation of the reference's
    normalisation, which also percent-encodes and sorts query arguments.
    """
    cleaned = url.strip().strip("<>\"'")
    try:
        parts = urlsplit(cleaned)
    except ValueError:
        return cleaned.rstrip("/")
    if not parts.scheme or not parts.netloc:
        return cleaned.rstrip("/")
    host = (parts.hostname or "").lower()
    host = _WWW.sub("", host)
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is not None and not ((parts.scheme == "http" and port == 80) or (parts.scheme == "https" and port == 443)):
        host = f"{host}:{port}"
    out = urlunsplit(("", host, parts.path or "", parts.query, ""))
    return out.lstrip("/").rstrip("/")
