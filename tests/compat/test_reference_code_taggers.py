"""Differential test of the code taggers against the reference toolkit (its `code` extras installed).

One reference `dolma tag` run over one sample document in 16 (154, all three sources), the shared edge cases (1 MB
document included) and a generated corpus of code-like documents dense in comment headers, copyright notices and
secrets. A second run tags a corpus with `metadata.ext` for `code_starcoder_taggers_v2`: the files in
tests/data/code under their own and other extensions, standard-library Python modules, generated fragments, the
edge cases and a 1 MB document per language.
"""

from __future__ import annotations

import ast
import random
from pathlib import Path

import pytest

from tests.conftest import DATA, read_jsonl
from tests.helpers.code_corpus import code_doc, missing_metadata_docs, scores_by_name
from tests.helpers.reference import EDGE_CASES, assert_tagger_matches, sample_share, tag_both, tag_one_both
from tests.helpers.textgen import fragment_docs

pytestmark = pytest.mark.reference

TAGGERS = ["code_copyright_comments_v1", "code_redpajama_taggers_v1", "code_secrets_v1", "code_starcoder_taggers_v2"]

_PIECES = [
    "# Copyright 2021 The Authors. All rights reserved.",
    "// SPDX-License-Identifier: MIT",
    "-- migration script",
    "#!/usr/bin/env python3",
    "/* Copyright (c) 2019 Example Corp.\n * Licensed under the Apache License 2.0\n */",
    "/** Utility helpers */",
    "/* unterminated comment",
    "import os, sys",
    "def main(argv):\n    return 0",
    "int x = 42; // the answer",
    "password = 'hunter2hunter2'",
    "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
    "secret = 'abcdefABCDEF0123456789abcdefABCDEF0123'",
    "url = 'https://admin:s3cr3tpass@db.example.com:5432/app'",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
    "token: ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "données = {'clé': 'valeur'}  # commentaire en français",
    "x² + y² = z²; ½ ≈ 0.5",
    "",
    "   ",
]


def generated_docs(n: int = 200, seed: int = 11) -> list[dict]:
    seps = ["\n", "\n\n", " ", "\r\n", "\t"]
    return fragment_docs(_PIECES, seps, n=n, seed=seed, max_parts=10, prefix="code", source="generated")


EXTRA = {"generated-code": generated_docs()}


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    return tag_both(tmp_path_factory.mktemp("ref-code"), TAGGERS, extra=EXTRA, keep=sample_share(16, "generated"))


@pytest.mark.parametrize("tagger", TAGGERS)
def test_matches_reference(tagged, tagger):
    assert_tagger_matches(*tagged, tagger)


def test_generated_corpus_exercises_every_span_type():
    """The generated corpus is only useful if it holds both header kinds and several kinds of secret."""
    from dolma.documents import Document
    from taggers.code import CodeSecretsTagger, copyright_span

    headers = {found[2] for d in EXTRA["generated-code"] if (found := copyright_span(d["text"]))}
    assert headers == {"comment_block", "copyright_notice"}
    tagger = CodeSecretsTagger()
    kinds = {s.type for d in EXTRA["generated-code"][:60] for s in tagger.predict(Document(id="x", text=d["text"]))}
    assert {"SECRET_Secret_Keyword", "SECRET_AWS_Access_Key", "SECRET_Private_Key"} <= kinds


# ---- code_starcoder_taggers_v2 on documents with metadata.ext --------------------------------------------------

STARCODER = "code_starcoder_taggers_v2"
CODE_DIR = DATA / "code"
# Every language the reference tells apart (Python, JavaScript, Java, HTML; "pyw", "jsm", "htm", "xhtml" are
# among its aliases) and some it does not (C, C++, XML, Markdown: comment ratio 0.5).
EXTS = ["py", "pyw", "js", "jsm", "java", "html", "htm", "xhtml", "c", "cpp", "xml", "md"]
COMMENT_EXTS = {"py", "pyw", "js", "jsm", "java"}  # the reference divides by zero on an empty text of these
# The reference's Java lexer takes quadratic time on long runs of words (this one alone costs it ~25 s; ours is
# guarded, see test_guarded_java_lexer_* in test_code_taggers.py); it is compared under the other extensions.
QUADRATIC_IN_REFERENCE = {"long line " * 5000}

_FRAGMENTS = [
    "# comment",
    "#",
    "#!a#b",
    "x = 1  # trailing",
    '"""Module doc."""',
    'def f(x):\n    """Doc\n\n    more\n    """\n    return x',
    "async def g():\n    '''not counted'''",
    "class A:\n    'class doc'",
    "(",
    "'",
    "// line",
    "/* block */",
    "/** doc\n * @param x\n */",
    'var s = "// not";',
    "char c = '/';",
    "re = /a\\/b/g;",
    "x = `t // ${y}`;",
    "<p>Visible words in a paragraph of the page.</p>",
    "<script>var a = '<p>';</script>",
    "<style>p { color: red }</style>",
    "<!-- comment -->",
    "&amp; &nbsp; &#169; &bogus;",
    "<![CDATA[cdata]]>",
    '<?xml version="1.0"?>',
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.",
    "\t",
    "\r",
    "\x0c",
    "é東京🙂",
]


def _fragment_docs(n: int = 300, seed: int = 5) -> list[dict]:
    def metadata(rng: random.Random) -> dict:
        return {"ext": rng.choice(EXTS), "max_stars_count": rng.choice([None, 0, 7, 2.5, "12"])}

    seps = ["\n", "\n", " ", "", "\r\n", "\n    "]
    return fragment_docs(
        _FRAGMENTS, seps, n=n, seed=seed, max_parts=12, prefix="frag", source="fragments", metadata=metadata
    )


def _stdlib_docs(limit: int = 40) -> list[dict]:
    """Real Python modules of the running interpreter (the first `limit` by name between 2 and 40 kB)."""
    paths = sorted(p for p in Path(ast.__file__).parent.glob("*.py") if 2_000 < p.stat().st_size < 40_000)
    return [
        {
            "id": f"stdlib-{p.stem}",
            "text": p.read_text(encoding="utf-8"),
            "source": "stdlib",
            "metadata": {"ext": "py"},
        }
        for p in paths[:limit]
    ]


def _one_mb(text: str) -> str:
    """Whole copies of `text` until the result reaches 1 MiB (whole copies keep the code well-formed)."""
    return text * (-(-(1 << 20) // len(text)))


def starcoder_corpus() -> dict[str, list[dict]]:
    files = sorted(CODE_DIR.iterdir())
    own = [code_doc(p.name, p.read_text(), "files", ext=p.suffix[1:], max_stars_count=3) for p in files]
    crossed = [code_doc(f"{p.name}-as-{ext}", p.read_text(), "files", ext=ext) for p in files for ext in EXTS]
    edges = [
        code_doc(f"edge-{i}-{ext}", text, "edge", ext=ext)
        for i, text in enumerate(EDGE_CASES)
        for ext in EXTS
        if (text or ext not in COMMENT_EXTS) and not (ext == "java" and text in QUADRATIC_IN_REFERENCE)
    ]
    big = {"py": "inventory.py", "js": "cart.js", "java": "Ledger.java", "html": "shop.html", "xml": "layout.xml"}
    large = [
        code_doc(f"1mb-{ext}", _one_mb((CODE_DIR / name).read_text()), "large", ext=ext) for ext, name in big.items()
    ]
    large.append(code_doc("long-line-js", "var x = 1; // " + "y" * 200_000, "large", ext="js"))
    large.append(code_doc("long-line-py", "x = 1  # " + "é" * 200_000, "large", ext="py"))
    text = "# c\nx = 1"
    missing = [
        *missing_metadata_docs(text),
        code_doc("upper-ext", text, "missing", ext="PY"),
        code_doc("dot-ext", text, "missing", ext=".py"),
    ]
    return {
        "files": own + crossed,
        "stdlib": _stdlib_docs(),
        "fragments": _fragment_docs(),
        "edges": edges,
        "large": large,
        "missing": missing,
    }


@pytest.fixture(scope="module")
def starcoder_tagged(tmp_path_factory):
    return tag_both(tmp_path_factory.mktemp("ref-starcoder"), [STARCODER], extra=starcoder_corpus(), sample=False)


def test_starcoder_matches_reference_with_metadata(starcoder_tagged):
    assert_tagger_matches(*starcoder_tagged, STARCODER)


def test_starcoder_corpus_exercises_every_branch(starcoder_tagged):
    """The comparison above is only worth something if the values are not all the defaults."""
    ours, _ = starcoder_tagged
    values = scores_by_name(ours, STARCODER)
    assert values["has_xml_template_doc"] == {0.0, 1.0}
    assert {0.0, 3.0, 7.0, 2.5, 12.0, 41.0} <= values["num_github_stars_doc"]
    ratios = values["code_to_comment_ratio_doc"]
    assert {0.0, 0.5} <= ratios and len(ratios - {0.0, 0.5, -1.0}) > 100
    html = values["code_to_text_ratio_html_doc"]
    assert {-1.0, 0.0, 1.0} <= html and len(html - {-1.0, 0.0, 1.0}) > 10


def test_starcoder_empty_code_document(tmp_path):
    """Intended difference: the reference crashes on an empty Python/JavaScript/Java text; here the ratio is -1."""
    doc = code_doc("empty", "", "s", ext="py")
    ref, mine = tag_one_both(tmp_path, doc, STARCODER)
    assert ref.returncode != 0 and "ZeroDivisionError" in ref.stderr
    assert mine.returncode == 0, mine.stderr
    (row,) = read_jsonl(tmp_path / "ours" / "attributes" / STARCODER / "a.jsonl.gz")
    scores = {key.rsplit("__", 1)[1]: spans for key, spans in row["attributes"].items()}
    assert scores["code_to_comment_ratio_doc"] == [[0, 0, -1.0]]
    assert scores["code_to_text_ratio_html_doc"] == [[0, 0, 1.0]]
