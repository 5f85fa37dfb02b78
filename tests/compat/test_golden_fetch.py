"""`make golden`: the reference's sdist is used only when its sha256 is the one pinned in the lock file."""

from __future__ import annotations

import hashlib
import subprocess
import tarfile
from pathlib import Path

from tests.conftest import REPO


def make_golden(tmp_path: Path, sha: str, archive: Path) -> subprocess.CompletedProcess:
    lock = tmp_path / "golden.txt"
    lock.write_text(f"# test lock\n{archive.name} {sha} {archive.as_uri()}\n")
    cache = tmp_path / "cache"
    args = ["make", "-s", "-C", str(REPO), "golden", f"GOLDEN_DIR={cache}", f"GOLDEN_LOCK={lock}"]
    return subprocess.run(args, capture_output=True, text=True)


def test_download_is_checked_against_the_pinned_hash(tmp_path: Path):
    source = tmp_path / "src" / "pkg-1.0"
    for sub in ("tests/config", "tests/data/expected"):
        (source / sub).mkdir(parents=True)
    (source / "tests" / "config" / "a.json").write_text("{}")
    (source / "tests" / "data" / "expected" / "a.json.gz").write_bytes(b"x")
    archive = tmp_path / "pkg-1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname="pkg-1.0")
    good = hashlib.sha256(archive.read_bytes()).hexdigest()

    result = make_golden(tmp_path, "0" * 64, archive)
    assert result.returncode != 0
    assert not list((tmp_path / "cache").glob("pkg-1.0*")) and not (tmp_path / "cache" / ".fetched").exists()

    result = make_golden(tmp_path, good, archive)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "cache" / "pkg-1.0" / "tests" / "config" / "a.json").read_text() == "{}"
    assert (tmp_path / "cache" / "pkg-1.0.tar.gz").read_bytes() == archive.read_bytes()
