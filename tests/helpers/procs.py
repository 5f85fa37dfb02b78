"""Process helpers for tests that stop runs: the processes a run started, and whether they are still there.

Read from /proc (Linux), so no process library is needed. A zombie (exited, not yet reaped by its new
parent) counts as gone: it holds no memory and runs no code.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, or None when there is none."""
    fields = _fields(pid)
    return None if fields is None else (fields[0], int(fields[1]))


def _fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            data = fh.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return data[data.rindex(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    """When the process started (clock ticks since boot): with the pid, it tells a process from a later one
    that reused its id."""
    fields = _fields(pid)
    return None if fields is None else int(fields[19])


def alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def children(pid: int) -> set[int]:
    """Processes whose parent is `pid`."""
    out = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = _stat(int(name))
            if stat is not None and stat[1] == pid:
                out.add(int(name))
    return out


def descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children(todo.pop()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def survivors(pids: Iterable[int], wait: float = 60.0) -> set[int]:
    """The processes among `pids` still alive after waiting up to `wait` seconds for them to go."""
    left = {pid for pid in pids if alive(pid)}
    deadline = time.monotonic() + wait
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = {pid for pid in left if alive(pid)}
    return left


def wait_for(predicate, what: str, proc=None, wait: float = 120.0) -> None:
    """Poll `predicate` until true; fail the test after `wait` seconds or when `proc` ends first."""
    deadline = time.monotonic() + wait
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the run ended (exit {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
