"""Temporaries: one naming rule for Python and Rust writers (hidden, naming host and pid), and reruns that remove
what killed runs of this machine left behind in the directories they write to, and nothing else."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from dolma import atomic
from tests.conftest import REPO, make_docs, outputs_in, read_jsonl, run_cli, write_jsonl_gz
from tests.helpers.procs import wait_for


def dead_pid() -> int:
    """The id of a process that has exited (and was reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def temp(directory: Path, name: str, host: str, pid: int, nonce: str = "0123abcd") -> Path:
    path = directory / f".{name}.tmp-{host}-{pid}-{nonce}"
    path.write_bytes(b"partial")
    return path


def test_temp_names_are_hidden_and_name_host_and_process(tmp_path):
    name = atomic.temp_name(str(tmp_path / "a.jsonl.gz"))
    assert os.path.dirname(name) == str(tmp_path)
    assert os.path.basename(name).startswith(".a.jsonl.gz.tmp-")
    assert atomic.temp_owner(os.path.basename(name)) == (atomic.host_tag(), os.getpid())
    assert atomic.host_tag("node 7.example/é") == "node_7.example__"
    assert atomic.temp_owner("a.jsonl.gz.tmp-123") is None  # not hidden: not ours
    assert atomic.temp_owner(".a.jsonl.gz.tmp-123-4") is None  # the old form without a host


def test_only_temporaries_of_dead_processes_of_this_host_are_removed(tmp_path):
    me = atomic.host_tag()
    gone = dead_pid()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        dead = temp(tmp_path, "a.jsonl.gz", me, gone)
        keep = [
            temp(tmp_path, "b.jsonl.gz", me, live.pid),  # a live run's work in progress
            temp(tmp_path, "c.jsonl.gz", me, os.getpid()),  # this process's own
            temp(tmp_path, "d.jsonl.gz", f"{me}x", gone),  # another machine's (shared file system)
            tmp_path / f".e.jsonl.gz.tmp-{gone}-3",  # not our naming
            tmp_path / f"f.bin.tmp-{gone}",  # not our naming (and not hidden)
            tmp_path / ".notes",
        ]
        for path in keep[3:]:
            path.write_bytes(b"x")
        (tmp_path / f".dir.tmp-{me}-{gone}-0123abcd").mkdir()  # a directory is never removed
        removed = atomic.remove_dead_temporaries([str(tmp_path), str(tmp_path / "missing"), "s3://bucket/prefix"])
        assert removed == [str(dead)]
        assert not dead.exists() and all(p.exists() for p in keep)
    finally:
        live.kill()
        live.wait()


SLOW_TAGGER = """
import os, time
from dolma.documents import Span
from dolma.registry import register
from dolma.tagger import Tagger

@register("slow_temp_tagger")
class SlowTagger(Tagger):
    def predict(self, doc):
        open(os.environ["STARTED"], "w").close()
        while not os.path.exists(os.environ["RELEASE"]):
            time.sleep(0.01)
        return [Span(0, 1, "x", 1.0)]
"""


def test_rerun_after_a_killed_tag_run_removes_its_temporaries(tmp_path):
    write_jsonl_gz(tmp_path / "documents" / "a.jsonl.gz", make_docs(5))
    module = tmp_path / "slow.py"
    module.write_text(SLOW_TAGGER)
    args = ["tag", "--documents", str(tmp_path / "documents" / "*.gz"), "--taggers", "slow_temp_tagger"]
    args += ["--tagger_modules", str(module), "--quiet"]
    env = {"STARTED": str(tmp_path / "started"), "RELEASE": str(tmp_path / "release")}
    proc = subprocess.Popen([sys.executable, "-m", "dolma", *args], env={**os.environ, **env, "PYTHONPATH": str(REPO)})
    wait_for((tmp_path / "started").exists, "the unit to start", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    out = tmp_path / "attributes" / "slow_temp_tagger"
    left = [p.name for p in out.iterdir()]
    assert len(left) == 1 and atomic.temp_owner(left[0]) == (atomic.host_tag(), proc.pid), left
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        other = temp(out, "a.jsonl.gz", atomic.host_tag(), live.pid)
        (tmp_path / "release").touch()
        result = run_cli(*args, env=env)
        assert result.returncode == 0, result.stderr
        assert [p.name for p in outputs_in(out)] == sorted(["a.jsonl.gz", other.name])
        assert len(read_jsonl(out / "a.jsonl.gz")) == 5
    finally:
        live.kill()
        live.wait()


def _dedupe_args(root: Path, size: int) -> list[str]:
    return [
        "dedupe", "--documents", str(root / "documents" / "*.gz"),
        "--dedupe.name", "dd", "--dedupe.paragraphs.attribute_name", "dup",
        "--bloom_filter.file", str(root / "filters" / "f.bin"),
        "--bloom_filter.size_in_bytes", str(size), "--bloom_filter.estimated_doc_count", "1000",
        "--quiet",
    ]  # fmt: skip


def test_a_kill_during_the_filter_save_leaves_a_hidden_temporary_that_the_rerun_removes(tmp_path):
    """The filter is written by Rust under the same naming rule as every other temporary."""
    for i in range(3):
        write_jsonl_gz(tmp_path / "documents" / f"p{i}.jsonl.gz", make_docs(50, prefix=f"p{i}-"))
    (tmp_path / "filters").mkdir()
    size = 1 << 30  # large enough that the save takes a while
    proc = subprocess.Popen(
        [sys.executable, "-m", "dolma", *_dedupe_args(tmp_path, size)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    filters = tmp_path / "filters"
    wait_for(lambda: any(filters.iterdir()), "the filter save to start", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = [p.name for p in filters.iterdir()]
    assert len(left) == 1 and atomic.temp_owner(left[0]) == (atomic.host_tag(), proc.pid), left
    legacy = filters / f"f.bin.tmp-{dead_pid()}"  # not our naming: left alone
    legacy.write_bytes(b"x")
    result = run_cli(*_dedupe_args(tmp_path, 1 << 16))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in filters.iterdir()) == sorted(["f.bin", legacy.name])


def test_rerun_after_a_killed_dedupe_run_removes_the_rust_attribute_temporaries(tmp_path):
    for i in range(6):
        rows = [{"id": f"{i}-{j}", "text": f"paragraph {j % 50}\nline {i} {j}", "source": "s"} for j in range(4000)]
        write_jsonl_gz(tmp_path / "documents" / f"p{i}.jsonl.gz", rows)
    args = _dedupe_args(tmp_path, 1 << 20)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dolma", *args, "--processes", "1"],
        env={**os.environ, "PYTHONPATH": str(REPO), "DOLMA_DEDUPE_CHUNK_BYTES": "2000"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    out = tmp_path / "attributes" / "dd"
    wait_for(lambda: out.is_dir() and any(p.name.startswith(".") for p in out.iterdir()), "a temporary", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    hidden = [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert hidden and all(atomic.temp_owner(name) == (atomic.host_tag(), proc.pid) for name in hidden), hidden
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert [p.name for p in outputs_in(out)] == [f"p{i}.jsonl.gz" for i in range(6)]


def test_mix_rerun_removes_links_left_by_a_killed_publish(tmp_path):
    write_jsonl_gz(tmp_path / "documents" / "a.jsonl.gz", make_docs(5))
    out = tmp_path / "out"
    out.mkdir()
    left = temp(out, "m-0000.jsonl.gz", atomic.host_tag(), dead_pid())
    config = tmp_path / "mix.yaml"
    config.write_text(
        f"streams: [{{name: m, documents: ['{tmp_path}/documents/*.gz'], output: {{path: '{out}'}}}}]\nquiet: true\n"
    )
    result = run_cli("-c", str(config), "mix")
    assert result.returncode == 0, result.stderr
    assert not left.exists()
    # Beside the shard: the stream's shard record (what lets a rerun remove only its own earlier shards).
    assert [p.name for p in outputs_in(out)] == [".m.mix-shards.json", "m-0000.jsonl.gz"]


def test_tokens_rerun_accepts_and_removes_shard_temporaries_of_a_killed_run(tmp_path):
    """A tokens destination may hold only what tokens wrote: a killed run's shard temporaries (named by the
    temporary rule) are its own, so the rerun is not refused and removes them; a foreign file still is refused."""
    write_jsonl_gz(tmp_path / "documents" / "a.jsonl.gz", make_docs(20))
    out = tmp_path / "tokens"
    out.mkdir()
    args = ["tokens", "--documents", str(tmp_path / "documents" / "*.gz"), "--destination", str(out), "--quiet"]
    left = [temp(out, name, atomic.host_tag(), dead_pid()) for name in ("part-0-00000.npy", ".part-0.journal")]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert not any(path.exists() for path in left)
    assert [p.name for p in outputs_in(out)] == [".part-0.done", "part-0-00000.csv.gz", "part-0-00000.npy"]

    (out / ".notes.tmp-other").write_bytes(b"not ours")
    refused = run_cli(*args, "--ignore_existing")
    assert refused.returncode == 2 and ".notes.tmp-other" in refused.stderr, refused.stderr
