"""Local and S3 I/O: compression round trips, globbing, truncation, atomic writes, streaming memory."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path

import pytest
import zstandard

from dolma import atomic, io
from dolma.errors import CorruptFileError

PAYLOAD = "".join(f'{{"id": "{i}", "text": "héllo wörld {i} 你好"}}\n' for i in range(2000)).encode()


@pytest.mark.parametrize("ext", [".jsonl", ".jsonl.gz", ".jsonl.zst", ".jsonl.zstd"])
def test_local_round_trip(tmp_path, ext):
    path = str(tmp_path / f"sub/file{ext}")
    atomic.write_bytes(path, PAYLOAD)
    assert io.read_bytes(path) == PAYLOAD
    raw = Path(path).read_bytes()
    if ext.endswith(".gz"):
        assert gzip.decompress(raw) == PAYLOAD
    elif ext.endswith((".zst", ".zstd")):
        assert zstandard.ZstdDecompressor().stream_reader(raw).read() == PAYLOAD
    else:
        assert raw == PAYLOAD
    lines = [line for _, line in io.iter_lines(path)]
    assert lines == PAYLOAD.rstrip(b"\n").split(b"\n")


@pytest.mark.parametrize("ext", [".jsonl", ".jsonl.gz", ".jsonl.zst"])
def test_s3_round_trip_and_copies(tmp_path, s3_server, s3_bucket, ext):
    url = f"s3://{s3_bucket}/docs/part{ext}"
    atomic.write_bytes(url, PAYLOAD)
    assert io.exists(url)
    assert io.read_bytes(url) == PAYLOAD
    # S3 -> S3, changing compression on the way
    url2 = f"s3://{s3_bucket}/copy/part.jsonl.zst"
    atomic.copy(url, url2)
    assert io.read_bytes(url2) == PAYLOAD
    # S3 -> local -> S3
    local = str(tmp_path / f"local{ext}")
    atomic.copy(url, local)
    assert io.read_bytes(local) == PAYLOAD
    url3 = f"s3://{s3_bucket}/back/part.jsonl.gz"
    atomic.copy(local, url3)
    assert (
        gzip.decompress(s3_server.client().get_object(Bucket=s3_bucket, Key="back/part.jsonl.gz")["Body"].read())
        == PAYLOAD
    )


def test_multiple_gzip_members_and_zstd_frames(tmp_path):
    gz = tmp_path / "multi.jsonl.gz"
    gz.write_bytes(gzip.compress(b"a\nb\n") + gzip.compress(b"c\n"))
    assert [line for _, line in io.iter_lines(str(gz))] == [b"a", b"b", b"c"]
    zs = tmp_path / "multi.jsonl.zst"
    cctx = zstandard.ZstdCompressor()
    zs.write_bytes(cctx.compress(b"a\nb\n") + cctx.compress(b"c\n"))
    assert [line for _, line in io.iter_lines(str(zs))] == [b"a", b"b", b"c"]


@pytest.mark.parametrize("ext", [".gz", ".zst"])
def test_truncated_file_is_a_clear_error(tmp_path, ext):
    path = tmp_path / f"t.jsonl{ext}"
    atomic.write_bytes(str(path), PAYLOAD * 5)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError, match="truncated"):
        for _ in io.iter_lines(str(path)):
            pass


def test_corrupt_gzip_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.jsonl.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00garbage-that-is-not-deflate" * 10)
    with pytest.raises(CorruptFileError, match=str(path)):
        io.read_bytes(str(path))


def _touch(path, data=b"x\n"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)


def test_local_glob(tmp_path):
    for rel in ["a/documents/x/1.jsonl.gz", "a/documents/x/y/2.jsonl.gz", "a/documents/3.jsonl", "a/other/4.txt"]:
        _touch(str(tmp_path / rel))
    _touch(str(tmp_path / "a/documents/x/.1.jsonl.gz.tmp-1-abc"))
    base = str(tmp_path / "a/documents")
    assert io.glob(f"{base}/**/*.jsonl.gz") == [f"{base}/x/1.jsonl.gz", f"{base}/x/y/2.jsonl.gz"]
    assert io.glob(f"{base}/*/*.gz") == [f"{base}/x/1.jsonl.gz"]
    assert io.glob(f"{base}/3.jsonl") == [f"{base}/3.jsonl"]
    assert io.glob(f"{base}/nothing-*.gz") == []
    assert io.expand_globs([f"{base}/**/*.gz", f"{base}/x/*.gz"]) == [f"{base}/x/1.jsonl.gz", f"{base}/x/y/2.jsonl.gz"]


def test_s3_glob(s3_server, s3_bucket):
    client = s3_server.client()
    keys = ["c/documents/x/1.jsonl.gz", "c/documents/x/y/2.jsonl.gz", "c/documents/3.jsonl", "c/other/4.gz"]
    for key in keys:
        client.put_object(Bucket=s3_bucket, Key=key, Body=b"x")
    base = f"s3://{s3_bucket}/c/documents"
    assert io.glob(f"{base}/**/*.jsonl.gz") == [f"{base}/x/1.jsonl.gz", f"{base}/x/y/2.jsonl.gz"]
    assert io.glob(f"{base}/**") == [f"{base}/3.jsonl", f"{base}/x/1.jsonl.gz", f"{base}/x/y/2.jsonl.gz"]
    assert io.glob(f"{base}/*.jsonl") == [f"{base}/3.jsonl"]
    assert io.glob(f"{base}/x/1.jsonl.gz") == [f"{base}/x/1.jsonl.gz"]
    assert io.glob(f"{base}/missing.gz") == []


def test_failed_local_write_leaves_nothing(tmp_path):
    path = tmp_path / "out" / "f.jsonl.gz"
    with pytest.raises(RuntimeError), atomic.AtomicWriter(str(path)) as out:
        out.write(b"partial\n")
        raise RuntimeError("boom")
    assert not path.exists()
    assert os.listdir(path.parent) == []


def test_failed_s3_write_leaves_nothing(s3_server, s3_bucket):
    url = f"s3://{s3_bucket}/out/f.jsonl.gz"
    with pytest.raises(RuntimeError), atomic.AtomicWriter(url) as out:
        out.write(os.urandom(1 << 20))
        raise RuntimeError("boom")
    assert not io.exists(url)
    assert s3_server.keys(s3_bucket) == []


def test_s3_multipart_upload_only_appears_when_complete(s3_server, s3_bucket):
    url = f"s3://{s3_bucket}/big/f.bin"
    data = os.urandom(40 << 20)
    with atomic.AtomicWriter(url, compression=None) as out:
        for i in range(0, len(data), 8 << 20):
            out.write(data[i : i + (8 << 20)])
            assert s3_server.keys(s3_bucket) == []
    assert io.read_bytes(url) == data


def test_killed_writer_leaves_no_output(tmp_path):
    target = tmp_path / "out.jsonl.gz"
    script = textwrap.dedent(
        f"""
        import sys, time
        from dolma import atomic
        with atomic.AtomicWriter({str(target)!r}) as out:
            out.write(b"x" * 100000)
            print("writing", flush=True)
            time.sleep(600)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not target.exists()
    leftovers = os.listdir(tmp_path)
    assert all(name.startswith(".") for name in leftovers)
    assert io.glob(str(tmp_path / "*")) == []


def test_reading_is_streaming(tmp_path):
    path = str(tmp_path / "big.jsonl.gz")
    line = b'{"id": "x", "text": "' + b"abcdefgh " * 100 + b'"}\n'
    with atomic.AtomicWriter(path, level=1) as out:
        for _ in range(60_000):
            out.write(line)
    assert os.path.getsize(path) < 5 << 20
    tracemalloc.start()
    count = 0
    for _ in io.iter_lines(path):
        count += 1
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 60_000
    # 54 MB of text went through; a streaming reader holds a few chunks at most.
    assert peak < 12 << 20


def test_temp_names_are_hidden_siblings(tmp_path):
    name = atomic.temp_name(str(tmp_path / "a.jsonl.gz"))
    assert os.path.dirname(name) == str(tmp_path)
    assert os.path.basename(name).startswith(".a.jsonl.gz.tmp-")


def test_exists_and_size(tmp_path, s3_server, s3_bucket):
    path = str(tmp_path / "f.jsonl")
    assert not io.exists(path)
    atomic.write_bytes(path, b"abc")
    assert io.exists(path) and io.size(path) == 3
    url = f"s3://{s3_bucket}/f.jsonl"
    assert not io.exists(url)
    atomic.write_bytes(url, b"abcd")
    assert io.exists(url) and io.size(url) == 4
    io.remove(url)
    assert not io.exists(url)


def test_glob_regex_semantics():
    rx = io._glob_regex("a/**/b*.gz")
    assert rx.match("a/b1.gz") and rx.match("a/x/y/b2.gz")
    assert not rx.match("a/x/c.gz")
    assert io._glob_regex("a/*.gz").match("a/x.gz") and not io._glob_regex("a/*.gz").match("a/x/y.gz")
    assert io._glob_regex("a/[!x]?.gz").match("a/yz.gz") and not io._glob_regex("a/[!x]?.gz").match("a/xz.gz")


def test_glob_base():
    assert io.glob_base("/r/documents/**/*.gz") == "/r/documents"
    assert io.glob_base("s3://b/r/documents/x/*.gz") == "s3://b/r/documents/x"
    assert io.glob_base("/r/documents/a.gz") == "/r/documents"


def test_time_is_not_used_for_anything(tmp_path):
    # writing the same content twice gives byte-identical compressed files (gzip mtime is 0)
    a, b = str(tmp_path / "a.jsonl.gz"), str(tmp_path / "b.jsonl.gz")
    atomic.write_bytes(a, PAYLOAD)
    time.sleep(1.1)
    atomic.write_bytes(b, PAYLOAD)
    assert Path(a).read_bytes() == Path(b).read_bytes()
