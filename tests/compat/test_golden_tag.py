"""`dolma tag` on the sample corpus reproduces the golden attribute files exactly (see tests/helpers/golden.py)."""

from __future__ import annotations

import pytest

from tests.conftest import read_jsonl
from tests.helpers.golden import EXPECTED, TAG_TAGGERS, run_tag


@pytest.fixture(scope="module")
def attributes(tmp_path_factory):
    return run_tag(tmp_path_factory.mktemp("golden-tag"))


@pytest.mark.parametrize("tagger", TAG_TAGGERS)
def test_tag_output_equals_golden(attributes, tagger):
    expected_files = sorted(p.relative_to(EXPECTED / "tag") for p in (EXPECTED / "tag" / tagger).rglob("*.jsonl.gz"))
    produced_files = sorted(p.relative_to(attributes) for p in (attributes / tagger).rglob("*.jsonl.gz"))
    assert expected_files, f"no golden files for {tagger}: run python tests/helpers/golden.py"
    assert produced_files == expected_files
    for rel in expected_files:
        assert read_jsonl(attributes / rel) == read_jsonl(EXPECTED / "tag" / rel), f"{rel} differs from golden"
