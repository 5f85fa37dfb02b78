"""Hand-checkable tables for the code taggers (values worked out by hand from each docstring's definition)."""

from __future__ import annotations

import pickle

import pytest

from dolma import registry
from dolma.documents import Document
from dolma.errors import TaggerError

STARCODER = "code_starcoder_taggers_v2"


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
    for name in ["code_secrets_v1", "code_copyright_comments_v1", "code_redpajama_taggers_v1", STARCODER]:
        tagger = registry.create(name)
        tagger.predict(Document(id="d", text="password = 'hunter2hunter2'"))
        clone = pickle.loads(pickle.dumps(tagger))
        assert clone.predict(Document(id="d", text="x")) == tagger.predict(Document(id="d", text="x"))
        assert registry.get(name).description


def test_code_secrets_keyword_rules_apply_on_any_line():
    # A `key: value` password counts on a later line too (detect-secrets' YAML rules, as in the reference).
    got = spans("code_secrets_v1", "x = 1\nNew password: mypassword\n")
    assert got[0][:3] == (20, 30, "SECRET_Secret_Keyword")  # 6 + len("New password: ")


def starcoder(text: str, metadata: dict | None, config: dict | None = None) -> dict[str, float]:
    tagger = registry.create(STARCODER, config)
    got = tagger.predict(Document(id="d", text=text, metadata=metadata))
    assert [(s.start, s.end) for s in got] == [(0, len(text))] * 4
    return {s.type: s.score for s in got}


@pytest.mark.parametrize(
    "ext, text, ratio",
    [
        ("py", "# hi", 2 / 4),  # "hi": the "#" and the spaces around are not counted
        ("py", "x = 1  # a # b", 4 / 14),  # every "#" removed: " a  b" stripped = "a  b"
        ("py", "# a\n#b", 2 / 6),  # comments are concatenated without separator: " ab"
        ("py", '"""Doc."""\n# c', 7 / 14),  # docstring + "\n" + " c" = "Doc.\n c"
        ("py", 'def f():\n    """\n    Doc.\n    """', 4 / 33),  # docstrings are dedented and trimmed
        ("py", "x = 1\n'''not a docstring'''", 0.0),  # only the first statement of a body is one
        ("py", "async def f():\n    '''no'''", 0.0),  # the reference skips async functions
        ("py", "$ # c", 1 / 5),  # does not parse (no docstrings) but tokenizes (comments count)
        ("py", "def f(:\n  # c", 0.0),  # does not tokenize: 0
        ("pyw", "#", 0.0),
        ("js", "x = 1; // c\n/* d */", (4 + 7) / 19),  # delimiters count
        ("js", 'var s = "// no";', 0.0),
        ("jsm", "x = /a\\/\\/b/; // c", 4 / 18),  # a regex literal is not a comment
        ("java", "char c = '/'; // c", 4 / 18),
        ("java", "x = '/* c */';", 7 / 14),  # not a Java char literal, so the comment counts
        ("java", '"open // c', 0.0),  # an unclosed string runs to the end of the text
        ("c", "// c", 0.5),  # languages without comment rules get 0.5
        ("PY", "# c", 0.5),  # extensions are matched exactly
        (None, "# c", 0.5),
        ("html", "<!-- c -->", 0.5),
        ("py", "", -1.0),  # the reference divides by zero here
        ("java", "", -1.0),
        ("md", "", 0.5),
    ],
)
def test_starcoder_comment_ratio(ext, text, ratio):
    assert starcoder(text, {"ext": ext})["code_to_comment_ratio_doc"] == pytest.approx(ratio)


@pytest.mark.parametrize(
    "ext, text, ratio",
    [
        ("html", "<p>" + "a" * 101 + "</p>", 101 / 108),
        ("htm", "<p>" + "a" * 100 + "</p>", 0.0),  # 100 visible characters are not enough
        ("html", "<b>" + "a" * 60 + "</b><!-- x --><i>" + "b" * 60 + "</i>", 120 / 144),
        ("xhtml", "<script>" + "x" * 200 + "</script><style>p{}</style>" + "y" * 90, 0.0),
        ("html", "a &amp; b " * 20, 120 / 200),  # entities count as the character they stand for
        ("html", "", -1.0),
        ("xht", " ", 0.0),
        ("py", "<p>" + "a" * 200 + "</p>", 1.0),  # other files get 1
        (None, "", 1.0),
    ],
)
def test_starcoder_html_ratio(ext, text, ratio):
    assert starcoder(text, {"ext": ext})["code_to_text_ratio_html_doc"] == pytest.approx(ratio)


@pytest.mark.parametrize(
    "text, flag",
    [
        ('<?xml version="1.0"?>\n<a/>', 1.0),
        ("a" * 86 + "<?xml version=", 1.0),  # must start in the first 100 characters
        ("a" * 87 + "<?xml version=", 0.0),
        ("<?XML version='1.0'?>", 0.0),
        ("<?xml encoding='utf-8'?>", 0.0),
        ("", 0.0),
    ],
)
def test_starcoder_xml_template(text, flag):
    assert starcoder(text, None)["has_xml_template_doc"] == flag


@pytest.mark.parametrize(
    "metadata, stars",
    [
        (None, 0.0),
        ({}, 0.0),
        ({"max_stars_count": None}, 0.0),
        ({"max_stars_count": 41}, 41.0),
        ({"max_stars_count": "12"}, 12.0),
        ({"max_stars_count": 2.5}, 2.5),
    ],
)
def test_starcoder_stars(metadata, stars):
    assert starcoder("x", metadata)["num_github_stars_doc"] == stars


def test_starcoder_bad_stars_names_the_document_and_field():
    with pytest.raises(TaggerError, match=r"'d'.*metadata\.max_stars_count = 'many'"):
        starcoder("x", {"max_stars_count": "many"})


def test_starcoder_config_renames_fields():
    got = starcoder("# hi", {"lang": "py", "stars": 5}, {"ext_field": "lang", "stars_field": "stars"})
    assert got["code_to_comment_ratio_doc"] == 0.5 and got["num_github_stars_doc"] == 5.0


@pytest.mark.parametrize(
    "text",
    [
        "public static void main(String[] args) { }",
        "class Foo extends Bar(",
        "import static ( /** d */\nmodule\n",
        "var x (\n// c\n",
        "a b c d.e (",
        "a b 1c d (",
        "x 1(",
        "word " * 300 + "call(",
        "long line " * 300,
        "List<String> names = new ArrayList<>(); // c\nMap<K, V>[] m ( );",
        "\t\u00a0é x\u2028y (",
    ],
)
def test_guarded_java_lexer_gives_pygments_tokens(text):
    from pygments.lexers import JavaLexer

    from taggers.code import _java_lexer

    assert list(_java_lexer().get_tokens(text)) == list(JavaLexer().get_tokens(text))


def test_guarded_java_lexer_skips_hopeless_method_rule_attempts(monkeypatch):
    """A run of words without "(" never reaches the backtracking expression (it did, once per word)."""
    from taggers import code

    calls = []
    real = code._MethodRuleGuard.__call__

    def counting(self, text, pos, endpos=None):
        original = self.match

        def match(*args):
            calls.append(args[1])
            return original(*args)

        self.match = match
        try:
            return real(self, text, pos, endpos)
        finally:
            self.match = original

    monkeypatch.setattr(code._MethodRuleGuard, "__call__", counting)
    code.lexer_comment_text("long line " * 2000 + "// c", "java")
    assert calls == []
    code.lexer_comment_text("public void run() {}", "java")
    assert calls == [0]


def test_guarded_java_lexer_scans_a_long_text_once(monkeypatch):
    """The pre-check's scan of the text is cached while `using(this)` re-lexes snippets (it once thrashed)."""
    from taggers import code

    scans = []
    real = code._CHAIN

    class Counting:
        def finditer(self, text):
            scans.append(len(text))
            return real.finditer(text)

    monkeypatch.setattr(code, "_CHAIN", Counting())
    monkeypatch.setattr(code, "_GUARDED_JAVA", [])  # a fresh guard with an empty cache
    text = "public final class A {\n    public static void run(int x) { }\n}\n" * 200
    code.lexer_comment_text(text, "java")
    assert scans.count(len(text)) == 1
    assert len(scans) > 1  # the signatures' return types were re-lexed as snippets
