"""Differential test of the code taggers against the reference toolkit (its `code` extras installed).

One reference `dolma tag` run over the sample corpus, the shared edge cases (1 MB document included) and a
generated corpus of code-like documents dense in comment headers, copyright notices and secrets.
"""

from __future__ import annotations

import random

import pytest
from reference import assert_tagger_matches, tag_both

pytestmark = pytest.mark.reference

TAGGERS = ["code_copyright_comments_v1", "code_redpajama_taggers_v1", "code_secrets_v1"]

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
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        parts = [rng.choice(_PIECES) for _ in range(rng.randint(1, 10))]
        text = "".join(p + rng.choice(["\n", "\n\n", " ", "\r\n", "\t"]) for p in parts)
        docs.append({"id": f"code-{i}", "text": text, "source": "generated"})
    return docs


EXTRA = {"generated-code": generated_docs()}


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    return tag_both(tmp_path_factory.mktemp("ref-code"), TAGGERS, extra=EXTRA)


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
