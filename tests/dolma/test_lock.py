"""Reproducible installs: every Python dependency comes from a committed lock with hashes, within the ranges that
pyproject.toml declares, and the environment the tests run in is exactly the lock."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
LOCKS = ROOT / ".ci" / "locks"
_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def read_lock(path: Path) -> list[tuple[str, str, Marker | None, list[str]]]:
    """(name, version, marker, hashes) for every pin of a `uv pip compile --generate-hashes` file."""
    pins: list[tuple[str, str, Marker | None, list[str]]] = []
    for line in path.read_text().splitlines():
        match = _PIN.match(line)
        if match:
            name, version, marker = match.groups()
            pins.append((canonicalize_name(name), version, Marker(marker) if marker else None, []))
        elif line.strip().startswith("--hash=sha256:") and pins:
            pins[-1][3].append(line.strip().split(":", 1)[1].rstrip(" \\"))
    return pins


def applicable(pins):
    return {name: version for name, version, marker, _ in pins if marker is None or marker.evaluate()}


@pytest.mark.parametrize("lock", ["dev.txt", "reference.txt", "datatrove.txt"])
def test_every_pin_has_hashes(lock):
    pins = read_lock(LOCKS / lock)
    assert len(pins) > 20
    assert all(hashes and all(len(h) == 64 for h in hashes) for _, _, _, hashes in pins), lock


def test_declared_ranges_contain_the_locked_versions():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    declared = [Requirement(r) for r in project["dependencies"] + extras["dev"]]
    # The dev extra includes other extras of this project (`dolma-toolkit[langid]`): check their packages.
    for req in [r for r in declared if canonicalize_name(r.name) == canonicalize_name(project["name"])]:
        declared.remove(req)
        declared += [Requirement(r) for extra in sorted(req.extras) for r in extras[extra]]
    assert any(canonicalize_name(r.name) == "pycld2" for r in declared), "the langid extra is part of dev"
    pins = read_lock(LOCKS / "dev.txt")
    for req in declared:
        versions = [v for name, v, _, _ in pins if name == canonicalize_name(req.name)]
        assert versions, f"{req.name} is declared in pyproject.toml but not in the lock (run `make lock`)"
        for version in versions:
            assert req.specifier.contains(version, prereleases=True), f"{req.name}=={version} outside {req.specifier}"


def test_the_test_environment_is_the_lock():
    """`make build` installs exactly the lock: a package at another version means an unlocked install."""
    wanted = applicable(read_lock(LOCKS / "dev.txt"))
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    wrong = {name: (v, installed.get(name)) for name, v in wanted.items() if installed.get(name) != v}
    assert not wrong, f"installed versions differ from .ci/locks/dev.txt (locked, installed): {wrong}"
