"""Differential test of the PII and language-ID taggers against the reference toolkit.

One reference run per fixture (module scoped) over one sample document in 8 (chosen by a checksum of the id, all
three sources; the reference's regular expressions take most of the time), the shared edge cases and a generated
corpus dense in e-mail addresses, phone numbers, IP addresses and mixed-language paragraphs.
`pii_regex_v1` and `pii_regex_with_counts_v2` crash in the reference on a document without words, so they
run on the documents that have words (our value there, -1, is tested in test_pii.py).
"""

from __future__ import annotations

import pytest

from tests.helpers.reference import assert_tagger_matches, sample_share, tag_both
from tests.helpers.textgen import fragment_docs

pytestmark = pytest.mark.reference

TAGGERS = [
    "pii_regex_v2",
    "pii_regex_with_counts_fast_v2",
    "ft_lang_id_en_paragraph_v2",
    "ft_lang_id_en_paragraph_with_doc_score_v2",
    "ft_lang_id_doc_v1",
    "ft_lang_id_1e2",
]
WORDS_ONLY_TAGGERS = ["pii_regex_v1", "pii_regex_with_counts_v2"]

_PIECES = [
    "Contact me at john.doe@example.com today.",
    "Write to first.last+tag@sub.domain.org, or to UPPER@EXAMPLE.COM!",
    "(mail: a@b.co)",
    "user@localhost is not an address",
    "call 555-123-4567 or (555) 123-4567",
    "phone:5551234567, fax 555.123.4567x12",
    "+1 555 123 4567 and 1-800-555-1234",
    "server 192.168.0.1 and 10.0.0.256 and 256.1.1.1",
    "version 1.2.3.4.5 and 01.02.03.04",
    "Ceci est une phrase en français.",
    "Dies ist ein deutscher Satz.",
    "東京は日本の首都です。",
    "Это русский текст.",
    "The quick brown fox jumps over the lazy dog.",
    "é ü ß 🙂",
    "",
    "   ",
]


def generated_docs(n: int = 300, seed: int = 7) -> list[dict]:
    seps = [" ", "\n", "  ", "\n\n", "\t", "\r\n", ""]
    return fragment_docs(_PIECES, seps, n=n, seed=seed, max_parts=12, prefix="gen", source="generated")


EXTRA = {"generated": generated_docs()}
thinned = sample_share(8, "generated")


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    return tag_both(tmp_path_factory.mktemp("ref-more"), TAGGERS, extra=EXTRA, keep=thinned)


@pytest.fixture(scope="module")
def tagged_with_words(tmp_path_factory):
    has_words = lambda doc: bool(doc["text"].split()) and thinned(doc)  # noqa: E731
    return tag_both(tmp_path_factory.mktemp("ref-words"), WORDS_ONLY_TAGGERS, extra=EXTRA, keep=has_words)


@pytest.mark.parametrize("tagger", TAGGERS)
def test_matches_reference(tagged, tagger):
    assert_tagger_matches(*tagged, tagger)


@pytest.mark.parametrize("tagger", WORDS_ONLY_TAGGERS)
def test_matches_reference_on_documents_with_words(tagged_with_words, tagger):
    assert_tagger_matches(*tagged_with_words, tagger)


def test_generated_corpus_exercises_every_span_type():
    """The generated corpus is only useful if the reference sees all three PII kinds in it."""
    from taggers.pii import pii_spans

    kinds = {s.type for d in EXTRA["generated"] for s in pii_spans(d["text"])}
    assert kinds == {"EMAIL_ADDRESS", "PHONE_NUMBER", "IP_ADDRESS"}
