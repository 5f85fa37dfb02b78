"""`sign_file` reads a local documents file in Rust (`MinHashFileWriter.sign_documents`): the band-key file, the
counts and the bad-line errors are those of the Python-read path (kept for S3 inputs)."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import pytest
import zstandard

from dolma import _rust
from dolma import minhash as mh
from dolma.documents import ReadStats
from dolma.errors import BadInputError, CorruptFileError

PARAMS = mh.MinHashParams(num_perm=32, verify="exact", threshold=0.5)

GOOD = [
    {"id": "é1", "text": "héllo 😀 wörld and some more words here", "metadata": {"body": "the body of one"}},
    {"id": "2", "text": "", "metadata": {"body": 7}},
    {"id": "\U0001d4313", "text": "a\u0301 b c d e f g h", "source": "s", "metadata": None},
    {"id": "4", "text": "héllo 😀 wörld and some more words there", "metadata": {"body": ["the body of one"]}},
]
BAD = [
    '{"id": "b", "text": 5}',
    "{not json",
    '{"text": "no id"}',
    "[1, 2]",
    '{"id": "s", "text": "\\ud800 lone"}',
    '{"id": "m", "text": "x", "metadata": 5}',
]


def write(path: Path, lines: list[str], final_newline: bool = True) -> str:
    data = ("\n".join(lines) + ("\n" if final_newline else "")).encode()
    if path.suffix == ".gz":
        data = gzip.compress(data)
    elif path.suffix == ".zst":
        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)
    return str(path)


def read_in_python(path: str, out: str, skip_bad_lines: bool, key: tuple) -> ReadStats:
    """The band-key file as the Python-read path (S3 inputs) writes it."""
    size, stamp = mh.source_stamp(path)
    writer = _rust.MinHashFileWriter(mh.signer(PARAMS), out, 0, path, source_size=size, source_stamp=stamp)
    stats = ReadStats()
    try:
        mh._add_read_in_python(writer, path, skip_bad_lines, stats, 64, key)
    except BaseException:
        writer.abort()
        raise
    writer.finish(stats.lines, stats.bad_lines, stats.bytes)
    return stats


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".jsonl.zst", ".jsonl"])
@pytest.mark.parametrize("key", [("text",), ("metadata", "body"), ("metadata", "body", 0)])
@pytest.mark.parametrize("chunk", [(8, 3), (1 << 20, 1)], ids=["small-chunks-3-threads", "one-chunk-1-thread"])
def test_rust_read_writes_the_python_reads_band_key_file(
    tmp_path: Path, suffix: str, key: tuple, chunk: tuple[int, int], caplog
) -> None:
    """Many chunks signed at once on three threads, or one chunk on one: the same file as the Python read."""
    lines = [json.dumps(GOOD[0]), "", BAD[0], "  \t\x0b", json.dumps(GOOD[1]), *BAD[1:], json.dumps(GOOD[2])]
    lines += [json.dumps(GOOD[3], ensure_ascii=False)]
    path = write(tmp_path / f"d{suffix}", lines, final_newline=suffix != ".jsonl")
    with caplog.at_level(logging.WARNING, logger="dolma"):
        stats = mh.sign_file(
            path,
            str(tmp_path / "rust.mhk"),
            0,
            PARAMS,
            skip_bad_lines=True,
            key=key,
            batch_bytes=chunk[0],
            threads=chunk[1],
        )
    rust_log = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dolma"):
        python = read_in_python(path, str(tmp_path / "python.mhk"), True, key)
    assert (tmp_path / "rust.mhk").read_bytes() == (tmp_path / "python.mhk").read_bytes()
    assert (stats.lines, stats.bad_lines, stats.bytes) == (python.lines, python.bad_lines, python.bytes)
    assert (stats.documents, stats.bad_lines) == (4, len(BAD))
    assert rust_log == [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert len(rust_log) == len(BAD)
    _, _, lengths, ids = mh.unit_documents(str(tmp_path / "rust.mhk"))
    assert ids == [d["id"] for d in GOOD] and lengths.tolist() == [len(d["text"]) for d in GOOD]


@pytest.mark.parametrize("bad", [*BAD, b'{"id": "x", "text": "\xff"}'])
@pytest.mark.parametrize("batch_bytes", [8, 2 << 20])
def test_a_bad_line_without_skipping_raises_the_python_reads_error(
    tmp_path: Path, bad: str | bytes, batch_bytes: int
) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(
        json.dumps(GOOD[0]).encode() + b"\n\n" + (bad if isinstance(bad, bytes) else bad.encode()) + b"\n"
    )
    with pytest.raises(BadInputError) as rust:
        mh.sign_file(str(path), str(tmp_path / "rust.mhk"), 0, PARAMS, batch_bytes=batch_bytes)
    with pytest.raises(BadInputError) as python:
        read_in_python(str(path), str(tmp_path / "python.mhk"), False, ("text",))
    assert type(rust.value) is type(python.value)
    assert str(rust.value) == str(python.value)
    assert (rust.value.path, rust.value.line) == (str(path), 3)
    assert not list(tmp_path.glob("*.mhk")) and not list(tmp_path.glob(".*"))


@pytest.mark.parametrize("damage", ["not compressed", "truncated"])
def test_damaged_compressed_data_is_a_corrupt_file_error(tmp_path: Path, damage: str) -> None:
    data = gzip.compress(("\n".join(json.dumps(d) for d in GOOD * 50) + "\n").encode())
    path = tmp_path / "d.jsonl.gz"
    path.write_bytes(b"not gzip at all" if damage == "not compressed" else data[: len(data) // 2])
    with pytest.raises(CorruptFileError) as rust:
        mh.sign_file(str(path), str(tmp_path / "rust.mhk"), 0, PARAMS)
    with pytest.raises(CorruptFileError):
        read_in_python(str(path), str(tmp_path / "python.mhk"), False, ("text",))
    assert rust.value.path == str(path) and "decompress" in rust.value.reason
    assert not list(tmp_path.glob("*.mhk"))


SIGNAL_PROBE = """
import sys
from dolma import minhash as mh
mh.sign_file(sys.argv[1], sys.argv[2], 0, mh.MinHashParams(num_perm=32, threshold=0.5), threads=1)
"""


def test_a_signal_stops_the_rust_read_in_the_middle_of_a_file(tmp_path):
    """Ctrl-C (and the CLI's SIGTERM handler) act while a file is read and signed in Rust, not at its end: the
    documents come from a pipe the test keeps open, so only a read that gives up mid-file can return."""
    import os
    import signal
    import subprocess
    import sys

    from tests.conftest import REPO

    fifo, output = tmp_path / "docs.jsonl", tmp_path / "keys.mhk"
    os.mkfifo(fifo)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", SIGNAL_PROBE, str(fifo), str(output)], stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        with open(fifo, "wb") as pipe:  # returns once the child opened the pipe: it is inside the Rust read
            pipe.write(
                b"".join(json.dumps({"id": str(i), "text": f"doc {i} " * 50}).encode() + b"\n" for i in range(500))
            )
            pipe.flush()
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=120)  # a hang guard: without the fix it waits for the pipe's end
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0 and "KeyboardInterrupt" in stderr, stderr
    assert not output.exists() and not list(tmp_path.glob("keys.mhk*tmp*"))


def test_bad_lines_past_the_kept_limit_are_counted_and_logged_once(tmp_path: Path, caplog) -> None:
    """A file with more bad lines than the Rust reader keeps for explaining: every one is counted, the first ones
    are explained, the rest are summed up in one warning; the band-key file is the Python read's."""
    kept = 1000  # dolma_core::minhash::read::KEPT_BAD_LINES
    lines = [json.dumps(GOOD[0])] + ["{not json"] * (kept + 7) + [json.dumps(GOOD[2])]
    path = write(tmp_path / "d.jsonl.gz", lines)
    with caplog.at_level(logging.WARNING, logger="dolma"):
        stats = mh.sign_file(path, str(tmp_path / "rust.mhk"), 0, PARAMS, skip_bad_lines=True, batch_bytes=64)
    messages = [r.getMessage() for r in caplog.records]
    assert stats.bad_lines == kept + 7 and stats.documents == 2 and stats.lines == kept + 9
    assert sum(m.startswith("skipping ") and "line" in m for m in messages) == kept + 1
    assert f"skipping 7 more bad lines of {path}, the first at line {kept + 2}" in messages[-1]
    python = read_in_python(path, str(tmp_path / "python.mhk"), True, ("text",))
    assert (tmp_path / "rust.mhk").read_bytes() == (tmp_path / "python.mhk").read_bytes()
    assert python.bad_lines == stats.bad_lines
