"""The fault suite (issue 14): every command under kill -9 (of the command or of a worker), SIGTERM, S3 faults
through the fault proxy (resets mid-answer, 503 SlowDown, delays, a server restart, a dead endpoint, a
read-only store), a full disk and a read-only destination. Criterion: byte-identical outputs (after a rerun
for killed and stopped runs), or a non-zero exit within the stated time with nothing partial visible.

`make faults` runs all cases (kill and SIGTERM cases over `FAULT_SEEDS` seeds, S3 faults over `FAULT_S3_SEEDS`)
and writes the figures into docs/faults.md; `make test` runs the few cases not marked `faults` (one seed each).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import zlib
from pathlib import Path

import pytest

from tests.conftest import REPO, S3_KEY, S3_SECRET, S3Server, _free_port
from tests.helpers.faultproxy import FaultProxy, Rule
from tests.helpers.faultsuite import (
    BOUND_DEAD_ENDPOINT,
    BOUND_DISK,
    BOUND_S3_FAULTS,
    BOUND_SIGTERM,
    COMMANDS,
    CaseResult,
    LocalStore,
    S3Store,
    Workload,
    corpus,
    kill_main,
    kill_worker,
    mix_attributes,
    partial,
    record,
    run,
    visible,
)


class Suite:
    """Session state: the corpus, one workspace per command and place, clean outputs, the S3 server and proxy."""

    def __init__(self, base: Path):
        self.base = base
        self.docs = corpus()
        (base / "configs").mkdir()
        self.server = S3Server(self._dir("s3root"), _free_port(), base / "rclone.log")
        self.proxy = FaultProxy(self.server.port)
        self.env = dict(os.environ)
        self.env.update(
            {
                "PYTHONPATH": str(REPO),
                "AWS_ACCESS_KEY_ID": S3_KEY,
                "AWS_SECRET_ACCESS_KEY": S3_SECRET,
                "AWS_ENDPOINT_URL": self.proxy.endpoint,
            }
        )
        self.attributes = mix_attributes(self.docs, self._dir("tagged"), self.env)
        self.clean: dict[tuple[str, str], tuple[dict[str, bytes], float]] = {}
        self.workloads: dict[tuple[str, str], Workload] = {}

    def _dir(self, name: str) -> Path:
        path = self.base / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def workload(self, command: str, where: str) -> Workload:
        key = (command, where)
        if key not in self.workloads:
            if where == "local":
                store = LocalStore(self._dir(f"ws-{command}"))
                wl = Workload(command, store, self.base / "configs")
            else:
                client = self.server.client()
                bucket = f"faults-{command}"
                client.create_bucket(Bucket=bucket)
                wl = Workload(command, S3Store(client, bucket), self.base / "configs", self.proxy.endpoint)
            wl.setup_inputs(self.docs, self.attributes if command == "mix" else None)
            self.workloads[key] = wl
        return self.workloads[key]

    def clean_run(self, wl: Workload) -> tuple[dict[str, bytes], float]:
        """The outputs of a run without faults (and how long it took), computed once."""
        key = (wl.command, wl.where)
        if key not in self.clean:
            self.proxy.clear()
            wl.reset_outputs()
            result = run(wl.argv(), self.env)
            assert result.code == 0, result.stderr
            outputs = visible(wl.outputs())  # hidden files are temporaries or markers (tokens' .part-N.done)
            assert outputs, f"{wl.command} on {wl.where} wrote nothing"
            self.clean[key] = (outputs, result.seconds)
        return self.clean[key]

    def close(self) -> None:
        self.proxy.close()
        self.server.stop()


@pytest.fixture(scope="session")
def suite(tmp_path_factory):
    state = Suite(tmp_path_factory.mktemp("faults"))
    try:
        yield state
    finally:
        state.close()


def _rng(*parts: object) -> random.Random:
    return random.Random(zlib.crc32(repr(parts).encode()))


def _complete_without_rerun(wl: Workload) -> bool:
    """dedupe keeps state in its filter: a run killed after saving it (and removing its checkpoint) is complete,
    and rerunning it would dedupe the corpus against itself."""
    if wl.command != "dedupe":
        return False
    files = wl.store.files("out/")
    return "out/filter.bin" in files and not any("checkpoint" in name for name in files)


def _rerun(suite: Suite, wl: Workload, result: CaseResult, clean: dict[str, bytes]) -> None:
    if not _complete_without_rerun(wl):
        again = run(wl.argv(), suite.env)
        result.runs += 1
        if again.code != 0:
            result.detail += f" rerun exit {again.code}: {again.stderr.strip()[-300:]}"
    result.identical = visible(wl.outputs()) == clean


# ----------------------------------------------------------------------------------------------------------
# kill -9 and SIGTERM
# ----------------------------------------------------------------------------------------------------------


def kill_case(suite: Suite, kind: str, command: str, where: str, seed: int) -> CaseResult:
    wl = suite.workload(command, where)
    clean, seconds = suite.clean_run(wl)
    rng = _rng(kind, command, where, seed)
    wl.reset_outputs()
    suite.proxy.clear()
    fault = {
        "kill9": kill_main(signal.SIGKILL),
        "kill9-worker": kill_worker(rng),
        "sigterm": kill_main(signal.SIGTERM),
    }[kind]
    at = rng.uniform(0.05, 0.75) * seconds
    first = run(wl.argv(), suite.env, fault, fault_at=at)
    runs = 1
    while first.fault_at is None and runs < 3:  # finished before the fault (a faster run): try earlier
        at /= 2
        wl.reset_outputs()
        first = run(wl.argv(), suite.env, fault, fault_at=at)
        runs += 1
    result = CaseResult(kind, command, where, seed, runs=runs, faults=int(first.fault_at is not None))
    result.orphans = first.orphans
    result.traceback = "Traceback" in first.stderr
    result.partial_visible = partial(wl.outputs(), clean)
    if first.code == 0:
        result.identical = visible(wl.outputs()) == clean
    else:
        if kind == "sigterm":
            result.time_to_fail = first.exit_after_fault
            result.detail = f"exit {first.code}"
            result.failed_cleanly = (
                first.exit_after_fault is not None
                and first.exit_after_fault <= BOUND_SIGTERM
                and not result.partial_visible
                and first.code != 0
            )
        _rerun(suite, wl, result, clean)
    # killed and stopped runs must also come back: the rerun completes byte-identical
    result.ok = result.identical and not result.partial_visible
    if kind == "sigterm":
        result.ok = result.ok and not result.orphans and (first.code == 0 or result.failed_cleanly)
    return result


# ----------------------------------------------------------------------------------------------------------
# S3 faults through the proxy
# ----------------------------------------------------------------------------------------------------------

S3_RULES = {  # deterministic rates (as in the issue: every 5th request reset), the seed picks the offset
    "s3-resets": lambda rng: [Rule("reset", every=5, offset=rng.randrange(5))],
    "s3-slowdown": lambda rng: [Rule("slowdown", every=6, offset=rng.randrange(6))],
    "s3-delays": lambda rng: [
        Rule("delay", every=10, offset=rng.randrange(10), seconds=1.0),
        Rule("delay", every=40, offset=rng.randrange(40), seconds=7.0),  # longer than the read timeout
    ],
}


def s3_case(suite: Suite, kind: str, command: str, seed: int) -> CaseResult:
    wl = suite.workload(command, "s3")
    clean, seconds = suite.clean_run(wl)
    rng = _rng(kind, command, seed)
    wl.reset_outputs()
    suite.proxy.clear()
    before = suite.proxy.counters.total()
    fault = None
    bound = BOUND_S3_FAULTS
    if kind in S3_RULES:
        suite.proxy.set_rules(*S3_RULES[kind](rng))
    elif kind == "s3-restart":
        fault = lambda proc: suite.server.restart(down_seconds=1.0)  # noqa: E731
    elif kind == "s3-dead":
        fault = lambda proc: suite.proxy.set_down(True)  # noqa: E731
        bound = BOUND_DEAD_ENDPOINT
    at = rng.uniform(0.1, 0.75) * seconds if fault else None
    first = run(wl.argv(), suite.env, fault, fault_at=at)
    runs = 1
    while fault is not None and at is not None and first.fault_at is None and runs < 3:  # ended before the fault
        at /= 2
        wl.reset_outputs()
        first = run(wl.argv(), suite.env, fault, fault_at=at)
        runs += 1
    suite.proxy.clear()
    suite.proxy.set_down(False)
    result = CaseResult(kind, command, "s3", seed, runs=runs)
    result.faults = suite.proxy.counters.total() - before + int(first.fault_at is not None)
    result.traceback = "Traceback" in first.stderr
    result.partial_visible = partial(wl.outputs(), clean)
    if first.code == 0:
        result.identical = visible(wl.outputs()) == clean
    else:
        took = first.exit_after_fault if first.exit_after_fault is not None else first.seconds
        result.time_to_fail = took
        result.failed_cleanly = not first.hung and took <= bound and not result.partial_visible
        result.detail = first.stderr.strip()[-400:]
        _rerun(suite, wl, result, clean)
    result.ok = (result.identical or result.failed_cleanly) and not result.partial_visible
    return result


def s3_read_only_case(suite: Suite, command: str) -> CaseResult:
    wl = suite.workload(command, "s3")
    suite.clean_run(wl)
    wl.reset_outputs()
    reader = S3Server(suite.server.root, _free_port(), suite.base / "rclone-ro.log", read_only=True)
    try:
        env = dict(suite.env, AWS_ENDPOINT_URL=reader.endpoint)
        ro = Workload(command, wl.store, wl.config_dir, reader.endpoint)
        first = run(ro.argv(), env)
    finally:
        reader.stop()
    result = CaseResult("s3-read-only", command, "s3", 0, runs=1, faults=1)
    result.traceback = "Traceback" in first.stderr
    result.partial_visible = sorted(visible(wl.outputs()))  # nothing at all may appear
    result.time_to_fail = first.seconds
    result.failed_cleanly = first.code not in (0, None) and not first.hung and not result.partial_visible
    result.detail = first.stderr.strip()[-400:]
    result.ok = result.failed_cleanly and first.seconds <= BOUND_DISK
    return result


# ----------------------------------------------------------------------------------------------------------
# Disk full and read-only destinations (tmpfs mounts: root only)
# ----------------------------------------------------------------------------------------------------------


def _can_mount() -> bool:
    return os.geteuid() == 0 and Path("/proc/filesystems").read_text().find("tmpfs") >= 0


def _mount(path: Path, options: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=False)


def disk_case(suite: Suite, kind: str, command: str) -> CaseResult:
    """disk-full: the workspace on a tmpfs too small for the outputs; read-only: outputs on a read-only tmpfs."""
    wl = suite.workload(command, "local")
    clean, _ = suite.clean_run(wl)
    assert isinstance(wl.store, LocalStore)
    root = wl.store.root
    wl.reset_outputs()
    mounts: list[Path] = []
    try:
        if kind == "disk-full":
            inputs = sum(len(v) for v in wl.store.files("in/").values())
            room = inputs + sum(len(v) for v in clean.values()) // 2 + (64 << 10)
            saved = wl.store.files("in/")
            _mount(root, f"size={room}")
            mounts.append(root)
            for rel, data in saved.items():
                wl.store.put(rel, data)
        else:
            for prefix in wl.output_prefixes():
                target = root / prefix
                _mount(target, "ro,size=1m")
                mounts.append(target)
        first = run(wl.argv(), suite.env)
        result = CaseResult(kind, command, "local", 0, runs=1, faults=1)
        result.traceback = "Traceback" in first.stderr
        result.partial_visible = partial(wl.outputs(), clean)
        result.time_to_fail = first.seconds
        in_time = not first.hung and first.seconds <= BOUND_DISK
        result.failed_cleanly = first.code not in (0, None) and in_time and not result.partial_visible
        result.identical = first.code == 0 and visible(wl.outputs()) == clean
        result.detail = first.stderr.strip()[-400:]
        result.ok = (result.identical or result.failed_cleanly) and not result.partial_visible
        return result
    finally:
        for mount in reversed(mounts):
            _umount(mount)
        if kind == "disk-full":
            wl.setup_inputs(suite.docs, suite.attributes if command == "mix" else None)


# ----------------------------------------------------------------------------------------------------------
# The cases: a few fixed ones in `make test`, all of them over many seeds in `make faults`
# ----------------------------------------------------------------------------------------------------------


def _check(result: CaseResult, injected: bool = False) -> None:
    """Record the case for the figures and assert its criterion (`injected`: a fault must have happened)."""
    record(result)
    print(f"\n{result}")
    assert result.ok, result
    if injected:
        assert result.faults > 0, "the run ended before the fault: nothing was tested"


FIXED = [
    ("kill9", "mix", "local"),
    ("kill9-worker", "tag", "local"),
    ("kill9", "tokens", "s3"),
]


@pytest.mark.parametrize("kind, command, where", FIXED)
def test_fixed_kill(suite, kind, command, where):
    _check(kill_case(suite, kind, command, where, seed=0), injected=True)


@pytest.mark.parametrize("kind, command", [("s3-resets", "tag"), ("s3-restart", "mix"), ("s3-dead", "tokens")])
def test_fixed_s3(suite, kind, command):
    _check(s3_case(suite, kind, command, seed=0), injected=True)


def pytest_generate_tests(metafunc):
    """Seeds: --fault-seeds for the kill and SIGTERM cases (a few seconds each), --fault-s3-seeds for S3 faults."""
    if "seed" in metafunc.fixturenames:
        option = "fault_s3_seeds" if metafunc.function.__name__ == "test_s3" else "fault_seeds"
        metafunc.parametrize("seed", range(metafunc.config.getoption(option)))


@pytest.mark.faults
@pytest.mark.parametrize("where", ["local", "s3"])
@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("kind", ["kill9", "kill9-worker"])
def test_kill(suite, kind, command, where, seed):
    _check(kill_case(suite, kind, command, where, seed))


@pytest.mark.faults
@pytest.mark.parametrize("command", COMMANDS)
def test_sigterm(suite, command, seed):
    _check(kill_case(suite, "sigterm", command, "local", seed))


@pytest.mark.faults
@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("kind", ["s3-resets", "s3-slowdown", "s3-delays", "s3-restart", "s3-dead"])
def test_s3(suite, kind, command, seed):
    _check(s3_case(suite, kind, command, seed))


@pytest.mark.faults
@pytest.mark.parametrize("command", COMMANDS)
def test_s3_read_only(suite, command):
    _check(s3_read_only_case(suite, command))


@pytest.mark.faults
@pytest.mark.skipif(not _can_mount(), reason="needs root to mount a small or read-only tmpfs")
@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("kind", ["disk-full", "read-only"])
def test_disk(suite, kind, command):
    _check(disk_case(suite, kind, command))
