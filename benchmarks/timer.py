"""Run a command and report the resource usage of its whole process tree as JSON (used by harness.measure).

    python benchmarks/timer.py OUT.json -- command args...

The wrapper makes itself a child subreaper (Linux prctl), so worker processes that outlive their parent (e.g.
a multiprocessing forkserver) are re-parented to it and reaped here; their CPU time and peak RSS are then part
of RUSAGE_CHILDREN. Without this, CPU time of such workers would be missing from the numbers.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36


def main() -> int:
    out, sep, *argv = sys.argv[1:]
    if sep != "--" or not argv:
        raise SystemExit("usage: timer.py OUT.json -- command args...")
    with contextlib.suppress(OSError, AttributeError):  # not Linux: orphaned workers are not counted
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    start = time.perf_counter()
    proc = subprocess.Popen(argv)
    returncode = proc.wait()
    wall = time.perf_counter() - start
    while True:  # reap re-parented descendants so that their usage is counted
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "max_rss_mb": usage.ru_maxrss / 1024,
        "returncode": returncode,
    }
    with open(out, "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
