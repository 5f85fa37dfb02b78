"""`make demo` (dolma.demo) starts from the shipped web crawl and carries its pages through every step."""

from __future__ import annotations

import csv
import gzip
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from dolma.executors.summary import is_run_summary
from tests.conftest import REPO, read_jsonl

ENGLISH_PAGES = {
    "https://httpd.apache.org/docs/2.4/mpm.html",
    "https://httpd.apache.org/docs/2.4/handler.html",
    "https://docs.python.org/3.11/library/getpass.html",
    "https://docs.python.org/3.11/library/keyword.html",
    "https://debian-handbook.info/browse/stable/index.html",
}


def run_demo(workdir: Path) -> str:
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="200")
    result = subprocess.run(
        [sys.executable, "-m", "dolma.demo", str(workdir)], capture_output=True, text=True, env=env, cwd=workdir
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def outputs(root: Path) -> dict[str, str]:
    """Digest of every output the pipeline writes (the Bloom filter files aside: they are dedupe's state)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.parent.name != "filters" and not is_run_summary(p)
    }


def test_demo_runs_warc_tag_dedupe_mix_tokens_from_the_shipped_crawl(tmp_path):
    # a copy of what the demo reads: the configs, the sample corpus and the crawl
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    shutil.copytree(REPO / "tests" / "data" / "sample", tmp_path / "tests" / "data" / "sample")
    (tmp_path / "tests" / "data" / "warc").mkdir()
    shutil.copy(REPO / "tests" / "data" / "warc" / "demo.warc.gz", tmp_path / "tests" / "data" / "warc")
    out = run_demo(tmp_path)
    steps = ["0. warc", "1. tag", "2. dedupe documents", "3. dedupe paragraphs", "4. mix", "5. tokens"]
    positions = [out.find(s) for s in steps]
    assert -1 not in positions and positions == sorted(positions), positions  # warc first, then the rest in order
    demo = tmp_path / "demo-output" / "sample"
    pages = read_jsonl(demo / "documents" / "crawl" / "demo.jsonl.gz")
    assert len(pages) == 12 and {p["source"] for p in pages} == {"demo-crawl"}
    ids = {p["id"]: p["metadata"]["warc_url"] for p in pages}
    # the crawl's pages are tagged like the sample's...
    tagged = read_jsonl(demo / "attributes" / "ft_lang_id_en_doc_v2" / "crawl" / "demo.jsonl.gz")
    assert [r["id"] for r in tagged] == [p["id"] for p in pages]
    # ...and its English pages reach the mix and the tokens
    mixed = [r for path in (demo / "mixed").rglob("*.jsonl.gz") for r in read_jsonl(path)]
    assert {ids[r["id"]] for r in mixed if r["id"] in ids} == ENGLISH_PAGES
    tokenized = set()
    for index in (demo / "tokens").glob("*.csv.gz"):
        with gzip.open(index, "rt") as fh:
            tokenized |= {row[2] for row in csv.reader(fh) if row[2] in ids}
    assert {ids[i] for i in tokenized} == ENGLISH_PAGES
    assert "from the crawl: 5 of 12 pages kept by mix" in out and "from the crawl: 5 pages tokenized" in out
    # the demo is deterministic: a second run writes the same bytes
    first = outputs(tmp_path / "demo-output")
    run_demo(tmp_path)
    assert outputs(tmp_path / "demo-output") == first
