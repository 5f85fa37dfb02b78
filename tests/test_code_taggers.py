"""Hand-checkable tables for the code taggers (values worked out by hand from each docstring's definition)."""

from __future__ import annotations

import pickle

import pytest

from dolma import registry
from dolma.documents import Document


def spans(name: str, text: str) -> list[tuple]:
    tagger = registry.create(name)
    return [(s.start, s.end, s.type, round(s.score, 6)) for s in tagger.predict(Document(id="d", text=text))]


@pytest.mark.parametrize(
    "text, expected",
    [
        # max line, mean line, alnum / chars, letters / (word and punctuation runs + 1)
        ("", (0.0, 0.0, 0.0, 0.0)),
        ("word", (4.0, 4.0, 1.0, 4 / 2)),
        ("Hello world.\nSecond line here.", (17.0, 14.5, 24 / 30, 24 / 8)),
        ("x = 1", (5.0, 5.0, 2 / 5, 1 / 4)),
        ("a\n\n", (1.0, 0.5, 1 / 3, 1 / 2)),  # lines "a" and ""
        ("a\rbb", (2.0, 1.5, 3 / 4, 3 / 3)),  # \r ends a line too (str.splitlines)
        ("a²", (2.0, 2.0, 1.0, 1 / 3)),  # ² is alphanumeric but not a word character
        ("e\u0301t", (3.0, 3.0, 2 / 3, 2 / 2)),  # the combining mark belongs to the word
    ],
)
def test_redpajama_code_stats(text, expected):
    names = ["max_line_length_doc", "avg_line_length_doc", "alnum_prop_doc", "alpha_token_prop_doc"]
    want = [(0, len(text), name, round(value, 6)) for name, value in zip(names, expected)]
    assert spans("code_redpajama_taggers_v1", text) == want


@pytest.mark.parametrize(
    "text, span",
    [
        ("", (0, 1, "comment_block")),  # one empty line counts 1, past the end (the reference's offsets)
        ("x", None),
        (" \nx", None),  # a blank line with a space is not part of a block
        ("# Copyright 2020 Foo\nimport os\n", (0, 20, "comment_block")),
        ("# a\n# b\n# c\nimport os\n", (0, 9, "comment_block")),  # 3 + 3 + 3: newlines not counted
        ("\n\n// note\nx", (0, 9, "comment_block")),  # 1 + 1 + 7
        ("-- sql\n\nselect 1;", (0, 7, "comment_block")),
        ("  # indented\nx", None),
        ("x\n/* Copyright 2019 Bar */\nint y;", (2, 26, "copyright_notice")),
        ("/* hello */\n# Copyright\n", None),  # the first /* */ block decides
        ("/* a */ /* copyright */", None),
        ("# a\n/* COPYRIGHT */", (4, 19, "copyright_notice")),
        ("# a\n/* copyright never closed", (0, 3, "comment_block")),
    ],
)
def test_copyright_comments(text, span):
    got = spans("code_copyright_comments_v1", text)
    doc = got[-1]
    assert doc[:3] == (0, len(text), "doc")
    if span is None:
        assert got[:-1] == []
        assert doc[3] == 0.0
    else:
        start, end, kind = span
        assert got[:-1] == [(start, end, kind, 1.0)]
        assert doc[3] == (round((end - start + 1) / len(text), 6) if text else -1.0)


@pytest.mark.parametrize(
    "text, found, words",
    [
        ("", [], 0),
        ("   ", [], 0),
        ("no secrets in this sentence", [], 5),
        ("password = 'hunter2hunter2'", [(12, 26, "SECRET_Secret_Keyword")], 3),
        # Found on line 2 (offset 17 + 12), not at the value's earlier occurrence on line 1; repeats count once.
        (
            "a hunter2hunter2\npassword = 'hunter2hunter2'\npw = 'hunter2hunter2'",
            [(29, 43, "SECRET_Secret_Keyword")],
            8,
        ),
        ("key AKIAIOSFODNN7EXAMPLE AKIAIOSFODNN7EXAMPLE", [(4, 24, "SECRET_AWS_Access_Key")], 3),
        ("https://user:pass1234@example.com/x", [(13, 21, "SECRET_Basic_Auth_Credentials")], 1),
        (
            "secret = 'abcdefABCDEF0123456789abcdefABCDEF0123'",
            [(10, 48, "SECRET_Hex_High_Entropy_String"), (10, 48, "SECRET_Secret_Keyword")],
            3,
        ),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----", [(5, 26, "SECRET_Private_Key")], 9),
    ],
)
def test_code_secrets(text, found, words):
    got = spans("code_secrets_v1", text)
    assert [s[:3] for s in got[:-1]] == found
    assert all(s[3] == 1.0 for s in got[:-1])
    assert got[-1] == (0, len(text), "doc", round(len(found) / words, 6) if words else -1.0)


def test_code_taggers_pickle_and_describe():
    for name in ["code_secrets_v1", "code_copyright_comments_v1", "code_redpajama_taggers_v1"]:
        tagger = registry.create(name)
        tagger.predict(Document(id="d", text="password = 'hunter2hunter2'"))
        clone = pickle.loads(pickle.dumps(tagger))
        assert clone.predict(Document(id="d", text="x")) == tagger.predict(Document(id="d", text="x"))
        assert registry.get(name).description


def test_code_secrets_keyword_rules_apply_on_any_line():
    # A `key: value` password counts on a later line too (detect-secrets' YAML rules, as in the reference).
    got = spans("code_secrets_v1", "x = 1\nNew password: mypassword\n")
    assert got[0][:3] == (20, 30, "SECRET_Secret_Keyword")  # 6 + len("New password: ")
