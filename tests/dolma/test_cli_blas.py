"""The CLI keeps numpy's OpenBLAS to one thread (its idle threads spin beside the Rust threads) unless told."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO

PROBE = """
import os, sys
if sys.argv[1] == "cli":
    from dolma.cli import main
    main(["--version"])
import numpy
numpy.polynomial.legendre.leggauss(65)  # a LAPACK call: OpenBLAS's threads start
print(os.environ.get("OPENBLAS_NUM_THREADS"), len(os.listdir("/proc/self/task")))
"""


def probe(mode: str, **env: str) -> tuple[str, int]:
    full = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    full.update(env, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, env=full, check=True)
    value, threads = out.stdout.split()[-2:]
    return value, int(threads)


def test_the_cli_runs_numpy_with_one_blas_thread_unless_the_user_sets_it():
    value, threads = probe("cli")
    assert value == "1" and threads == 1
    assert probe("cli", OPENBLAS_NUM_THREADS="2") == ("2", 2)  # the user's choice is kept
    if (os.cpu_count() or 1) > 1:  # without the CLI, OpenBLAS starts a thread per core
        assert probe("plain")[1] > 1
