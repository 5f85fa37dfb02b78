"""Model files: resolve a local path or fetch an `s3://` (or http) model once into a local cache.

Concurrent workers on one machine share a lock, so a model is downloaded exactly once; the cached file
appears atomically. A download is checked before it is cached: all the bytes the server announced arrived, and
the size and SHA-256 equal the expected ones when the caller knows them. Size and SHA-256 of every cached file
are recorded beside the cache (model-records/), so later runs check a cached copy without reading it again. Nothing
is downloaded unless a URL is given (by the user, or as a tagger's documented default model).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os

from dolma import atomic, io
from dolma.errors import TaggerError

log = logging.getLogger("dolma")


def cache_base() -> str:
    return os.environ.get("DOLMA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "dolma-toolkit"
    )


def cache_dir() -> str:
    path = os.path.join(cache_base(), "models")
    os.makedirs(path, exist_ok=True)
    return path


def is_remote(path: str) -> bool:
    return path.startswith(("s3://", "http://", "https://"))


def cached_path(url: str) -> str:
    """Where the cache keeps the model fetched from `url` (one file per URL)."""
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return os.path.join(cache_dir(), f"{digest}-{io.basename(url)}")


def resolve_model(path_or_url: str, what: str = "model", sha256: str | None = None, size: int | None = None) -> str:
    """A local file path for a model given as a local path, `s3://` URL or `http(s)://` URL.

    A URL is fetched into the cache once; `sha256` / `size`, when given, must match the fetched file (a cached copy
    that does not match is fetched again, and a download that does not match is an error and is not cached). A
    local file is used as it is.
    """
    if sha256 is not None:
        sha256 = sha256.lower()
    if is_remote(path_or_url):
        local = cached_path(path_or_url)
        if os.path.exists(local) and _cached_copy_matches(local, path_or_url, sha256, size):
            return local
        lock_path = local + ".lock"
        try:
            with open(lock_path, "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    if not (os.path.exists(local) and _cached_copy_matches(local, path_or_url, sha256, size)):
                        _forget(local)
                        _download(path_or_url, local, what, sha256, size)
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)
        finally:
            with contextlib.suppress(OSError):
                os.remove(lock_path)
        return local
    local = os.path.abspath(os.path.expanduser(path_or_url))
    if not os.path.isfile(local):
        raise TaggerError(f"{what} file not found: {path_or_url}")
    return local


def file_digest(path: str) -> tuple[int, str]:
    """(size in bytes, SHA-256 hex digest) of a local file."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while block := fh.read(io.READ_CHUNK):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def _check_pins(what: str, got_size: int, got_sha: str, sha256: str | None, size: int | None) -> None:
    if size is not None and got_size != size:
        raise TaggerError(f"{what}: {got_size} bytes, expected {size} (wrong or damaged file)")
    if sha256 is not None and got_sha != sha256:
        raise TaggerError(f"{what}: SHA-256 {got_sha}, expected {sha256} (wrong or damaged file)")


def _record_path(local: str) -> str:
    return os.path.join(cache_base(), "model-records", os.path.basename(local) + ".json")


def _read_record(local: str) -> dict | None:
    try:
        with open(_record_path(local), encoding="utf-8") as fh:
            record = json.load(fh)
    except (OSError, ValueError):
        return None
    ok = isinstance(record, dict) and isinstance(record.get("size"), int) and isinstance(record.get("sha256"), str)
    return record if ok else None


def _write_record(local: str, url: str, size: int, sha256: str) -> None:
    path = _record_path(local)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = atomic.temp_name(path)
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"url": url, "size": size, "sha256": sha256}, fh)
    os.replace(tmp, path)


def _cached_copy_matches(local: str, url: str, sha256: str | None, size: int | None) -> bool:
    """Whether the cached copy of `url` is whole (its recorded size) and matches the expected size and SHA-256.

    A copy cached before records existed is hashed once, when there is something to check it against.
    """
    record = _read_record(local)
    if record is None:
        if sha256 is None and size is None:
            return True
        got_size, got_sha = file_digest(local)
        _write_record(local, url, got_size, got_sha)
        record = {"size": got_size, "sha256": got_sha}
    try:
        actual = os.path.getsize(local)
    except OSError:
        return False
    if actual != record["size"]:
        log.warning("cached model %s has %d bytes, not %d: fetching it again", local, actual, record["size"])
        return False
    if (size is not None and record["size"] != size) or (sha256 is not None and record["sha256"] != sha256):
        log.warning("cached model %s does not match the expected size / SHA-256: fetching it again", local)
        return False
    return True


def _forget(local: str) -> None:
    for path in (local, _record_path(local)):
        with contextlib.suppress(OSError):
            os.remove(path)


FASTTEXT_MAGIC = 793712314
"""The first little-endian int32 of every fastText model file (.bin and quantized .ftz)."""


def check_fasttext_model(path_or_url: str, what: str) -> str:
    """Resolve a fastText model (fetching a URL into the cache) and check that it is one; returns the local path.

    Reads only the file's header: the model itself loads later, lazily, in each worker.
    """
    local = resolve_model(path_or_url, what)
    try:
        with open(local, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise TaggerError(f"{what} {path_or_url}: cannot be read ({exc.strerror or exc})") from None
    if len(head) < 8 or int.from_bytes(head[:4], "little") != FASTTEXT_MAGIC:
        raise TaggerError(f"{what} {path_or_url}: not a fastText model file (.bin or .ftz)")
    return local


def _download(url: str, local: str, what: str, sha256: str | None, size: int | None) -> None:
    """Stream `url` into a temporary file, check it, then move it into place and record its size and SHA-256."""
    tmp = atomic.temp_name(local)
    digest = hashlib.sha256()
    received = 0
    announced: int | None = None
    try:
        try:
            if url.startswith("s3://"):
                src_cm = io.open_raw_read(url)
            else:
                import urllib.request

                src_cm = urllib.request.urlopen(url, timeout=60)
                length = src_cm.headers.get("Content-Length")
                announced = int(length) if length and length.isdigit() else None
            with src_cm as src, open(tmp, "wb") as dst:
                while block := src.read(io.READ_CHUNK):
                    digest.update(block)
                    received += len(block)
                    dst.write(block)
        except Exception as exc:
            reason = getattr(exc, "reason", None) or exc
            raise TaggerError(f"cannot fetch {url}: {reason}") from None
        if announced is not None and received != announced:
            raise TaggerError(f"cannot fetch {url}: the transfer stopped after {received} of {announced} bytes")
        _check_pins(f"{what} downloaded from {url}", received, digest.hexdigest(), sha256, size)
        os.replace(tmp, local)
    finally:
        with contextlib.suppress(OSError):
            os.remove(tmp)
    _write_record(local, url, received, digest.hexdigest())
    log.info("fetched %s (%d bytes, SHA-256 %s) into %s", url, received, digest.hexdigest(), local)
