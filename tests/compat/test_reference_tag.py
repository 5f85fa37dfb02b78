"""Differential test: `dolma tag` here vs the reference toolkit on the sample corpus and edge cases.

Same attribute files, ids, keys and spans; values within 1e-4. Intended differences: `random_number_v1`
values (the reference draws fresh random numbers on every run; ours are seeded by the document id), so only
its keys and spans are compared.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import read_jsonl
from tests.helpers.golden import TAG_TAGGERS
from tests.helpers.reference import EDGE_CASES, compare_outputs, tag_both

pytestmark = pytest.mark.reference

TAGGERS = TAG_TAGGERS  # the taggers of the golden `dolma tag` run
RANDOM_VALUED = {"random_number_v1"}


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    return tag_both(tmp_path_factory.mktemp("ref-tag"), TAGGERS)


@pytest.mark.parametrize("tagger", TAGGERS)
def test_tag_matches_reference(tagged, tagger):
    compare_outputs(*tagged, tagger, random_valued=tagger in RANDOM_VALUED)


def test_reference_run_covered_the_edge_cases(tagged):
    ours, _ = tagged
    rows = read_jsonl(ours / "attributes" / "char_length_v1" / "edge-cases" / "edge.jsonl.gz")
    assert len(rows) == len(EDGE_CASES) + 1
    assert json.dumps(rows[0]["attributes"]) == '{"char_length_v1__char_length_v1__length": [[0, 0, 0.0]]}'
