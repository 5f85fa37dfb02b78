"""Differential test: JSONPath recursive descent (`..`) and slices (`[a:b:c]`) in mixer filters, here vs the reference.

Both mixers run one config with a stream per expression over a tiny corpus (documents + one attribute set) whose
nesting, list lengths and null values reach the edges of both features; every stream must keep the same
documents. Expressions the reference refuses are refused here too, with our own reason.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from tests.conftest import run_cli, write_jsonl_gz
from tests.helpers.reference import run_reference

DOCS = [
    {"metadata": {"lang": "en", "score": 0.9, "tags": ["x", "y", "z"], "nested": {"lang": "fr", "deep": {"k": 1}}}},
    {"metadata": {"tags": [], "nested": {"deep": {"k": 5}}}},
    {"metadata": {"lang": "de", "tags": ["q"]}},
    {},
    {"metadata": {"k": 3, "list": [{"k": 7}, {"k": 0}], "tags": ["p", "q", "r", "s"]}},
    {"metadata": {"k": 0, "list": [{"j": 1}], "lang": None}},
]
SCORES = [
    [[0, 1, 0.2], [1, 2, 0.8]],
    [[0, 1, 0.9]],
    [],
    None,
    [[0, 1, 0.1], [0, 1, 0.1], [0, 1, 0.7]],
    [[0, 1, 0.6]],
]

ACCEPTED = [
    # recursive descent
    "$..lang",
    "$..k",
    "$..deep",
    "$.metadata..k",
    "$..tags[2]",
    "$..*",
    "$.metadata..*",
    "$.metadata..list[*].k",
    "$..lang[?(@ == 'fr')]",
    "$.metadata.nested..k",
    "$..nested.deep.k",
    "$..list..k",
    "$..tags[*]",
    "$..['lang']",
    "$.attributes..a__x__s[?(@[2] > 0.5)]",
    "$.metadata[?(@..k > 4)]",
    # slices
    "$.metadata.tags[0:1]",
    "$.metadata.tags[1:]",
    "$.metadata.tags[:2]",
    "$.metadata.tags[-1:]",
    "$.metadata.tags[-2:]",
    "$.metadata.tags[:-3]",
    "$.metadata.tags[0:0]",
    "$.metadata.tags[1:1]",
    "$.metadata.tags[2:1]",
    "$.metadata.tags[-1:-1]",
    "$.metadata.tags[-3:1]",
    "$.metadata.tags[-4:-3]",
    "$.metadata.tags[-10:]",
    "$.metadata.tags[-10:-2]",
    "$.metadata.tags[0:-10]",
    "$.metadata.tags[5:]",
    "$.metadata.tags[3:]",
    "$.metadata.tags[:10]",
    "$.metadata.tags[1:-1]",
    "$.metadata.tags[::2]",
    "$.metadata.tags[::3]",
    "$.metadata.tags[1::2]",
    "$.metadata.tags[1:3:1]",
    "$.metadata.tags[::0]",
    "$.metadata.tags[0:1][0]",
    "$.metadata.list[0:2].k",
    "$.metadata.list[-1:].k",
    "$.metadata[?(@.tags[1:])]",
    "$.metadata[?(@.tags[-1:])]",
    "$.metadata[?(@.tags[0:1] == 'x')]",
    "$.attributes[?(@.a__x__s[1:2])]",
    "$.attributes.a__x__s[1:][?(@[2] > 0.5)]",
    "$..tags[1:]",
]
REFUSED = {
    "$..[0]": "after '..'",
    "$..[?(@.k > 4)]": "after '..'",
    "$.metadata..": "after '..'",
    "$.metadata.tags[0:2:-1]": "negative slice step",
}


def corpus(root: Path) -> None:
    docs = [{"id": f"d{i}", "text": f"text {i}", "source": "s", **doc} for i, doc in enumerate(DOCS)]
    rows = [{"id": d["id"], "attributes": {} if s is None else {"a__x__s": s}} for d, s in zip(docs, SCORES)]
    write_jsonl_gz(root / "documents" / "f.json.gz", docs)
    write_jsonl_gz(root / "attributes" / "a" / "f.json.gz", rows)


def config(root: Path, exprs: list[str]) -> Path:
    streams = [
        {
            "name": f"s{i}",
            "documents": [str(root / "documents" / "*.gz")],
            "attributes": ["a"],
            "output": {"path": str(root / "out" / f"s{i}"), "max_size_in_bytes": 1_000_000},
            "filter": {"include": [expr]},
        }
        for i, expr in enumerate(exprs)
    ]
    path = root / "mix.json"
    path.write_text(json.dumps({"streams": streams, "processes": 1}))
    return path


def kept(root: Path, idx: int) -> list[str]:
    ids = []
    for shard in sorted((root / "out" / f"s{idx}").glob("*.gz")):
        with gzip.open(shard, "rt") as f:
            ids += [json.loads(line)["id"] for line in f]
    return ids


def test_descent_and_slices_match_the_reference(tmp_path: Path):
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    for root in (ours, theirs):
        corpus(root)
    result = run_cli("-c", str(config(ours, ACCEPTED)), "mix", "--quiet")
    assert result.returncode == 0, result.stderr
    result = run_reference(["-c", str(config(theirs, ACCEPTED)), "mix"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    differences = {
        e: (kept(ours, i), kept(theirs, i)) for i, e in enumerate(ACCEPTED) if kept(ours, i) != kept(theirs, i)
    }
    assert not differences
    # the table is not vacuous: expressions keep different, non-trivial subsets
    assert len({tuple(kept(theirs, i)) for i in range(len(ACCEPTED))}) >= 8


@pytest.mark.parametrize("expr", sorted(REFUSED))
def test_what_the_reference_refuses_is_refused_with_a_reason(tmp_path: Path, expr: str):
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    for root in (ours, theirs):
        corpus(root)
    result = run_cli("-c", str(config(ours, [expr])), "mix", "--quiet")
    assert result.returncode == 2 and REFUSED[expr] in result.stderr and "filter.include[0]" in result.stderr
    assert not (ours / "out").exists()
    assert run_reference(["-c", str(config(theirs, [expr])), "mix"], tmp_path).returncode != 0
