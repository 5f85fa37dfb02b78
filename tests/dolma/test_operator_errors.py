"""What an operator runs into: clear messages instead of tracebacks, and the same behaviour in every command.

A full or read-only disk while saving the dedupe filter; a full disk while writing outputs (not retried);
`-c <directory>`; a 0-byte `.gz`; `.gz` files with trailing zero padding; a lone surrogate escape in `id`; a
mistyped second documents pattern; `dolma --help` into a closed pipe. The disk faults are real: a tiny tmpfs or
a read-only bind mount in a private mount namespace (`unshare`), so nothing outside the test sees them.
"""

from __future__ import annotations

import gzip
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, make_docs, outputs_in, read_jsonl, run_cli, write_jsonl_gz
from tests.dolma.test_dedupe import filter_bits


def _namespace_prefix() -> list[str]:
    """`unshare` into a private mount namespace (mapping this user to root there when not root)."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux) to give the test its own mount namespace")
    prefix = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-r", "-m"]
    probe = subprocess.run([*prefix, "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"this machine does not allow private mount namespaces: {probe.stderr.decode().strip()}")
    return prefix


def run_with_mounts(mounts: list[str], *args: str) -> subprocess.CompletedProcess:
    """`dolma <args>` in a private mount namespace after the given shell mount commands."""
    dolma = shlex.join([sys.executable, "-m", "dolma", *args])
    script = " && ".join([*mounts, f"exec {dolma}"])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([*_namespace_prefix(), "sh", "-c", script], capture_output=True, text=True, env=env)


def full_disk(directory: Path) -> str:
    """A tmpfs of 64 KiB over `directory` (already holding a file, so nothing large fits)."""
    path = shlex.quote(str(directory))
    return f"mount -t tmpfs -o size=64k tmpfs {path} && head -c 60000 /dev/zero > {path}/fill"


def read_only(directory: Path) -> str:
    path = shlex.quote(str(directory))
    return f"mount --bind {path} {path} && mount -o remount,bind,ro {path}"


def _dedupe_args(root: Path) -> list[str]:
    return [
        "dedupe", "--documents", str(root / "documents" / "*.jsonl.gz"),
        "--dedupe.name", "dd", "--dedupe.paragraphs.attribute_name", "dup",
        "--bloom_filter.file", str(root / "filters" / "f.bin"),
        "--bloom_filter.size_in_bytes", str(1 << 20), "--bloom_filter.estimated_doc_count", "1000",
    ]  # fmt: skip


def _paragraph_corpus(root: Path) -> None:
    for i in range(3):
        rows = [{"id": f"{i}-{j}", "text": f"shared {j % 4}\nown {i} {j}", "source": "s"} for j in range(20)]
        write_jsonl_gz(root / "documents" / f"p{i}.jsonl.gz", rows)
    (root / "filters").mkdir()


@pytest.mark.parametrize(("fault", "words"), [(full_disk, "no space left on device"), (read_only, "read-only")])
def test_a_filter_that_cannot_be_saved_is_a_clear_error_and_the_rerun_completes(tmp_path, fault, words):
    clean = tmp_path / "clean"
    _paragraph_corpus(clean)
    assert run_cli(*_dedupe_args(clean)).returncode == 0
    root = tmp_path / "faulty"
    _paragraph_corpus(root)

    result = run_with_mounts([fault(root / "filters")], *_dedupe_args(root))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "cannot save the Bloom filter" in result.stderr and words in result.stderr, result.stderr
    assert "attributes of all 3 file(s) are written" in result.stderr
    assert not (root / "filters" / "f.bin").exists()

    again = run_cli(*_dedupe_args(root))  # the disk is fine again
    assert again.returncode == 0, again.stderr
    out = root / "attributes" / "dd"
    assert {p.name: p.read_bytes() for p in outputs_in(out)} == {
        p.name: p.read_bytes() for p in outputs_in(clean / "attributes" / "dd")
    }
    # The same bits as the clean run (the manifests differ: they record the inputs' own paths).
    assert filter_bits(root / "filters" / "f.bin") == filter_bits(clean / "filters" / "f.bin")
    assert sorted(os.listdir(root / "filters")) == ["f.bin"]


def test_a_full_disk_is_not_retried(tmp_path):
    write_jsonl_gz(tmp_path / "documents" / "a.jsonl.gz", make_docs(2000))
    out = tmp_path / "out"
    out.mkdir()
    args = ["tag", "--documents", str(tmp_path / "documents" / "*.gz"), "--taggers", "char_length_v1"]
    args += ["--destination", str(out), "--quiet", "--retries", "2"]
    result = run_with_mounts([full_disk(out)], *args)
    assert result.returncode == 1, result.stderr
    assert "after 1 attempt(s)" in result.stderr and "no space left on device" in result.stderr, result.stderr
    assert "retrying" not in result.stderr and "Traceback" not in result.stderr


def test_a_directory_given_as_config_is_a_clear_error(tmp_path):
    result = run_cli("-c", str(tmp_path), "tag")
    assert result.returncode == 2
    assert f"{tmp_path}: is a directory, not a configuration file" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_into_a_closed_pipe_exits_quietly():
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written, as after `| head` has quit
    try:
        for args in (["--help"], ["tag", "--help"]):
            result = subprocess.run(
                [sys.executable, "-m", "dolma", *args],
                stdout=write_end,
                stderr=subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": str(REPO)},
            )
            assert result.stderr == b"", result.stderr.decode()
            assert result.returncode == 141  # 128 + SIGPIPE, like other command-line tools
    finally:
        os.close(write_end)


# ----------------------------------------------------------------------------------------------------------
# Every command reads the same files the same way
# ----------------------------------------------------------------------------------------------------------


def _all_commands(root: Path, documents: list[str]) -> dict[str, subprocess.CompletedProcess]:
    """tag, dedupe, mix and tokens over the same documents patterns."""
    mix_config = root / "mix.yaml"
    mix_config.write_text(
        json.dumps({"streams": [{"name": "m", "documents": documents, "output": {"path": str(root / "mixed")}}]})
    )
    dedupe = [
        "dedupe", "--documents", *documents, "--dedupe.name", "dd", "--dedupe.paragraphs.attribute_name", "dup",
        "--bloom_filter.file", str(root / "f.bin"), "--bloom_filter.estimated_doc_count", "1000",
        "--bloom_filter.desired_false_positive_rate", "1e-4",
    ]  # fmt: skip
    return {
        "tag": run_cli("tag", "--documents", *documents, "--taggers", "char_length_v1", "--quiet"),
        "dedupe": run_cli(*dedupe, "--quiet"),
        "mix": run_cli("-c", str(mix_config), "mix", "--quiet"),
        "tokens": run_cli("tokens", "--documents", *documents, "--destination", str(root / "tokens"), "--quiet"),
    }


def test_a_zero_byte_gz_is_read_as_empty_by_every_command(tmp_path):
    write_jsonl_gz(tmp_path / "documents" / "a.jsonl.gz", make_docs(3))
    (tmp_path / "documents" / "empty.jsonl.gz").write_bytes(b"")
    results = _all_commands(tmp_path, [str(tmp_path / "documents" / "*.jsonl.gz")])
    for command, result in results.items():
        assert result.returncode == 0, f"{command}: {result.stderr[-2000:]}"
    for name in ("char_length_v1", "dd"):
        assert read_jsonl(tmp_path / "attributes" / name / "empty.jsonl.gz") == []
        assert len(read_jsonl(tmp_path / "attributes" / name / "a.jsonl.gz")) == 3


def test_gz_with_trailing_zero_padding_is_read_as_gzip_reads_it(tmp_path):
    rows = make_docs(5)
    data = gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode(), mtime=0)
    padded = tmp_path / "padded"
    (padded / "documents").mkdir(parents=True)
    (padded / "documents" / "a.jsonl.gz").write_bytes(data + b"\0" * 4096)
    if shutil.which("gzip"):
        assert subprocess.run(["gzip", "-t", str(padded / "documents" / "a.jsonl.gz")]).returncode == 0
    plain = tmp_path / "plain"
    (plain / "documents").mkdir(parents=True)
    (plain / "documents" / "a.jsonl.gz").write_bytes(data)
    for root in (padded, plain):
        for command, result in _all_commands(root, [str(root / "documents" / "*.jsonl.gz")]).items():
            assert result.returncode == 0, f"{command}: {result.stderr[-2000:]}"
    for name in ("char_length_v1", "dd"):
        rel = Path("attributes") / name / "a.jsonl.gz"
        assert (padded / rel).read_bytes() == (plain / rel).read_bytes()
    assert read_jsonl(next((padded / "mixed").glob("m-*"))) == read_jsonl(next((plain / "mixed").glob("m-*")))
    # ... and anything but zeros after the last member is still an error.
    junk = tmp_path / "junk"
    (junk / "documents").mkdir(parents=True)
    (junk / "documents" / "a.jsonl.gz").write_bytes(data + b"\0\0junk")
    for command, result in _all_commands(junk, [str(junk / "documents" / "*.jsonl.gz")]).items():
        assert result.returncode != 0, command
        assert "a.jsonl.gz" in result.stderr and "Traceback" not in result.stderr, f"{command}: {result.stderr}"


def test_a_lone_surrogate_in_id_is_rejected_by_every_command_with_the_same_reason(tmp_path):
    path = tmp_path / "documents" / "s.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text('{"id":"ok","text":"fine","source":"s"}\n{"id":"\\ud800","text":"x","source":"s"}\n')
    results = _all_commands(tmp_path, [str(path)])
    expected = f"{path}:2: field 'id': invalid string (a lone UTF-16 surrogate escape, not a Unicode character)"
    for command in ("tag", "dedupe", "mix"):
        assert results[command].returncode != 0, command
        assert expected in results[command].stderr, f"{command}: {results[command].stderr[-2000:]}"


def test_a_mistyped_documents_pattern_is_an_error_in_every_command(tmp_path):
    write_jsonl_gz(tmp_path / "documents" / "a.jsonl.gz", make_docs(3))
    typo = str(tmp_path / "documnets" / "*.jsonl.gz")
    results = _all_commands(tmp_path, [str(tmp_path / "documents" / "*.jsonl.gz"), typo])
    for command, result in results.items():
        assert result.returncode == 2, f"{command}: {result.stderr[-2000:]}"
        assert f"no files match documents pattern '{typo}'" in result.stderr, f"{command}: {result.stderr}"
