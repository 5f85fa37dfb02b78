"""Every example in configs/ parses into its command's config struct; the cheap ones also run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dolma.commands import COMMANDS
from dolma.config import build
from tests.conftest import REPO, SAMPLE, outputs_in, read_jsonl, run_cli

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
    assert sorted(p.name for p in outputs_in(attrs)) == sorted(
        build(COMMANDS["tag"].load()[0], str(REPO / "configs" / "tag.yaml")).taggers
    )
    rows = read_jsonl(next((attrs / "char_length_v1").rglob("*.jsonl.gz")))
    assert rows and all("char_length_v1__char_length_v1__length" in r["attributes"] for r in rows)


def test_warc_example_runs_on_the_demo_crawl(tmp_path):
    """configs/warc.yaml is `make demo`'s first step: the shipped crawl becomes documents beside the sample's."""
    crawl = tmp_path / "tests" / "data" / "warc"
    crawl.mkdir(parents=True)
    shutil.copy(REPO / "tests" / "data" / "warc" / "demo.warc.gz", crawl)
    result = run_cli("-c", str(REPO / "configs" / "warc.yaml"), "warc", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = read_jsonl(tmp_path / "demo-output" / "sample" / "documents" / "crawl" / "demo.jsonl.gz")
    assert len(rows) == 12 and {r["source"] for r in rows} == {"demo-crawl"}
    languages = {r["metadata"].get("language") for r in rows}
    assert {"en", "de", "ja", "ko"} <= languages
    licensed = [r["metadata"]["warc_url"] for r in rows if r["attributes"].get("cc_re_fast__cc_re_fast__cc_by_sa")]
    assert licensed == ["https://debian-handbook.info/browse/stable/index.html"]
