"""Every example in configs/ parses into its command's config struct; the cheap ones also run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import REPO, SAMPLE, read_jsonl, run_cli

from dolma.commands import COMMANDS
from dolma.config import build

CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


def command_of(path: Path) -> str:
    # The longest command name the file name starts with (so train-fasttext-x.yaml is train-fasttext's).
    matches = [c for c in COMMANDS if path.stem == c or path.stem.startswith(c + "-")]
    name = max(matches, key=len) if matches else path.stem.split("-")[0]
    assert name in COMMANDS, f"{path.name}: config names start with a command name ({', '.join(COMMANDS)})"
    return name


def test_there_is_a_config_per_command():
    assert {command_of(p) for p in CONFIGS} >= {"tag", "list"}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_config_parses(path):
    config_type, _ = COMMANDS[command_of(path)].load()
    build(config_type, str(path))


def test_tag_example_runs(tmp_path):
    shutil.copytree(SAMPLE / "documents", tmp_path / "demo-output" / "sample" / "documents")
    result = run_cli("-c", str(REPO / "configs" / "tag.yaml"), "tag", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    attrs = tmp_path / "demo-output" / "sample" / "attributes"
    assert sorted(p.name for p in attrs.iterdir()) == sorted(
        build(COMMANDS["tag"].load()[0], str(REPO / "configs" / "tag.yaml")).taggers
    )
    rows = read_jsonl(next((attrs / "char_length_v1").rglob("*.jsonl.gz")))
    assert rows and all("char_length_v1__char_length_v1__length" in r["attributes"] for r in rows)
