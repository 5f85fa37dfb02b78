"""Differential test: `dolma mix` here vs the reference toolkit on one corpus, tagged by our `dolma tag`.

Both mixers read the same documents and attribute files and run the same config (several streams in one
run); every stream must keep the same documents with the same content, attributes and provenance.
Intended differences (documented in docs/compatibility.md): shard names end in `.jsonl.gz` here (`.json.gz` in the
reference) and shards are split by output size, so only the concatenated documents are compared.
"""

from __future__ import annotations

import gzip
import json
import random
import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import SAMPLE, outputs_in, run_cli, write_jsonl_gz
from tests.helpers.reference import run_reference

pytestmark = pytest.mark.reference

TAGGERS = ["char_length_v1", "whitespace_tokenizer_v1", "random_number_v1", "ft_lang_id_en_doc_v2"]
CHARS = "char_length_v1__char_length_v1__length"
WORDS = "whitespace_tokenizer_v1__whitespace_tokenizer_v1__length"
RANDOM = "random_number_v1__random_number_v1__random"
ENGLISH = "ft_lang_id_en_doc_v2__ft_lang_id_en_doc_v2__en"
PII = "pii__regex__email"

WORDS_EN = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "data",
    "model",
    "token",
    "corpus",
    "filter",
    "mix",
    "shard",
    "train",
]
WORDS_XX = ["der", "schnelle", "braune", "fuchs", "café", "naïve", "über", "straße", "東京", "日本", "привет", "мир"]


def generated_docs(seed: int, n: int, prefix: str) -> list[dict]:
    """Deterministic documents of varied length and language; some contain e-mail addresses."""
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        words = WORDS_EN if rng.random() < 0.7 else WORDS_XX
        body = [rng.choice(words) for _ in range(rng.randint(0, 120))]
        if rng.random() < 0.3:
            body.insert(rng.randint(0, len(body)), f"user{i}@example.com")
        lines = [" ".join(body[j : j + 12]) for j in range(0, len(body), 12)]
        docs.append(
            {
                "id": f"{prefix}-{i}",
                "text": "\n".join(lines),
                "source": "generated",
                "added": "2024-01-01T00:00:00Z",
                "metadata": {"lang": rng.choice(["en", "de", "fr"]), "n": i % 7},
            }
        )
    return docs


def email_attributes(docs: list[dict]) -> list[dict]:
    """An attribute set written by the test: a span per e-mail address; scores sit on the rule boundaries."""
    rows = []
    scores = [1.0, 0.7, 0.6, 0.5]
    for idx, doc in enumerate(docs):
        spans = []
        pos = 0
        for word in doc["text"].replace("\n", " ").split(" "):
            if "@" in word:
                spans.append([pos, pos + len(word), scores[(idx + len(spans)) % 4]])
            pos += len(word) + 1
        rows.append({"id": doc["id"], "attributes": {PII: spans} if spans else {}})
    return rows


def build_corpus(root: Path) -> None:
    files = {
        "gen/a/part-0.jsonl.gz": generated_docs(1, 150, "a0"),
        "gen/a/part-1.jsonl.gz": generated_docs(2, 150, "a1"),
        "gen/b/part-0.jsonl.gz": generated_docs(3, 200, "b0"),
    }
    for rel, docs in files.items():
        write_jsonl_gz(root / "documents" / rel, docs)
        write_jsonl_gz(root / "attributes" / "pii" / rel, email_attributes(docs))
    if (SAMPLE / "documents").is_dir():
        shutil.copytree(SAMPLE / "documents", root / "documents" / "sample")


def streams(root: Path, out: Path) -> list[dict]:
    gen = [str(root / "documents" / "gen" / "**" / "*.jsonl.gz")]
    everything = [str(root / "documents" / "**" / "*.jsonl.gz")]
    tagged = ["char_length_v1", "whitespace_tokenizer_v1", "random_number_v1", "ft_lang_id_en_doc_v2"]

    def stream(name: str, documents: list[str], **extra) -> dict:
        body = {"name": name, "documents": documents, "attributes": tagged, "output": {"path": str(out / name)}}
        body.update(extra)
        return body

    return [
        stream(
            "jsonpath",
            everything,
            filter={
                "include": [f"$.attributes[?(@.{CHARS}[0][2] >= 100)]"],
                "exclude": [f"$.attributes[?(@.{RANDOM}[0][2] >= 0.8)]", f"$.attributes[?(@.{ENGLISH}[0][2] < 0.2)]"],
            },
        ),
        stream(
            "jq",
            gen,
            filter={
                "syntax": "jq",
                "include": [f".attributes.{WORDS}[0][2] >= 20", '.metadata.lang == "de"'],
                "exclude": [f".attributes.{RANDOM}[0][2] < 0.1", ".metadata.n == 3"],
            },
        ),
        stream(
            "jq-all",
            everything,
            filter={
                "syntax": "jq",
                "include": [f".attributes.{ENGLISH}[0][2] > 0.3 and .attributes.{WORDS}[0][2] >= 30"],
                "exclude": [f".attributes.{RANDOM}[0][2] >= 0.85"],
            },
            output={"path": str(out / "jq-all"), "discard_fields": ["attributes"]},
        ),
        stream(
            "combined",
            gen,
            filter={
                "include": [
                    f"$@.attributes[?(@.{ENGLISH} && @.{ENGLISH}[0] && @.{ENGLISH}[0][2] > 0.5)]",
                    "$.metadata[?(@.lang == 'fr' && @.n >= 5)]",
                ],
                "exclude": ["$.metadata[?(@.n == 1 || @.n == 2)]"],
            },
        ),
        stream(
            "spans",
            gen,
            attributes=[*tagged, "pii"],
            filter={"exclude": [f"$.attributes[?(@.{RANDOM}[0][2] < 0.05)]"]},
            span_replacement=[{"span": f"$.attributes.{PII}", "min_score": 0.7, "replacement": "<EMAIL {}>"}],
            output={
                "path": str(out / "spans"),
                "min_text_length": 60,
                "discard_fields": ["attributes", "added"],
            },
        ),
        stream(
            "mask",
            gen,
            attributes=["pii"],
            span_replacement=[
                {"span": f"$.attributes.{PII}", "min_score": 0.5, "max_score": 0.7, "replacement": "|||EMAIL|||"}
            ],
            output={"path": str(out / "mask"), "min_text_length": 1, "discard_fields": ["source"]},
        ),
    ]


def read_stream(directory: Path) -> list[dict]:
    rows = []
    for path in sorted(directory.glob("*.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            rows.extend(json.loads(line) for line in fh if line.strip())
    return sorted(rows, key=lambda r: (r["metadata"]["provenance"], r["id"]))


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ref-mix")
    root = tmp / "corpus"
    build_corpus(root)
    tag = run_cli(
        "tag", "--documents", str(root / "documents" / "**" / "*.jsonl.gz"), "--taggers", *TAGGERS, "--quiet"
    )
    assert tag.returncode == 0, tag.stderr
    ref_cfg, our_cfg = tmp / "ref.yaml", tmp / "ours.yaml"
    ref_cfg.write_text(yaml.safe_dump({"streams": streams(root, tmp / "ref"), "processes": 2}))
    our_cfg.write_text(yaml.safe_dump({"streams": streams(root, tmp / "ours"), "processes": 2}))
    ref = run_reference(["-c", str(ref_cfg), "mix"], tmp)
    assert ref.returncode == 0, ref.stderr[-3000:]
    mine = run_cli("-c", str(our_cfg), "mix", "--quiet")
    assert mine.returncode == 0, mine.stderr
    return tmp


@pytest.mark.parametrize("name", ["jsonpath", "jq", "jq-all", "combined", "spans", "mask"])
def test_mix_matches_reference(mixed, name):
    theirs = read_stream(mixed / "ref" / name)
    ours = read_stream(mixed / "ours" / name)
    assert theirs, f"reference kept nothing in stream {name}: the case tests nothing"
    assert [r["id"] for r in ours] == [r["id"] for r in theirs]
    for mine, ref in zip(ours, theirs):
        assert mine == ref, f"stream {name}, document {ref['id']}"


def test_mix_cases_are_selective(mixed):
    """Each filtering stream drops some documents and keeps some, and spans were really edited."""
    total = sum(1 for _ in (mixed / "corpus" / "documents" / "gen").rglob("*.jsonl.gz")) and 500
    for name in ["jq", "combined", "spans"]:
        kept = len(read_stream(mixed / "ours" / name))
        assert 0 < kept < total, name
    spans = read_stream(mixed / "ours" / "spans")
    assert any("<EMAIL user" in r["text"] for r in spans)
    assert all("attributes" not in r and "added" not in r for r in spans)
    assert all(len(r["text"].encode()) >= 60 for r in spans)
    masked = read_stream(mixed / "ours" / "mask")
    assert any("|||EMAIL|||" in r["text"] for r in masked)
    assert all("source" not in r for r in masked)
    shard_names = [p.name for p in outputs_in(mixed / "ours" / "jsonpath")]
    assert shard_names == [".jsonpath.mix-shards.json", "jsonpath-0000.jsonl.gz"]  # the shards and their record
    if (SAMPLE / "documents").is_dir():  # the sample corpus went through the streams that read everything
        for name in ("jsonpath", "jq-all"):
            assert any(not r["id"].startswith(("a0-", "a1-", "b0-")) for r in read_stream(mixed / "ours" / name))
