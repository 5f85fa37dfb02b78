"""How runs stop: SIGTERM stops a run the way Ctrl-C does, and worker processes never outlive their parent.

Why: schedulers, `timeout`, systemd and Kubernetes stop jobs with SIGTERM (and kill -9 after a grace period).
The main process turns SIGTERM into `Terminated`, a KeyboardInterrupt, so every clean-up path written for
Ctrl-C (writers discard their temporaries, the pool's workers are stopped, Spark jobs are cancelled) runs
for it too, and the command exits 143. Workers stop at the same signals, discard their partial outputs and
exit; and they ask the kernel to send them SIGTERM when their parent dies (Linux `PR_SET_PDEATHSIG`; a
watchdog thread elsewhere), so a parent killed with kill -9 leaves no worker, and with them the
multiprocessing resource tracker (which exits when the last process holding its pipe is gone), behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator

EXIT_TERMINATED = 128 + signal.SIGTERM
EXIT_INTERRUPTED = 128 + signal.SIGINT
PR_SET_PDEATHSIG = 1


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM: stop cleanly, as for Ctrl-C."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


def install_stop_handlers() -> None:
    """In a command's main process: SIGTERM raises `Terminated` (SIGINT keeps raising KeyboardInterrupt)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)


def exit_code(exc: KeyboardInterrupt) -> int:
    return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED


# ----------------------------------------------------------------------------------------------------------
# Worker processes
# ----------------------------------------------------------------------------------------------------------

_busy = False


def _worker_stop(signum: int, frame: object) -> None:
    # Inside a unit, raise so that the unit's writers discard their temporaries on the way out (the worker
    # then exits, see `unit_scope`); between units there is nothing to clean up.
    if _busy:
        raise Terminated()
    os._exit(128 + signum)


@contextlib.contextmanager
def unit_scope() -> Iterator[None]:
    """Run one unit in a worker: a stop signal during it unwinds the unit (clean-up runs), then the worker exits."""
    global _busy
    _busy = True
    try:
        yield
    except KeyboardInterrupt as exc:
        sys.stderr.flush()
        os._exit(exit_code(exc))
    finally:
        _busy = False


def prepare_worker(parent_pid: int) -> None:
    """In a freshly started worker: stop cleanly on SIGTERM / SIGINT, and die when `parent_pid` dies."""
    signal.signal(signal.SIGTERM, _worker_stop)
    signal.signal(signal.SIGINT, _worker_stop)
    die_with_parent(parent_pid)


def die_with_parent(parent_pid: int) -> None:
    """Get SIGTERM when the parent process exits, however it exits (kill -9 included)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
        if armed:
            # The parent may have died before prctl took effect: then no signal will ever come.
            if os.getppid() != parent_pid:
                os._exit(EXIT_TERMINATED)
            return
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="dolma-parent-watch", daemon=True).start()


def _watch_parent(parent_pid: int, interval: float = 1.0) -> None:
    while os.getppid() == parent_pid:
        time.sleep(interval)
    os.kill(os.getpid(), signal.SIGTERM)


def descendants(pid: int | None = None) -> set[int]:
    """Process ids below `pid` (default: this process) in the process tree; empty where /proc is not available."""
    parents: dict[int, int] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return set()
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                data = fh.read()
        except OSError:
            continue
        fields = data[data.rindex(")") + 2 :].split()
        if fields[0] not in ("Z", "X"):
            parents[int(name)] = int(fields[1])
    found: set[int] = set()
    todo = [os.getpid() if pid is None else pid]
    while todo:
        current = todo.pop()
        for child, parent in parents.items():
            if parent == current and child not in found:
                found.add(child)
                todo.append(child)
    return found
