"""Differential test of the uniseg word counts, `char_length_strip_ws_v1` and `doc_count_v1` against the reference.

One reference `dolma tag` run over one sample document in 32 (77, all three sources), the shared edge cases and
150 generated documents built from the pieces UAX #29 treats specially (contractions, decimals, combining marks,
ideographs, emoji, no-break and ideographic spaces, CRLF, blank and whitespace-only lines, paragraph separators).
The 1 MB edge case is left out: uniseg is pure Python and the reference takes minutes over it on a loaded machine
(the 20 kB and 50 kB edge cases stay).
"""

from __future__ import annotations

import pytest

from dolma import registry
from dolma.documents import Document
from tests.helpers.reference import assert_tagger_matches, sample_share, tag_both
from tests.helpers.textgen import fragment_docs

pytestmark = pytest.mark.reference

TAGGERS = [
    "uniseg_length_v1",
    "uniseg_length_paragraphs_v1",
    "uniseg_length_paragraphs_with_doc_length_v1",
    "uniseg_length_paragraphs_with_empty_v1",
    "char_length_strip_ws_v1",
    "doc_count_v1",
]

_PIECES = [
    "Hello, world!",
    "don't stop",
    "3.14 is pi",
    "e\u0301tude",
    "x\u00b2 + y\u00b2",
    "東京は日本の首都です。",
    "🙂🚀 emoji",
    "a\u00a0b",
    "\u3000",
    "\u200b",
    "tab\there",
    "U.S.A. and co.",
    "email@example.com",
    "",
    "   ",
]


def generated_docs(n: int = 300, seed: int = 3) -> list[dict]:
    seps = ["\n", "\n\n", " ", "\r\n", "\n   \n", "\u2028", "\t", ""]
    return fragment_docs(_PIECES, seps, n=n, seed=seed, max_parts=12, prefix="seg", source="generated")


# uniseg is pure Python: one sample document in 32 (every edge case and the first 150 generated documents) keeps the
# run short
thinned = sample_share(32, "generated")


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    return tag_both(
        tmp_path_factory.mktemp("ref-uniseg"),
        TAGGERS,
        extra={"generated": generated_docs(150)},
        keep=lambda doc: len(doc["text"]) < 100_000 and thinned(doc),
    )


@pytest.mark.parametrize("tagger", TAGGERS)
def test_matches_reference(tagged, tagger):
    assert_tagger_matches(*tagged, tagger)


def test_generated_documents_tell_the_counts_apart():
    """The documents are only useful if the document count (every segment of the stripped text) and the paragraph
    sum (segments that are not whitespace) differ, and blank paragraphs occur."""
    whole = registry.create("uniseg_length_v1")
    parts = registry.create("uniseg_length_paragraphs_with_doc_length_v1")
    empty = registry.create("uniseg_length_paragraphs_with_empty_v1")
    plain = registry.create("uniseg_length_paragraphs_v1")
    differ = blanks = 0
    for d in generated_docs():
        doc = Document(id=d["id"], text=d["text"])
        total = next(s.score for s in parts.predict(doc) if s.type == "document")
        differ += whole.predict(doc)[0].score != total
        blanks += len(empty.predict(doc)) > len(plain.predict(doc))
    assert differ > 200 and blanks > 50
