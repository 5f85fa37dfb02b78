"""Differential test: `dolma tag` here vs the reference toolkit on the sample corpus and edge cases.

Same attribute files, ids, keys and spans; values within 1e-4. Intended differences: `random_number_v1`
values (the reference draws fresh random numbers on every run; ours are seeded by the document id), so only
its keys and spans are compared.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import SAMPLE, read_jsonl, run_cli, write_jsonl_gz
from reference import run_reference

pytestmark = pytest.mark.reference

TAGGERS = [
    "char_length_v1",
    "char_length_with_paragraphs_v1",
    "whitespace_tokenizer_v1",
    "whitespace_tokenizer_with_paragraphs_v1",
    "bytes_length_v1",
    "random_number_v1",
    "ft_lang_id_en_doc_v2",
]
RANDOM_VALUED = {"random_number_v1"}

EDGE_CASES = [
    "",
    " ",
    "   \n\n  \t",
    "word",
    "Hello world.",
    "\n\nleading newlines\n",
    "trailing spaces   \n   \n",
    "windows\r\nline\r\nendings\r\n",
    "Ünïcödé façade — naïve café, 東京は日本の首都です。 🙂🚀 emoji too",
    "Это русский текст. Ceci est un texte français. Dies ist ein deutscher Text.",
    "x" * 20000,
    "long line " * 5000,
    "\n".join(f"line {i}: " + "abc " * (i % 7) for i in range(2000)),
    "tabs\tand\u00a0non-breaking\u2003spaces\u2028line separator\u2029para",
    "punctuation!!! ... ??? --- ((( ))) \"quotes\" 'single' `back`",
    "\x00 control \x07 chars \x1b[0m",
    "a" + "\n" * 100 + "b",
]


def edge_case_docs() -> list[dict]:
    docs = [{"id": f"edge-{i}", "text": t, "source": "edge"} for i, t in enumerate(EDGE_CASES)]
    one_mb = ("All work and no play makes Jack a dull boy. " * 24000)[: 1 << 20]
    docs.append({"id": "edge-1mb", "text": one_mb, "source": "edge"})
    return docs


def prepare(tmp: Path) -> Path:
    root = tmp / "corpus"
    shutil.copytree(SAMPLE / "documents", root / "documents")
    write_jsonl_gz(root / "documents" / "edge-cases" / "edge.jsonl.gz", edge_case_docs())
    return root


def compare_rows(ours: list[dict], theirs: list[dict], where: str, tagger: str) -> None:
    assert [r["id"] for r in ours] == [r["id"] for r in theirs], f"{where}: ids differ"
    for mine, ref in zip(ours, theirs):
        assert set(mine["attributes"]) == set(ref["attributes"]), f"{where} {mine['id']}: keys differ"
        assert mine.get("source") == ref.get("source"), f"{where} {mine['id']}: source differs"
        for key, spans in ref["attributes"].items():
            got = mine["attributes"][key]
            assert len(got) == len(spans), f"{where} {mine['id']} {key}: {got} != {spans}"
            for g, r in zip(got, spans):
                assert g[:2] == r[:2], f"{where} {mine['id']} {key}: span {g} != {r}"
                if tagger in RANDOM_VALUED:
                    assert 0.0 <= g[2] <= 1.0
                else:
                    assert abs(g[2] - r[2]) <= 1e-4, f"{where} {mine['id']} {key}: {g[2]} != {r[2]}"


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ref-tag")
    ours = prepare(tmp / "ours")
    theirs = prepare(tmp / "theirs")
    pattern = "documents/**/*.jsonl.gz"
    ref = run_reference(["tag", "--documents", pattern, "--taggers", *TAGGERS, "--processes", "2"], tmp, cwd=theirs)
    assert ref.returncode == 0, ref.stderr[-3000:]
    mine = run_cli("tag", "--documents", pattern, "--taggers", *TAGGERS, "--processes", "2", "--quiet", cwd=ours)
    assert mine.returncode == 0, mine.stderr
    return ours, theirs


@pytest.mark.parametrize("tagger", TAGGERS)
def test_tag_matches_reference(tagged, tagger):
    ours, theirs = tagged
    ref_files = sorted(p.relative_to(theirs) for p in (theirs / "attributes" / tagger).rglob("*.jsonl.gz"))
    our_files = sorted(p.relative_to(ours) for p in (ours / "attributes" / tagger).rglob("*.jsonl.gz"))
    assert ref_files, f"reference wrote nothing for {tagger}"
    assert our_files == ref_files
    for rel in ref_files:
        compare_rows(read_jsonl(ours / rel), read_jsonl(theirs / rel), str(rel), tagger)


def test_reference_run_covered_the_edge_cases(tagged):
    ours, _ = tagged
    rows = read_jsonl(ours / "attributes" / "char_length_v1" / "edge-cases" / "edge.jsonl.gz")
    assert len(rows) == len(EDGE_CASES) + 1
    assert json.dumps(rows[0]["attributes"]) == '{"char_length_v1__char_length_v1__length": [[0, 0, 0.0]]}'
