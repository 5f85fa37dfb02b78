"""Length in Unicode words (UAX #29 word boundaries, computed by the `uniseg` package, the `uniseg` extra).

The reference toolkit's `uniseg_length_*` taggers, whose counts these reproduce
(tests/compat/test_reference_uniseg.py): a document is counted on its stripped text with every segment,
whitespace runs included, so "a b c" is 5; a paragraph counts only segments that are not whitespace, so "a b c"
is 3. Paragraphs are the pieces between
newlines, the newline included. Every count comes with its negation (`negative_*`), so a mixer rule can keep the
longest or the shortest with the same `max_score` syntax.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType

from dolma import Document, Span, Tagger, TaggerError, paragraphs, register


def _uniseg(tagger: str) -> ModuleType:
    try:
        return importlib.import_module("uniseg.wordbreak")
    except ImportError:
        raise TaggerError(
            f"tagger '{tagger}' needs the Python package 'uniseg', which is not installed: "
            "pip install 'dolma-toolkit[uniseg]'"
        ) from None


def all_pieces(text: str) -> list[tuple[int, int, str]]:
    """Every piece between newlines, the newline included, blank ones too ("" has none)."""
    out = []
    start = 0
    while start < len(text):
        nl = text.find("\n", start)
        end = len(text) if nl < 0 else nl + 1
        out.append((start, end, text[start:end]))
        start = end
    return out


class _RecentCounts:
    """Paragraph lengths of the documents read last, shared by the uniseg taggers of a process.

    A run hands the same batch of documents to each of its taggers in turn, and three of the uniseg taggers count
    the same paragraphs: uniseg is pure Python, so each paragraph is segmented once. The cache forgets everything
    once it holds more than `LIMIT` characters (a batch's paragraphs fit).
    """

    LIMIT = 1 << 25

    def __init__(self) -> None:
        self.counts: dict[str, float] = {}
        self.chars = 0

    def get(self, text: str, count: Callable[[str], float]) -> float:
        n = self.counts.get(text)
        if n is None:
            n = count(text)
            if self.chars + len(text) > self.LIMIT:
                self.counts.clear()
                self.chars = 0
            self.counts[text] = n
            self.chars += len(text)
        return n


_RECENT = _RecentCounts()


class UnisegTagger(Tagger):
    """Base of the uniseg taggers: `check` refuses to start without the library."""

    def check(self) -> None:
        _uniseg(self.name)

    def words(self, text: str) -> list[str]:
        return list(_uniseg(self.name).words(text))

    def count(self, text: str) -> float:
        """Segments that are not whitespace (a paragraph's length)."""
        return _RECENT.get(text, self._count)

    def _count(self, text: str) -> float:
        return float(sum(1 for word in self.words(text) if word.strip()))

    def paragraph_spans(self, text: str, with_empty: bool = False) -> list[Span]:
        spans = []
        for start, end, piece in all_pieces(text) if with_empty else paragraphs(text):
            n = self.count(piece)
            spans += [Span(start, end, "paragraph", n), Span(start, end, "negative_paragraph", 0.0 - n)]
        return spans


@register("uniseg_length_v1")
class UnisegLengthTagger(UnisegTagger):
    """Unicode word segments of the stripped document, whitespace runs included.

    Span types: `length` = number of UAX #29 word segments of the stripped text ("Hello world." is 4:
    "Hello", " ", "world", "."), over the whole document.
    """

    def predict(self, doc: Document) -> list[Span]:
        return [Span(0, len(doc.text), "length", float(len(self.words(doc.text.strip()))))]


@register("uniseg_length_paragraphs_v1")
class UnisegParagraphsTagger(UnisegTagger):
    """Unicode words per paragraph.

    Span types, per non-blank paragraph: `paragraph` = UAX #29 word segments that are not whitespace
    ("Hello world." is 3); `negative_paragraph` = minus that.
    """

    def predict(self, doc: Document) -> list[Span]:
        return self.paragraph_spans(doc.text)


@register("uniseg_length_paragraphs_with_empty_v1")
class UnisegParagraphsWithEmptyTagger(UnisegTagger):
    """Unicode words per paragraph, blank paragraphs included (with 0).

    Span types, per paragraph (every piece between newlines, the newline included; none for ""):
    `paragraph` = UAX #29 word segments that are not whitespace; `negative_paragraph` = minus that.
    """

    def predict(self, doc: Document) -> list[Span]:
        return self.paragraph_spans(doc.text, with_empty=True)


@register("uniseg_length_paragraphs_with_doc_length_v1")
class UnisegParagraphsWithDocLengthTagger(UnisegTagger):
    """Unicode words per paragraph and for the document.

    Span types: `paragraph` and `negative_paragraph` per non-blank paragraph as in uniseg_length_paragraphs_v1;
    `document` = the sum of the paragraph counts (0 for a blank document); `negative_document` = minus that.
    """

    def predict(self, doc: Document) -> list[Span]:
        spans = self.paragraph_spans(doc.text)
        total = sum(s.score for s in spans if s.type == "paragraph")
        n = len(doc.text)
        return [*spans, Span(0, n, "document", total), Span(0, n, "negative_document", 0.0 - total)]
