"""Two mix runs on one destination (issue 14 item 8): a lock per destination, local and S3; the second run fails
with a message naming the lock and its owner and leaves nothing behind; a dead run's lock is taken over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import msgspec
import pytest

from dolma import io, locks
from dolma.executors.summary import is_run_summary
from tests.conftest import REPO, run_cli, write_jsonl_gz


def _corpus(root: Path, files: int = 4, per_file: int = 3000) -> None:
    for f in range(files):
        docs = [
            {"id": f"f{f}-{i}", "text": f"document {i} of file {f}. " * (1 + i % 7), "source": "t"}
            for i in range(per_file)
        ]
        write_jsonl_gz(root / "documents" / f"part-{f}.jsonl.gz", docs)


def _config(root: Path, out: str, **extra) -> Path:
    config = root / f"mix-{abs(hash(out))}.json"
    config.write_text(
        json.dumps(
            {
                "streams": [
                    {
                        "name": "s",
                        "documents": [str(root / "documents" / "*.jsonl.gz")],
                        "output": {"path": out, "max_size_in_bytes": 200_000},
                    }
                ],
                "processes": 2,
                **extra,
            }
        )
    )
    return config


HOLDER = textwrap.dedent(
    """
    import sys, time
    from dolma import io
    from mixers.mix import stream_lock
    io.configure_s3(io.S3Config())
    lock = stream_lock(io.normalize(sys.argv[1]), "s").acquire()
    print("held", flush=True)
    time.sleep(600)
    """
)


def _hold_lock(out: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, out],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    return proc


def _visible(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if not p.name.startswith("."))


def _everything(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if not is_run_summary(p))


def test_second_run_fails_naming_lock_and_owner_and_leaves_nothing(tmp_path):
    _corpus(tmp_path)
    out = tmp_path / "out"
    config = _config(tmp_path, str(out))
    holder = _hold_lock(str(out))
    try:
        before = _everything(out)
        result = run_cli("-c", str(config), "mix")
        assert result.returncode != 0
        assert "Traceback" not in result.stderr
        lock = out / ".mix-lock-s"
        assert result.stderr.strip() == (
            f"error: mix output {out}/s-* is being written by another run 'dolma mix' (pid {holder.pid} on "
            f"{locks._host().split('/')[0]}, since {_since(lock)}): lock {lock}; wait for it to finish"
        )
        assert _everything(out) == before == [".mix-lock-s"]
    finally:
        holder.kill()
        holder.wait()


def _since(lock: Path) -> str:
    owner = json.loads(lock.read_text())
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner["since"]))


def test_lock_of_a_killed_run_is_taken_over(tmp_path):
    _corpus(tmp_path, files=2, per_file=200)
    out = tmp_path / "out"
    holder = _hold_lock(str(out))
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert (out / ".mix-lock-s").exists()
    result = run_cli("-c", str(_config(tmp_path, str(out))), "mix", "--quiet")
    assert result.returncode == 0, result.stderr
    assert _everything(out) == [".s.mix-shards.json", "s-0000.jsonl.gz"]


def test_half_written_lock_file_of_a_killed_run_is_taken_over(tmp_path):
    _corpus(tmp_path, files=1, per_file=50)
    out = tmp_path / "out"
    out.mkdir()
    lock = out / ".mix-lock-s"
    lock.write_bytes(b"")
    old = lock.stat().st_mtime - locks.UNREADABLE_GRACE - 1
    os.utime(lock, (old, old))
    result = run_cli("-c", str(_config(tmp_path, str(out))), "mix", "--quiet")
    assert result.returncode == 0, result.stderr
    assert _everything(out) == [".s.mix-shards.json", "s-0000.jsonl.gz"]


def test_lock_held_on_another_host_says_how_to_remove_it(tmp_path):
    _corpus(tmp_path, files=1, per_file=50)
    out = tmp_path / "out"
    out.mkdir()
    owner = locks.Owner(host="elsewhere/12345678", pid=1, pid_started=None, since=0.0, command="dolma mix", token="x")
    (out / ".mix-lock-s").write_bytes(msgspec.json.encode(owner))
    result = run_cli("-c", str(_config(tmp_path, str(out))), "mix")
    assert result.returncode != 0
    assert "(pid 1 on elsewhere, since " in result.stderr
    assert "wait for it to finish, or if that run is gone, delete the lock" in result.stderr


def test_failed_run_leaves_no_directory_or_lock(tmp_path):
    out = tmp_path / "new" / "out"
    config = _config(tmp_path, str(out))
    data = json.loads(config.read_text())
    data["streams"][0]["documents"] = [str(tmp_path / "missing" / "*.jsonl.gz")]
    config.write_text(json.dumps(data))
    result = run_cli("-c", str(config), "mix")
    assert result.returncode != 0 and "no files match" in result.stderr
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("attempt", range(3))
def test_two_identical_runs_at_once_converge(tmp_path, attempt):
    """Both start together: one writes the shards, the other either finished first or was refused by the lock;
    either way the shards are those of a clean run and no staging, lock or temporary is left."""
    _corpus(tmp_path)
    clean = tmp_path / "clean"
    assert run_cli("-c", str(_config(tmp_path, str(clean))), "mix", "--quiet").returncode == 0
    out = tmp_path / "out"
    config = _config(tmp_path, str(out))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "dolma", "-c", str(config), "mix", "--quiet"]
    runs = [subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(), p.stderr.read() if p.stderr else "") for p in runs]
    assert any(code == 0 for code, _ in results), results
    for code, err in results:
        assert code == 0 or "is being written by another run 'dolma mix'" in err, err
        assert "Traceback" not in err
    assert _everything(out) == _everything(clean)
    for name in _visible(clean):
        assert (out / name).read_bytes() == (clean / name).read_bytes()


def test_s3_lock_refuses_a_second_run(tmp_path, s3_server, s3_bucket):
    _corpus(tmp_path, files=1, per_file=50)
    out = f"s3://{s3_bucket}/mixed"
    holder = _hold_lock(out)
    try:
        assert s3_server.keys(s3_bucket) == ["mixed/.mix-lock-s"]
        result = run_cli("-c", str(_config(tmp_path, out)), "mix")
        assert result.returncode != 0
        assert f"is being written by another run 'dolma mix' (pid {holder.pid} " in result.stderr
        assert f"lock {out}/.mix-lock-s; wait for it to finish" in result.stderr
        assert s3_server.keys(s3_bucket) == ["mixed/.mix-lock-s"]
    finally:
        holder.kill()
        holder.wait()
    # the holder is dead now: the next run takes the lock over, and releases it when done
    result = run_cli("-c", str(_config(tmp_path, out)), "mix", "--quiet")
    assert result.returncode == 0, result.stderr
    assert s3_server.keys(s3_bucket) == ["mixed/.s.mix-shards.json", "mixed/s-0000.jsonl.gz"]
    assert io.glob(f"{out}/*") == [f"{out}/s-0000.jsonl.gz"]


def test_unwritable_destination_is_one_line(tmp_path):
    _corpus(tmp_path, files=1, per_file=20)
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = run_cli("-c", str(_config(tmp_path, str(blocker / "out"))), "mix")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: cannot create the lock {blocker}/out/.mix-lock-s: Not a directory (is the destination writable?)"
    )
