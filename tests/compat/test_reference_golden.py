"""The reference toolkit's own golden fixtures (dolma 1.2.1 sdist: tests/config + tests/data/expected) through our CLI.

`make golden` downloads and verifies the sdist (.ci/locks/golden.txt); DOLMA_GOLDEN_DIR points at the unpacked
tree. Each config runs unchanged: the mixer configs with relative paths from a copy of the fixture tree (as the
reference's tests run them from their repository root), the dedupe configs with `documents[0]` and
`bloom_filter.file` moved into a temporary directory (the only rewrite the reference's tests make). Outputs are
compared as the reference's tests compare them: mixer documents equal after removing `metadata.provenance` (whose
line numbers must increase) and an emptied `metadata`; dedupe rows with the same ids, the same attribute keys and
pairwise equal spans. The one allowed difference is the documented reference bug: on non-ASCII text its last
paragraph span ends past the end of the text (byte and character offsets mixed), ours at the end of the text.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, run_cli
from tests.helpers.reference import run_reference

GOLDEN = Path(os.environ.get("DOLMA_GOLDEN_DIR") or REPO / ".cache" / "golden" / "dolma-1.2.1")

MIX_CASES = {
    # config file: (expected file, output directory, shard prefix)
    "email-spans.json": ("email-spans.json.gz", "tests/work/output/email-spans", "email-spans"),
    "email-spans-jq.yaml": ("email-spans-jq.json.gz", "tests/work/output/email-spans-jq", "email-spans-jq"),
    "filter-by-spans.json": (
        "filter-by-spans.json.gz",
        "tests/work/output/filter-by-spans",
        "filter-by-spans-test",
    ),
    "mixer.json": ("mixer.json.gz", "tests/work/output/mixer", "mixer-test"),
    "paragraph-spans.json": ("remove-paragraphs.json.gz", "tests/work/output/paragraph-spans", "paragraph-spans-test"),
}
DEDUPE_CASES = {
    "dedupe-by-url.json": ("dedupe-by-url.json.gz", "dedupe_by_url"),
    "dedupe-paragraphs.json": ("dedupe-paragraphs.json.gz", "dedupe_paragraphs"),
    "dedupe-paragraph-ngrams.json": ("dedupe-paragraph-ngrams.json.gz", "dedupe_paragraph_ngrams"),
}


@pytest.fixture(scope="module")
def golden() -> Path:
    if not (GOLDEN / "tests" / "config").is_dir():
        pytest.fail(f"the reference's golden fixtures are missing at {GOLDEN}: run `make golden`")
    return GOLDEN


def load_jsonl_gz(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_config(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    return yaml.safe_load(text) if path.suffix == ".yaml" else json.loads(text)


def without_provenance(rows: list[dict]) -> list[dict]:
    """The reference test's check: every row has metadata.provenance `<path>:<line>` with increasing lines."""
    previous = 0
    for row in rows:
        path, line = row["metadata"].pop("provenance").rsplit(":", 1)
        assert path and int(line) > previous, row
        previous = int(line)
        if not row["metadata"]:
            row.pop("metadata")
    return rows


@pytest.mark.parametrize("config_name", sorted(MIX_CASES))
def test_reference_mixer_fixture(golden: Path, tmp_path: Path, config_name: str):
    expected_name, out_dir, prefix = MIX_CASES[config_name]
    shutil.copytree(golden / "tests" / "config", tmp_path / "tests" / "config")
    shutil.copytree(golden / "tests" / "data" / "provided", tmp_path / "tests" / "data" / "provided")
    result = run_cli("-c", f"tests/config/{config_name}", "mix", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    shards = sorted((tmp_path / out_dir).glob(f"{prefix}-*.jsonl.gz"))
    assert shards, f"no shards in {out_dir}: {result.stderr}"
    provided = without_provenance([row for shard in shards for row in load_jsonl_gz(shard)])
    expected = load_jsonl_gz(golden / "tests" / "data" / "expected" / expected_name)
    assert len(provided) == len(expected)
    assert provided == expected


def allowed_span_difference(text: str, expected: list, computed: list) -> bool:
    """The reference bug kept out of our output: on non-ASCII text the last span ends past the end of the text."""
    if text.isascii() or expected[:1] != computed[:1] or expected[2:] != computed[2:]:
        return False
    return expected[1] > len(text) and computed[1] == len(text.rstrip("\n"))


def run_dedupe_fixture(golden: Path, root: Path, config_name: str, cli=None) -> tuple[list[dict], dict[str, str]]:
    """Run one dedupe fixture under `root` (paths moved as the reference's tests move them): (rows, texts by id)."""
    attribute_set = DEDUPE_CASES[config_name][1]
    deduper = root / "tests" / "data" / "provided" / "deduper"
    shutil.copytree(golden / "tests" / "data" / "provided" / "deduper", deduper)
    config = load_config(golden / "tests" / "config" / config_name)
    config["documents"][0] = f"{root}/{config['documents'][0]}"
    config["bloom_filter"]["file"] = f"{root}/{config['bloom_filter']['file']}"
    config_path = root / config_name
    config_path.write_text(json.dumps(config), encoding="utf-8")
    result = (cli or ours)(root, "-c", str(config_path), "dedupe")
    assert result.returncode == 0, result.stderr
    texts = {row["id"]: row["text"] for row in load_jsonl_gz(deduper / "documents" / "000.json.gz")}
    return load_jsonl_gz(deduper / "attributes" / attribute_set / "000.json.gz"), texts


def ours(root: Path, *args: str):
    return run_cli(*args, cwd=root)


def compare_dedupe_rows(expected: list[dict], computed: list[dict], texts: dict[str, str], strict: bool) -> int:
    """The reference's comparison (ids, attribute keys, spans pairwise as `zip` pairs them); `strict` also wants the
    same number of spans. Returns how many spans differ by the one allowed difference."""
    assert len(computed) == len(expected)
    allowed = 0
    for exp_row, comp_row in zip(expected, computed):
        assert exp_row["id"] == comp_row["id"]
        assert exp_row["attributes"].keys() == comp_row["attributes"].keys(), exp_row["id"]
        for key, exp_spans in exp_row["attributes"].items():
            comp_spans = comp_row["attributes"][key]
            if strict:
                assert len(exp_spans) == len(comp_spans), (exp_row["id"], key, exp_spans, comp_spans)
            for exp_span, comp_span in zip(exp_spans, comp_spans):
                if exp_span != comp_span:
                    assert allowed_span_difference(texts[exp_row["id"]], exp_span, comp_span), (
                        exp_row["id"],
                        key,
                        exp_span,
                        comp_span,
                    )
                    allowed += 1
    return allowed


@pytest.mark.parametrize("config_name", sorted(DEDUPE_CASES))
def test_reference_dedupe_fixture(golden: Path, tmp_path: Path, config_name: str):
    computed, texts = run_dedupe_fixture(golden, tmp_path, config_name)
    expected = load_jsonl_gz(golden / "tests" / "data" / "expected" / DEDUPE_CASES[config_name][0])
    # at most the last span of a document differs, and only by the documented reference bug
    assert compare_dedupe_rows(expected, computed, texts, strict=False) <= len(expected)


@pytest.mark.parametrize("config_name", sorted(DEDUPE_CASES))
def test_dedupe_fixture_matches_the_reference_binary(golden: Path, tmp_path: Path, config_name: str):
    """Stricter than the reference's own test, whose `zip` hides missing spans: its expected n-gram file lists no
    span for two paragraphs that the reference 1.2.1 itself marks (score 0.5 = overlap_threshold, the filter
    sized from `estimated_doc_count: 1000` for 3,481 n-grams). We give the reference binary's answer, span for span.
    """
    computed, texts = run_dedupe_fixture(golden, tmp_path / "ours", config_name)

    def reference(root: Path, *args: str):
        return run_reference(list(args), tmp_path, cwd=root)

    theirs, _ = run_dedupe_fixture(golden, tmp_path / "theirs", config_name, cli=reference)
    compare_dedupe_rows(theirs, computed, texts, strict=True)
