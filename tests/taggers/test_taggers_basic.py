"""Hand-checkable tables for the length, sampling and language taggers."""

from __future__ import annotations

import pickle

import pytest

from dolma import registry
from dolma.documents import Document, Span
from dolma.tagger import paragraphs
from taggers.length import count_tokens
from taggers.sampling import uniform


def spans(name: str, text: str, **options) -> list[tuple]:
    tagger = registry.create(name, options)
    return [(s.start, s.end, s.type, s.score) for s in tagger.predict(Document(id="d", text=text))]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", [(0, 0, "length", 0.0)]),
        ("abc", [(0, 3, "length", 3.0)]),
        ("héllo", [(0, 5, "length", 5.0)]),
        ("🙂x", [(0, 2, "length", 2.0)]),
    ],
)
def test_char_length(text, expected):
    assert spans("char_length_v1", text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", [(0, 0, "bytes", 0.0)]),
        ("abc", [(0, 3, "bytes", 3.0)]),
        ("é", [(0, 1, "bytes", 2.0)]),
        ("🙂", [(0, 1, "bytes", 4.0)]),
    ],
)
def test_bytes_length(text, expected):
    assert spans("bytes_length_v1", text) == expected


@pytest.mark.parametrize(
    "text, tokens",
    [
        ("", 1),
        ("word", 2),
        ("two words", 3),
        ("Hello world.", 4),  # Hello, world, "."
        ("a, b", 4),
        ("wait...!!", 3),  # wait, "...!!"
        ("a²", 3),  # superscript two is not a word character in Unicode (UTS #18)
        ("e\u0301", 2),  # a combining mark belongs to its word
        ("   \n\t ", 1),
    ],
)
def test_count_tokens(text, tokens):
    assert count_tokens(text) == tokens
    assert spans("whitespace_tokenizer_v1", text) == [(0, len(text), "length", float(tokens))]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a\nb", [(0, 2, "a\n"), (2, 3, "b")]),
        ("a\n\nb", [(0, 2, "a\n"), (3, 4, "b")]),
        ("\n  \n", []),
        ("x\r\ny", [(0, 3, "x\r\n"), (3, 4, "y")]),
        ("only", [(0, 4, "only")]),
    ],
)
def test_paragraphs(text, expected):
    assert paragraphs(text) == expected


def test_paragraph_taggers():
    text = "Hello world.\n\n  \nBye"
    assert spans("char_length_with_paragraphs_v1", text) == [
        (0, 13, "paragraph", 13.0),
        (17, 20, "paragraph", 3.0),
        (0, 20, "document", 20.0),
    ]
    assert spans("whitespace_tokenizer_with_paragraphs_v1", text) == [
        (0, 13, "paragraph", 4.0),
        (17, 20, "paragraph", 2.0),
        (0, 20, "document", 6.0),
    ]
    assert spans("whitespace_tokenizer_with_paragraphs_v1", " \n ") == [(0, 3, "document", 0.0)]


def test_random_number_depends_on_id_and_seed_only():
    assert uniform("a", 0) == uniform("a", 0)
    assert uniform("a", 0) != uniform("b", 0)
    assert uniform("a", 0) != uniform("a", 1)
    values = [uniform(str(i), 0) for i in range(20000)]
    assert all(0.0 <= v < 1.0 for v in values)
    mean = sum(values) / len(values)
    assert abs(mean - 0.5) < 0.01  # 0.5 +- 5 sigma for a uniform mean over 20k draws
    assert spans("random_number_v1", "text", seed=3)[0][:3] == (0, 4, "random")


@pytest.mark.parametrize(
    "text, english",
    [
        ("The quick brown fox jumps over the lazy dog and runs into the forest.", True),
        ("Le renard brun rapide saute par-dessus le chien paresseux.", False),
        ("Der schnelle braune Fuchs springt über den faulen Hund.", False),
    ],
)
def test_language_id(text, english):
    result = spans("ft_lang_id_en_doc_v2", text)
    assert [s[:3] for s in result] == [(0, len(text), "en"), (0, len(text), "not_en")]
    assert abs(result[0][3] + result[1][3] - 1.0) < 1e-9
    assert (result[0][3] > 0.5) is english


def test_language_model_path_override_and_missing_model(tmp_path):
    from dolma.errors import TaggerError
    from taggers.language import SHIPPED_LID_MODEL

    tagger = registry.create("ft_lang_id_en_doc_v2", {"model_path": SHIPPED_LID_MODEL})
    assert tagger.predict(Document(id="x", text="hello there, my friend"))[0].score > 0.5
    missing = registry.create("ft_lang_id_en_doc_v2", {"model_path": str(tmp_path / "nope.bin")})
    with pytest.raises(TaggerError, match="language-ID model file not found"):
        missing.predict(Document(id="x", text="hello"))


def test_taggers_pickle_without_their_models():
    tagger = registry.create("ft_lang_id_en_doc_v2")
    tagger.predict(Document(id="x", text="hello world"))
    assert "model" in tagger.__dict__
    clone = pickle.loads(pickle.dumps(tagger))
    assert "model" not in clone.__dict__
    assert clone.predict(Document(id="x", text="hello world")) == tagger.predict(Document(id="x", text="hello world"))


def test_span_is_a_value():
    assert Span(0, 1, "t", 1.0) == Span(0, 1, "t", 1.0)


@pytest.mark.parametrize(
    "text, length, no_ws",
    [
        ("", 0.0, 0.0),
        (" ", 0.0, 0.0),
        ("Hello world.", 4.0, 12.0),  # "Hello", " ", "world", "."
        ("  a  b  ", 3.0, 4.0),  # stripped first: "a", "  ", "b"
        ("a\n\n\nb", 5.0, 5.0),  # each newline is a segment
        ("東京は日本の首都です。 🙂🚀", 14.0, 14.0),
        ("don't stop", 3.0, 10.0),
    ],
)
def test_uniseg_length_and_stripped_char_length(text, length, no_ws):
    n = len(text)
    assert spans("uniseg_length_v1", text) == [(0, n, "length", length)]
    assert spans("char_length_strip_ws_v1", text) == [(0, n, "length_no_ws", no_ws)]
    assert spans("doc_count_v1", text) == [(0, n, "docs", 1.0)]


def test_uniseg_paragraph_taggers():
    text = "Hello world.\n  \nSecond  para here.\n"
    kept = [(0, 13, "paragraph", 3.0), (0, 13, "negative_paragraph", -3.0)]
    kept += [(16, 35, "paragraph", 4.0), (16, 35, "negative_paragraph", -4.0)]
    blank = [(13, 16, "paragraph", 0.0), (13, 16, "negative_paragraph", 0.0)]
    assert spans("uniseg_length_paragraphs_v1", text) == kept
    assert spans("uniseg_length_paragraphs_with_empty_v1", text) == kept[:2] + blank + kept[2:]
    doc = [(0, 35, "document", 7.0), (0, 35, "negative_document", -7.0)]
    assert spans("uniseg_length_paragraphs_with_doc_length_v1", text) == kept + doc
    assert spans("uniseg_length_paragraphs_v1", "") == spans("uniseg_length_paragraphs_with_empty_v1", "") == []
    assert spans("uniseg_length_paragraphs_with_empty_v1", " ") == [
        (0, 1, "paragraph", 0.0),
        (0, 1, "negative_paragraph", 0.0),
    ]
    assert spans("uniseg_length_paragraphs_with_doc_length_v1", "") == [
        (0, 0, "document", 0.0),
        (0, 0, "negative_document", 0.0),
    ]


def test_uniseg_paragraph_counts_are_segmented_once_per_run():
    """The paragraph taggers of a run share the counts of the paragraphs they read (uniseg is slow), bounded."""
    from taggers.uniseg_length import _RecentCounts

    calls = []

    def count(text: str) -> float:
        calls.append(text)
        return float(len(text))

    recent = _RecentCounts()
    recent.LIMIT = 10
    assert [recent.get(t, count) for t in ["abc", "abcd", "abc", "abcd"]] == [3.0, 4.0, 3.0, 4.0]
    assert calls == ["abc", "abcd"]
    assert recent.get("abcdef", count) == 6.0  # 3 + 4 + 6 > 10: the older counts are forgotten
    assert recent.get("abc", count) == 3.0 and calls == ["abc", "abcd", "abcdef", "abc"]
    assert recent.chars <= 10
