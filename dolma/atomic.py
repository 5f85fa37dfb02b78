"""Atomic writes to local disk and S3, and the one naming rule of temporaries.

Locally a file is written to a hidden temporary name that is renamed on success; on S3 through one PUT or a
multipart upload that creates the object only when the file is complete (a failed writer aborts its upload; one
left by a killed run is aborted when a later run writes the same key). A temporary's name says which host and
process own it, so a later run can remove a dead run's leftovers and leave a live run's work alone.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import re
import socket
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, Any

import zstandard

from dolma import s3_transfer
from dolma.compression import compression_of
from dolma.io import READ_CHUNK, basename, dirname, is_s3, iter_chunks, join, makedirs, open_raw_read, split_s3

log = logging.getLogger("dolma")


def host_tag(hostname: str | None = None) -> str:
    """This machine's name as it appears in temporary names: characters other than letters, digits, `.`, `-`
    and `_` become `_` (the Rust writers apply the same rule, so both name their temporaries alike)."""
    name = socket.gethostname() if hostname is None else hostname
    return _NOT_HOST.sub("_", name)[:64] or "localhost"


_NOT_HOST = re.compile(r"[^A-Za-z0-9._-]")
# `.<name>.tmp-<host>-<pid>-<8 hex>`: the one naming rule of temporaries, in Python and in Rust (dolma-core
# `tempname`). The host and pid say which run owns the file, so a later run can tell a dead run's leftovers
# from a live run's work in progress.
_TEMP_NAME = re.compile(r"\.(?P<name>.+)\.tmp-(?P<host>[A-Za-z0-9._-]+)-(?P<pid>[0-9]+)-[0-9a-f]{8}")


def temp_name(path: str) -> str:
    """The hidden sibling a local file is written to before the final rename (names this host and process)."""
    return join(dirname(path), f".{basename(path)}.tmp-{host_tag()}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def temp_owner(name: str) -> tuple[str, int] | None:
    """(host, pid) of a file name that follows the temporary naming rule, else None."""
    found = _TEMP_NAME.fullmatch(name)
    return (found.group("host"), int(found.group("pid"))) if found else None


def temp_target(name: str) -> str | None:
    """The name of the file a temporary (named by the temporary naming rule) is written for, else None."""
    found = _TEMP_NAME.fullmatch(name)
    return found.group("name") if found else None


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine (a zombie or another user's process counts)."""
    if pid <= 0:
        return True  # not a process id we wrote: never treat it as dead
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_dead_temporaries(directories: Iterable[str]) -> list[str]:
    """Delete temporaries that killed runs on this machine left in these directories; returns what was removed.

    Only files named by the temporary naming rule, written by this host, whose process no longer exists, are
    removed: a live run's work in progress, another machine's files (a shared file system) and any other file
    are left alone. S3 prefixes are skipped (an upload that never completed leaves no object).
    """
    me = host_tag()
    removed: list[str] = []
    for directory in dict.fromkeys(directories):
        if not directory or is_s3(directory):
            continue
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            if not entry.name.startswith(".") or ".tmp-" not in entry.name:
                continue
            owner = temp_owner(entry.name)
            if owner is None or owner[0] != me or owner[1] == os.getpid() or pid_alive(owner[1]):
                continue
            try:
                if entry.is_file(follow_symlinks=False):
                    os.remove(entry.path)
                    removed.append(entry.path)
            except FileNotFoundError:
                pass
    if removed:
        log.info("removed %d temporary file(s) left by runs that were stopped", len(removed))
    return removed


@dataclass
class _Sink:
    raw: IO[bytes]
    path: str
    temp: str | None


class AtomicWriter:
    """A binary, compressing writer that makes its file appear only when closed without error.

    Use as a context manager: on an exception the partial file is discarded (local temp removed, S3 upload
    aborted) and the exception propagates. A process killed mid-write leaves at most a hidden temp file.
    """

    def __init__(self, path: str, compression: str | None = "infer", level: int | None = None):
        self.path = path
        self.compression = compression_of(path) if compression == "infer" else compression
        self.bytes_written = 0
        self._closed = False
        self._sink = self._open_sink()
        self._stream: Any = self._wrap(self._sink.raw, level)

    def _open_sink(self) -> _Sink:
        if is_s3(self.path):
            split_s3(self.path)
            return _Sink(raw=s3_transfer.S3Upload(self.path), path=self.path, temp=None)
        parent = dirname(self.path)
        makedirs(parent)
        temp = temp_name(self.path)
        return _Sink(raw=open(temp, "wb"), path=self.path, temp=temp)

    def _wrap(self, raw: IO[bytes], level: int | None) -> Any:
        if self.compression == "gzip":
            return gzip.GzipFile(
                filename="", fileobj=raw, mode="wb", compresslevel=6 if level is None else level, mtime=0
            )
        if self.compression == "zstd":
            cctx = zstandard.ZstdCompressor(level=3 if level is None else level)
            return cctx.stream_writer(raw, closefd=False)
        return raw

    def write(self, data: bytes) -> int:
        self.bytes_written += len(data)
        return self._stream.write(data)

    def close(self) -> None:
        """Finish the file and publish it under its final name."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._stream is not self._sink.raw:
                if self.compression == "zstd":
                    self._stream.flush(zstandard.FLUSH_FRAME)
                self._stream.close()
            if self._sink.temp is not None:
                self._sink.raw.flush()
                os.fsync(self._sink.raw.fileno())
                self._sink.raw.close()
                os.replace(self._sink.temp, self.path)
            else:
                self._sink.raw.close()
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Discard everything written so far; the final name is never created."""
        self._closed = True
        if self._sink.temp is not None:
            with contextlib.suppress(Exception):
                self._sink.raw.close()
            with contextlib.suppress(FileNotFoundError):
                os.remove(self._sink.temp)
        else:
            self._sink.raw.abort()

    def __enter__(self) -> AtomicWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_bytes(path: str, data: bytes) -> None:
    with AtomicWriter(path) as out:
        out.write(data)


def copy(src: str, dst: str) -> None:
    """Copy a file between any two locations, re-compressing when the extensions differ."""
    same = compression_of(src) == compression_of(dst)
    with AtomicWriter(dst, compression=None if same else "infer") as out:
        if same:
            with open_raw_read(src) as raw:
                while block := raw.read(READ_CHUNK):
                    out.write(block)
        else:
            for chunk in iter_chunks(src):
                out.write(chunk)
