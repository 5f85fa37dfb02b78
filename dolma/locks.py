"""A lock per output destination, so two runs never write the same outputs at once.

Locally the lock is a hidden file created with O_EXCL that records who holds it (host, pid, the pid's start
time, when); a later run on the same host recognises it as stale when that process is gone (or the pid now
belongs to another process) and takes it over. On S3 it is a small object written with `If-None-Match: *`
(stores that ignore the condition - rclone, older MinIO - get a check-then-write-then-read-back, which
narrows the race to milliseconds but cannot close it). An S3 lock of a dead run on another host cannot be
recognised: the message names it so the user can delete it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from typing import Any

import msgspec

from dolma import io
from dolma.errors import DolmaError, S3Error

UNREADABLE_GRACE = 10.0
"""Seconds after which an empty or unreadable local lock file counts as left by a killed run."""


class LockedError(DolmaError):
    """Another run holds the lock of a destination."""


class Owner(msgspec.Struct, forbid_unknown_fields=False):
    host: str
    pid: int
    pid_started: int | None
    since: float
    command: str
    token: str


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def _host() -> str:
    """This machine (and boot: a pid from before a reboot is always dead)."""
    boot = _boot_id()
    return f"{socket.gethostname()}/{boot[:8]}" if boot else socket.gethostname()


def _pid_started(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (tells a reused pid apart); None if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    fields = stat[stat.rindex(b")") + 2 :].split()
    return int(fields[19])


def _alive(owner: Owner) -> bool | None:
    """True/False for a process on this host; None when it runs elsewhere (cannot tell)."""
    if owner.host != _host():
        return None
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if owner.pid_started is not None:
        started = _pid_started(owner.pid)
        if started is not None and started != owner.pid_started:
            return False
    return True


def _describe(owner: Owner | None) -> str:
    if owner is None:
        return "an unknown run"
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner.since))
    return f"'{owner.command}' (pid {owner.pid} on {owner.host.split('/')[0]}, since {when})"


class DestinationLock:
    """Held while a run writes `what` under a destination; `release()` (or the context manager) frees it."""

    def __init__(self, path: str, what: str, command: str):
        self.path = path
        self.what = what
        self.owner = Owner(
            host=_host(),
            pid=os.getpid(),
            pid_started=_pid_started(os.getpid()),
            since=time.time(),
            command=command,
            token=uuid.uuid4().hex,
        )
        self.held = False
        self._made: list[str] = []

    # -- acquiring ------------------------------------------------------------------------------------------

    def acquire(self) -> DestinationLock:
        for _ in range(3):  # a stale lock is removed, then taken; a race for it is lost at most twice
            if io.is_s3(self.path):
                taken, holder = self._try_s3()
            else:
                try:
                    taken, holder = self._try_local()
                except OSError as exc:
                    self.release()
                    reason = exc.strerror or str(exc)
                    raise DolmaError(
                        f"cannot create the lock {self.path}: {reason} (is the destination writable?)"
                    ) from None
            if taken:
                self.held = True
                return self
            if holder is not None and _alive(holder) is False:
                self._break(holder)
                continue
            if holder is None and self._unreadable_for(UNREADABLE_GRACE):
                with contextlib.suppress(FileNotFoundError):
                    io.remove(self.path)  # a run killed between creating and filling its lock file
                continue
            self.release()
            raise self._locked(holder)
        self.release()
        raise self._locked(self._read())

    def _locked(self, holder: Owner | None) -> LockedError:
        hint = (
            "wait for it to finish"
            if holder is not None and _alive(holder)
            else "wait for it to finish, or if that run is gone, delete the lock"
        )
        who = _describe(holder)
        return LockedError(f"{self.what} is being written by another run {who}: lock {self.path}; {hint}")

    def _try_local(self) -> tuple[bool, Owner | None]:
        parent = io.dirname(self.path)
        while parent and not os.path.isdir(parent) and parent not in self._made:
            self._made.append(parent)  # removed again on release if still empty: a failed run leaves nothing
            parent = io.dirname(parent)
        io.makedirs(io.dirname(self.path))
        # written in full under a private name, then linked to the lock name: link() fails if the lock exists,
        # so the lock appears atomically with its owner inside (no reader ever sees an empty lock file)
        temp = f"{self.path}.{self.owner.token}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, msgspec.json.encode(self.owner))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temp, self.path)
        except FileExistsError:
            return False, self._read()
        except OSError:  # a filesystem without hard links: exclusive create, then fill
            return self._try_exclusive()
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(temp)
        return True, None

    def _try_exclusive(self) -> tuple[bool, Owner | None]:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False, self._read()
        try:
            os.write(fd, msgspec.json.encode(self.owner))
            os.fsync(fd)
        finally:
            os.close(fd)
        return True, None

    def _try_s3(self) -> tuple[bool, Owner | None]:
        from dolma import s3

        holder = self._read()
        if holder is not None:
            return False, holder
        bucket, key = s3.split(self.path)
        condition = {"IfNoneMatch": "*"} if s3.supports("PutObject", "IfNoneMatch") else {}
        try:
            s3.call(
                "put_object",
                self.path,
                "taking the lock",
                Bucket=bucket,
                Key=key,
                Body=msgspec.json.encode(self.owner),
                **condition,
            )
        except S3Error as exc:
            if exc.code in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False, self._read()
            raise
        holder = self._read()  # a store that ignored the condition: the last writer holds it
        return (holder is not None and holder.token == self.owner.token), holder

    def _unreadable_for(self, seconds: float) -> bool:
        """The lock file exists, cannot be read as an owner, and is older than `seconds`."""
        if io.is_s3(self.path):
            return False  # written by one PUT: never half-written
        try:
            return time.time() - os.path.getmtime(self.path) > seconds
        except OSError:
            return False

    def _read(self) -> Owner | None:
        try:
            return msgspec.json.decode(io.read_bytes(self.path), type=Owner)
        except (OSError, msgspec.DecodeError, DolmaError):
            return None

    def _break(self, holder: Owner) -> None:
        """Remove a dead run's lock, if it still is that run's (re-read just before; two runs breaking the same
        dead lock in the same microseconds could still both proceed)."""
        again = self._read()
        if again is not None and again.token != holder.token:
            return
        with contextlib.suppress(FileNotFoundError):
            io.remove(self.path)

    # -- releasing ------------------------------------------------------------------------------------------

    def release(self) -> None:
        if self.held:
            self.held = False
            holder = self._read()
            if holder is None or holder.token == self.owner.token:  # else: a user deleted it, another run took it
                with contextlib.suppress(FileNotFoundError, DolmaError):
                    io.remove(self.path)
        for made in self._made:  # innermost first
            with contextlib.suppress(OSError):
                os.rmdir(made)
        self._made.clear()

    def __enter__(self) -> DestinationLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
