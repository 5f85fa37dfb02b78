"""Stopping runs: SIGTERM behaves like Ctrl-C (clean stop, workers gone, temporaries removed, resumable,
exit 143) for tag, mix, tokens, dedupe and Spark runs; kill -9 of the main process leaves no worker (nor the
multiprocessing resource tracker) behind.

Every test runs the real command in a subprocess and checks with /proc that none of the processes it started
survives (bounded waits that fail the test; no timing assertion).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LOOPBACK_SPARK_CONF, REPO, read_jsonl, run_cli
from tests.dolma.test_dedupe import filter_bits
from tests.dolma.test_dedupe_reruns import manifest_of
from tests.helpers.procs import descendants, start_time, survivors, wait_for

STOP_WAIT = 120  # seconds a stopped run may take to exit before the test fails

BLOCKING_TAGGER = textwrap.dedent(
    """
    import os
    import time

    from dolma.documents import Span
    from dolma.registry import register
    from dolma.tagger import Tagger

    @register("blocking_test_tagger")
    class BlockingTagger(Tagger):
        '''Marks that a unit started, then waits until the test releases it.'''

        def predict(self, doc):
            markers = os.environ["BLOCK_DIR"]
            open(os.path.join(markers, f"started-{os.getpid()}-{doc.id}"), "w").close()
            while not os.path.exists(os.path.join(markers, "release")):
                time.sleep(0.01)
            return [Span(0, len(doc.text), "seen", 1.0)]
    """
)


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), **extra}


class Run:
    """A command started in the background, its output in files (a surviving worker must not hold a pipe)."""

    def __init__(self, args: list[str], env: dict[str, str], logs: Path):
        self.stderr = logs / f"stderr-{len(list(logs.glob('stderr-*')))}.txt"
        with open(self.stderr, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dolma", *args], env=env, stdout=subprocess.DEVNULL, stderr=err
            )
        self.pid = self.proc.pid
        self.started: dict[int, int | None] = {}  # pid -> start time

    def record_processes(self) -> set[int]:
        """The processes the run has started so far (remembered, so that the test can clean up after a failure)."""
        for pid in descendants(self.pid):
            self.started.setdefault(pid, start_time(pid))
        return set(self.started)

    def stop(self, sig: int) -> tuple[int, str]:
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=STOP_WAIT)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the run did not stop within {STOP_WAIT} s of signal {sig}") from None
        return self.proc.returncode, self.stderr.read_text()

    def cleanup(self) -> None:
        """Kill whatever this run left running (only when the behaviour under test failed); a process is killed
        only if it is still the one recorded (same pid and start time), never a later one that reused the id."""
        if self.proc.poll() is None:
            self.proc.kill()
        for pid in survivors(self.started, wait=0):
            if self.started[pid] is not None and start_time(pid) == self.started[pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)


@contextlib.contextmanager
def started(args: list[str], env: dict[str, str], logs: Path) -> Iterator[Run]:
    run = Run(args, env, logs)
    try:
        yield run
    finally:
        run.cleanup()


def _temporaries(root: Path) -> list[str]:
    """Hidden temporary files under root (`.<name>.tmp-...`; hidden state files such as tokens' markers are not)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob(".*.tmp-*") if p.is_file())


def _corpus(root: Path, files: int, docs: int, words: int = 12, seed: int = 0) -> str:
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(3000)]
    for f in range(files):
        path = root / "documents" / f"part-{f:02d}.jsonl.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(path, "wt", compresslevel=1) as fh:
            for i in range(docs):
                text = "\n".join(" ".join(rng.choice(vocab) for _ in range(words)) for _ in range(3))
                fh.write(json.dumps({"id": f"{f}-{i}", "text": text, "source": "s"}) + "\n")
    return str(root / "documents" / "*.jsonl.gz")


def _blocking_tag(tmp_path: Path, processes: int) -> tuple[list[str], dict[str, str], Path]:
    pattern = _corpus(tmp_path, files=4, docs=3)
    module = tmp_path / "blocking.py"
    module.write_text(BLOCKING_TAGGER)
    markers = tmp_path / "markers"
    markers.mkdir()
    args = ["tag", "--documents", pattern, "--taggers", "blocking_test_tagger", "--tagger_modules", str(module)]
    args += ["--processes", str(processes), "--quiet"]
    return args, _env(BLOCK_DIR=str(markers)), markers


def _started(markers: Path) -> int:
    return len({name.split("-")[1] for name in os.listdir(markers) if name.startswith("started-")})


@pytest.mark.parametrize("processes", [3, 1])
def test_sigterm_stops_tag_like_ctrl_c(tmp_path, processes):
    args, env, markers = _blocking_tag(tmp_path, processes)
    out = tmp_path / "attributes" / "blocking_test_tagger"
    with started(args, env, tmp_path) as run:
        wait_for(lambda: _started(markers) >= processes, f"{processes} unit(s) to start", run.proc)
        children = run.record_processes()
        assert len(children) >= (processes + 1 if processes > 1 else 0)  # the workers and the resource tracker
        assert _temporaries(out), "the units should be writing their temporaries"

        code, err = run.stop(signal.SIGTERM)
        assert code == 128 + signal.SIGTERM, err
        assert "terminated" in err and "Traceback" not in err
        assert not survivors(children), "worker processes outlived the stopped run"
    assert _temporaries(tmp_path) == [], "temporaries were left behind"
    assert not list(out.glob("*.jsonl.gz")), "no unit finished, so no output may exist"

    (markers / "release").touch()
    again = run_cli(*args, env={"BLOCK_DIR": str(markers)})
    assert again.returncode == 0, again.stderr
    assert [len(read_jsonl(p)) for p in sorted(out.glob("*.jsonl.gz"))] == [3, 3, 3, 3]


def test_kill_9_of_the_main_process_leaves_no_worker_or_tracker(tmp_path):
    args, env, markers = _blocking_tag(tmp_path, processes=3)
    with started(args, env, tmp_path) as run:
        wait_for(lambda: _started(markers) >= 3, "3 units to start", run.proc)
        children = run.record_processes()
        assert len(children) >= 4  # 3 workers and the resource tracker
        run.proc.kill()
        run.proc.wait()
        assert not survivors(children), "workers or the resource tracker outlived their killed parent"
    # The workers were stopped by their parent's death, not killed: they removed their temporaries too.
    assert _temporaries(tmp_path) == []
    (markers / "release").touch()
    again = run_cli(*args, env={"BLOCK_DIR": str(markers)})
    assert again.returncode == 0, again.stderr


MIX_CONFIG = """
streams:
  - name: m
    documents: ["{pattern}"]
    output: {{path: "{out}", max_size_in_bytes: 100000}}
processes: 3
quiet: true
"""


@pytest.mark.parametrize("command", ["mix", "tokens"])
def test_sigterm_stops_mix_and_tokens_with_their_workers(tmp_path, command):
    pattern = _corpus(tmp_path, files=6, docs=20000, words=30)
    out = tmp_path / "out"
    if command == "mix":
        config = tmp_path / "mix.yaml"
        config.write_text(MIX_CONFIG.format(pattern=pattern, out=out))
        args = ["-c", str(config), "mix"]
    else:
        args = ["tokens", "--documents", pattern, "--destination", str(out), "--processes", "3"]
        args += ["--files_per_process", "1", "--quiet"]
    with started(args, _env(), tmp_path) as run:
        # Stop while the pool is at work: its three workers exist.
        wait_for(lambda: len(run.record_processes()) >= 4, "the workers to start", run.proc)
        children = run.record_processes()
        code, err = run.stop(signal.SIGTERM)
        assert code == 128 + signal.SIGTERM, err
        assert "Traceback" not in err
        assert not survivors(children), "worker processes outlived the stopped run"
    assert _temporaries(tmp_path) == []
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr
    assert _temporaries(out) == []


DEDUPE = ["--dedupe.name", "dd", "--dedupe.paragraphs.attribute_name", "dup"]


def _dedupe_args(root: Path, pattern: str) -> list[str]:
    return [
        "dedupe", "--documents", pattern, *DEDUPE,
        "--bloom_filter.file", str(root / "filters" / "f.bin"),
        "--bloom_filter.estimated_doc_count", "1000000",
        "--bloom_filter.desired_false_positive_rate", "1e-4",
        "--processes", "2", "--checkpoint_interval", "0", "--quiet",
    ]  # fmt: skip


def test_sigterm_stops_dedupe_between_chunks_and_the_rerun_gives_the_same_bytes(tmp_path):
    clean = tmp_path / "clean"
    pattern = _corpus(clean, files=8, docs=6000, seed=1)
    assert run_cli(*_dedupe_args(clean, pattern)).returncode == 0
    expected = {p.name: p.read_bytes() for p in (clean / "attributes" / "dd").glob("*.gz")}

    root = tmp_path / "stopped"
    pattern = _corpus(root, files=8, docs=6000, seed=1)
    env = _env(DOLMA_DEDUPE_CHUNK_BYTES="20000")  # many chunks: the run stops at the next one
    out = root / "attributes" / "dd"
    with started(_dedupe_args(root, pattern), env, tmp_path) as run:
        wait_for(lambda: out.is_dir() and any(out.glob("*.gz")), "the first attributes file", run.proc)
        code, err = run.stop(signal.SIGTERM)
    assert code == 128 + signal.SIGTERM, err
    assert "terminated" in err and "Traceback" not in err
    assert _temporaries(root) == [], "temporaries were left behind"
    # The filter file is the checkpoint: saved on the way out only when it held exactly the completed files
    # (here all files are one batch, so usually not), and then recording only files whose attributes exist.
    manifest = manifest_of(root / "filters" / "f.bin")
    recorded = {Path(r["path"]).name for r in manifest["inputs"]} if manifest else set()
    assert recorded <= {p.name for p in out.glob("*.gz")}

    again = run_cli(*_dedupe_args(root, pattern), env={"DOLMA_DEDUPE_CHUNK_BYTES": "20000"})
    assert again.returncode == 0, again.stderr
    assert {p.name: p.read_bytes() for p in out.glob("*.gz")} == expected
    # The same bits as the uninterrupted run (the manifests differ: they record the inputs' own paths).
    assert filter_bits(root / "filters" / "f.bin") == filter_bits(clean / "filters" / "f.bin")


def test_sigterm_saves_the_filter_with_the_completed_files_and_the_rerun_skips_them(tmp_path):
    """A stop between files (one chunk per file, one thread) leaves the filter exactly the completed files' keys:
    it is saved with them, although no periodic save was due, and the rerun redoes only the others."""
    clean = tmp_path / "clean"
    pattern = _corpus(clean, files=40, docs=1500, seed=2)
    args = [a for a in _dedupe_args(clean, pattern) if a not in ("--processes", "2", "--checkpoint_interval", "0")]
    args += ["--processes", "1", "--checkpoint_interval", "100000"]
    assert run_cli(*args).returncode == 0
    expected = {p.name: p.read_bytes() for p in (clean / "attributes" / "dd").glob("*.gz")}

    root = tmp_path / "stopped"
    pattern = _corpus(root, files=40, docs=1500, seed=2)
    args = [a for a in _dedupe_args(root, pattern) if a not in ("--processes", "2", "--checkpoint_interval", "0")]
    args += ["--processes", "1", "--checkpoint_interval", "100000"]
    env = _env(DOLMA_DEDUPE_CHUNK_BYTES=str(64 << 20))  # every file is one chunk: stops fall between files
    out = root / "attributes" / "dd"
    with started(args, env, tmp_path) as run:
        wait_for(lambda: out.is_dir() and any(out.glob("*.gz")), "the first attributes file", run.proc)
        code, err = run.stop(signal.SIGTERM)
    assert code == 128 + signal.SIGTERM, f"the run was not stopped half-way: {err}"
    written = sorted(p.name for p in out.glob("*.gz"))
    manifest = manifest_of(root / "filters" / "f.bin")
    assert manifest is not None, "the stopped run did not save the filter"
    assert sorted(Path(r["path"]).name for r in manifest["inputs"]) == written
    assert 0 < len(written) < 40
    stamps = {name: (out / name).stat().st_mtime_ns for name in written}

    again = run_cli(*args, env={"DOLMA_DEDUPE_CHUNK_BYTES": str(64 << 20)})
    assert again.returncode == 0, again.stderr
    assert {name: (out / name).stat().st_mtime_ns for name in written} == stamps, "completed files were redone"
    assert {p.name: p.read_bytes() for p in out.glob("*.gz")} == expected
    assert filter_bits(root / "filters" / "f.bin") == filter_bits(clean / "filters" / "f.bin")


def test_sigterm_stops_a_spark_run_and_its_jvm_and_workers(tmp_path):
    args, env, markers = _blocking_tag(tmp_path, processes=1)
    args = [a for a in args if a not in ("--processes", "1")]
    conf = json.dumps(LOOPBACK_SPARK_CONF)
    args += ["--executor", "spark", "--spark.master", "local[2]", "--spark.conf", conf]
    env = {**env, "SPARK_LOCAL_IP": "127.0.0.1"}
    with started(args, env, tmp_path) as run:
        wait_for(lambda: _started(markers) >= 2, "two Spark tasks to start", run.proc, wait=300)
        children = run.record_processes()
        assert len(children) >= 3  # the JVM, the Python daemon and its workers
        code, err = run.stop(signal.SIGTERM)
        assert code == 128 + signal.SIGTERM, err[-3000:]
        assert not survivors(children), "Spark processes outlived the stopped driver"
    assert _temporaries(tmp_path / "attributes") == []
