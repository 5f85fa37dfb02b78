"""Model files: resolve a local path or fetch an `s3://` (or http) model once into a local cache.

Concurrent workers on one machine share a lock, so a model is downloaded exactly once; the cached file
appears atomically. Nothing is downloaded unless the user gives a URL.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os

from dolma import io
from dolma.errors import TaggerError


def cache_dir() -> str:
    base = os.environ.get("DOLMA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "dolma-toolkit"
    )
    path = os.path.join(base, "models")
    os.makedirs(path, exist_ok=True)
    return path


def resolve_model(path_or_url: str, what: str = "model") -> str:
    """A local file path for a model given as a local path, `s3://` URL or `http(s)://` URL."""
    if path_or_url.startswith(("s3://", "http://", "https://")):
        digest = hashlib.sha256(path_or_url.encode()).hexdigest()[:16]
        local = os.path.join(cache_dir(), f"{digest}-{io.basename(path_or_url)}")
        if os.path.exists(local):
            return local
        lock_path = local + ".lock"
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if not os.path.exists(local):
                    _download(path_or_url, local)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        with contextlib.suppress(OSError):
            os.remove(lock_path)
        return local
    local = os.path.abspath(os.path.expanduser(path_or_url))
    if not os.path.isfile(local):
        raise TaggerError(f"{what} file not found: {path_or_url}")
    return local


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


def _download(url: str, local: str) -> None:
    tmp = io.temp_name(local)
    try:
        if url.startswith("s3://"):
            with io.open_raw_read(url) as src, open(tmp, "wb") as dst:
                while block := src.read(io.READ_CHUNK):
                    dst.write(block)
        else:
            import urllib.request

            with urllib.request.urlopen(url, timeout=60) as src, open(tmp, "wb") as dst:
                while block := src.read(io.READ_CHUNK):
                    dst.write(block)
        os.replace(tmp, local)
    except Exception as exc:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise TaggerError(f"cannot fetch {url}: {exc}") from exc
