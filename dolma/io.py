"""File I/O on local disk and S3: paths, globbing, listing, streaming reads decompressed by extension.

Paths are plain strings; `s3://bucket/key` URLs go to S3 through `dolma.s3` (boto3, bounded retries, errors
that name the object) and `dolma.s3_transfer`. Reading is streaming with constant memory (the decoders are
dolma.compression's). Writing is atomic and lives in `dolma.atomic`.
"""

from __future__ import annotations

import contextlib
import glob as _glob
import logging
import os
import re
import zlib
from collections.abc import Iterator
from typing import IO

import msgspec
import zstandard

from dolma import s3, s3_transfer
from dolma.compression import Decoder, compression_of
from dolma.errors import ConfigError, CorruptFileError, DolmaError, S3Error
from dolma.s3 import S3Config

READ_CHUNK = 1 << 20

log = logging.getLogger("dolma")


# ----------------------------------------------------------------------------------------------------------
# S3 configuration (the requests themselves live in dolma.s3)
# ----------------------------------------------------------------------------------------------------------


def configure_s3(config: S3Config | None) -> None:
    """Set the S3 options for this process (workers receive them with their job)."""
    s3.configure(config)


def s3_settings() -> S3Config:
    return s3.settings()


def s3_client():
    """The boto3 S3 client of this process (with dolma's retry deadline and error hooks)."""
    return s3.client()


def is_s3(path: str) -> bool:
    return path.startswith("s3://")


def split_s3(url: str) -> tuple[str, str]:
    if not is_s3(url):
        raise ValueError(f"not an s3:// URL: {url}")
    bucket, _, key = url[len("s3://") :].partition("/")
    if not bucket:
        raise DolmaError(f"S3 URL without a bucket: {url}")
    return bucket, key


# ----------------------------------------------------------------------------------------------------------
# Paths
# ----------------------------------------------------------------------------------------------------------


def normalize(path: str) -> str:
    """Absolute local paths (relative ones are resolved once, at configuration time); S3 URLs unchanged."""
    if is_s3(path):
        return path
    return os.path.abspath(os.path.expanduser(path))


def join(base: str, *parts: str) -> str:
    out = base.rstrip("/")
    for part in parts:
        part = part.strip("/")
        if part:
            out = f"{out}/{part}"
    return out


def dirname(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


def basename(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def has_magic(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def glob_base(pattern: str) -> str:
    """The directory part of a pattern before its first wildcard (the pattern itself if it has none)."""
    if not has_magic(pattern):
        return dirname(pattern)
    parts = pattern.split("/")
    fixed: list[str] = []
    for part in parts:
        if has_magic(part):
            break
        fixed.append(part)
    return "/".join(fixed)


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Translate a glob with `**` (any depth, including none), `*`, `?` and `[...]` into a regex."""
    out: list[str] = []
    i = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif ch == "*":
            out.append("[^/]*")
            i += 1
        elif ch == "?":
            out.append("[^/]")
            i += 1
        elif ch == "[":
            j = pattern.find("]", i + 1)
            if j == -1:
                out.append(re.escape(ch))
                i += 1
            else:
                body = pattern[i + 1 : j]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = j + 1
        else:
            out.append(re.escape(ch))
            i += 1
    return re.compile("".join(out) + r"\Z")


def _hidden(path: str) -> bool:
    return basename(path).startswith(".")


def glob(pattern: str) -> list[str]:
    """Sorted list of files matching a pattern, locally or on S3. Hidden files (temporaries) are skipped."""
    if is_s3(pattern):
        return _glob_s3(pattern)
    pattern = normalize(pattern)
    if not has_magic(pattern):
        return [pattern] if os.path.isfile(pattern) else []
    return sorted(p for p in _glob.glob(pattern, recursive=True) if os.path.isfile(p) and not _hidden(p))


def _glob_s3(pattern: str) -> list[str]:
    bucket, key_pattern = split_s3(pattern)
    if not has_magic(key_pattern):
        return [pattern] if exists(pattern) else []
    prefix = key_pattern
    for idx, ch in enumerate(key_pattern):
        if ch in "*?[":
            prefix = key_pattern[:idx]
            break
    regex = _glob_regex(key_pattern)
    found = []
    for key in _s3_list_keys(bucket, prefix):
        if regex.match(key) and not _hidden(key):
            found.append(f"s3://{bucket}/{key}")
    return sorted(found)


def _s3_list_keys(bucket: str, prefix: str) -> Iterator[str]:
    return s3.list_keys(bucket, prefix)


def expand_globs(patterns: list[str] | str) -> list[str]:
    """Expand several patterns into one sorted, de-duplicated file list."""
    if isinstance(patterns, str):
        patterns = [patterns]
    seen: dict[str, None] = {}
    for pattern in patterns:
        for path in glob(pattern):
            seen.setdefault(path, None)
    return sorted(seen)


def expand_documents(patterns: list[str], where: str) -> list[str]:
    """`expand_globs` for a command's documents patterns, each of which must match a file: a mistyped pattern
    beside a correct one is an error naming it, not a silently smaller run."""
    for pattern in patterns:
        if not glob(normalize(pattern)):
            raise ConfigError(f"{where}: no files match documents pattern '{pattern}'")
    return expand_globs([normalize(p) for p in patterns])


def exists(path: str) -> bool:
    if is_s3(path):
        split_s3(path)
        return s3.head(path, "checking whether it exists") is not None
    return os.path.exists(path)


def size(path: str) -> int:
    if is_s3(path):
        split_s3(path)
        found = s3.head(path, "reading its size")
        if found is None:
            raise S3Error(path, "no such object", code="NoSuchKey")
        return int(found["ContentLength"])
    return os.path.getsize(path)


class FileInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What identifies a file's version cheaply: its size, plus its mtime (local) or ETag (S3)."""

    size: int
    mtime_ns: int | None = None
    etag: str | None = None


def info(path: str) -> FileInfo:
    """Size and version stamp of a file, without reading it (one stat, or one HEAD request on S3)."""
    if is_s3(path):
        bucket, key = split_s3(path)
        head = s3_client().head_object(Bucket=bucket, Key=key)
        return FileInfo(size=int(head["ContentLength"]), etag=str(head.get("ETag", "")).strip('"') or None)
    st = os.stat(path)
    return FileInfo(size=st.st_size, mtime_ns=st.st_mtime_ns)


def remove(path: str) -> None:
    if is_s3(path):
        bucket, key = split_s3(path)
        s3.call("delete_object", path, "deleting", Bucket=bucket, Key=key)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def listdir(path: str) -> list[str]:
    """Sorted names directly under a directory, hidden ones and subdirectories included; [] when there is none."""
    if is_s3(path):
        bucket, key = split_s3(path)
        prefix = key.rstrip("/") + "/" if key.strip("/") else ""
        names: set[str] = set()
        paginator = s3_client().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
            for obj in page.get("Contents", []) or []:
                names.add(obj["Key"][len(prefix) :])
            for sub in page.get("CommonPrefixes", []) or []:
                names.add(sub["Prefix"][len(prefix) :].rstrip("/"))
        return sorted(n for n in names if n)
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []


def list_prefix(path: str) -> list[str]:
    """Every file below a directory (on S3: every object under `path/`), as full paths / URLs, sorted."""
    if is_s3(path):
        bucket, key = split_s3(path)
        return [f"s3://{bucket}/{k}" for k in sorted(_s3_list_keys(bucket, key.rstrip("/") + "/"))]
    out = []
    for top, _dirs, names in os.walk(path):
        out.extend(os.path.join(top, name) for name in names)
    return sorted(out)


def check_destinations(paths: list[str]) -> None:
    """Fail early, once per bucket, when S3 outputs cannot be written: missing bucket, bad credentials, no
    endpoint (local paths are checked when written)."""
    buckets: dict[str, str] = {}
    for path in paths:
        if is_s3(path):
            buckets.setdefault(split_s3(path)[0], path)
    for url in buckets.values():
        s3.check_bucket(url, "checking the output bucket")


def makedirs(path: str) -> None:
    if not is_s3(path) and path:
        os.makedirs(path, exist_ok=True)


# ----------------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------------


def open_raw_read(path: str) -> IO[bytes]:
    """A binary stream of the stored bytes (no decompression)."""
    if is_s3(path):
        split_s3(path)
        return s3_transfer.S3Reader(path)
    return open(path, "rb")


def iter_chunks(path: str, chunk_size: int = READ_CHUNK, compression: str | None = "infer") -> Iterator[bytes]:
    """Decompressed content of a file, chunk by chunk; a truncated or corrupt file raises CorruptFileError.

    `compression` is "infer" (from the extension), "gzip", "zstd" or None (plain).
    """
    kind = compression_of(path) if compression == "infer" else compression
    decoder = Decoder(kind)
    try:
        raw = open_raw_read(path)
    except FileNotFoundError as exc:
        raise DolmaError(f"{path}: no such file") from exc
    with raw:
        while True:
            block = raw.read(chunk_size)
            if not block:
                break
            try:
                yield from decoder.feed(block)
            except (zlib.error, zstandard.ZstdError, EOFError) as exc:
                raise CorruptFileError(path, f"cannot decompress {kind} data: {exc}") from exc
    if not decoder.finished_cleanly():
        raise CorruptFileError(path, f"truncated {kind} file: the compressed stream ends before its end marker")


def iter_lines(path: str, compression: str | None = "infer") -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line without its trailing newline) for every line; streaming, constant memory."""
    lineno = 0
    pending = b""
    for chunk in iter_chunks(path, compression=compression):
        if pending:
            chunk = pending + chunk
        lines = chunk.split(b"\n")
        pending = lines.pop()
        for line in lines:
            lineno += 1
            yield lineno, line
    if pending:
        lineno += 1
        yield lineno, pending


def read_bytes(path: str) -> bytes:
    return b"".join(iter_chunks(path))


def read_text(path: str) -> str:
    return read_bytes(path).decode("utf-8")
