"""The shape shared by the cld2, cld3, langdetect and lingua taggers: a library gives (language, score) pairs for
a text; a tagger asks for the whole document or for each paragraph and reports every language or English only.

Span types, as the reference toolkit writes them:

- every language (`report = "languages"`): one span per pair the library gives, type = language code;
- English (`report = "en"`): `en` = the library's English score (0 when English is not among its pairs) and
  `not_en` = 1 - en; at paragraph level all `en` spans come first, then all `not_en` spans;
- `report = "en_only"`: the `en` span alone;
- `report = "en_with_doc"`: the paragraph spans plus `doc_en` = sum of paragraph `en` weighted by paragraph
  length / document length and `doc_not_en` = 1 - doc_en (both 0 for an empty document).

Paragraphs are the pieces between newlines, the newline included, whitespace-only pieces skipped
(`dolma.tagger.paragraphs`); the library sees the piece as it is (a lone surrogate as U+FFFD, except for
langdetect, which is pure Python and reads it as the reference does). The libraries are optional (the `langid`
extra): `check` refuses to start without one, naming the extra.
"""

from __future__ import annotations

import importlib
from abc import abstractmethod
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import ClassVar, Literal

from dolma import Document, Span, Tagger, TaggerError, paragraphs, register

EXTRA = "langid"
Labels = list[tuple[str, float]]
Level = Literal["document", "paragraph"]
Report = Literal["languages", "en", "en_only", "en_with_doc"]


def import_library(module: str, package: str, tagger: str) -> ModuleType:
    """Import an optional library; without it, a TaggerError that says what to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise TaggerError(
            f"tagger '{tagger}' needs the Python package '{package}', which is not installed: "
            f"pip install 'dolma-toolkit[{EXTRA}]'"
        ) from None


def valid_text(text: str) -> str:
    """`text` with each lone surrogate (JSON allows them, UTF-8 does not, so the C++ and Rust libraries refuse the
    whole text) as U+FFFD: one code point for one, so offsets are unchanged."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


class BatchMemo:
    """The results of the last two batches of one library.

    Several taggers of one library (say `lingua_doc_v1` and `lingua_doc_en_v1`) run on the same batch one after
    the other; the slow libraries then identify each text once. Results depend on the text only, so a hit is exact.
    """

    def __init__(self) -> None:
        self._entries: list[tuple[list[str], list[Labels]]] = []

    def get(self, texts: list[str], compute: Callable[[list[str]], list[Labels]]) -> list[Labels]:
        for seen, labels in self._entries:
            if seen == texts:
                return labels
        labels = compute(texts)
        self._entries = [(texts, labels), *self._entries[:1]]
        return labels


_memos: dict[str, BatchMemo] = {}


class LanguageIdTagger(Tagger):
    """Base of the library-backed language-ID taggers (see the module docstring for the span types)."""

    package: ClassVar[str] = ""  # the PyPI name, for the error message
    module: ClassVar[str] = ""  # the import name
    level: ClassVar[Level] = "document"
    report: ClassVar[Report] = "languages"
    # Whether the library needs valid UTF-8 (the C++ and Rust ones): lone surrogates are then read as U+FFFD.
    utf8_only: ClassVar[bool] = True

    def check(self) -> None:
        import_library(self.module, self.package, self.name)

    def library(self) -> ModuleType:
        return import_library(self.module, self.package, self.name)

    @abstractmethod
    def identify(self, texts: list[str]) -> list[Labels]:
        """(language, score) pairs for each text, in the library's order (most likely first)."""

    def select(self, labels: Labels) -> Labels:
        """The pairs reported as spans by `report = "languages"` (all of them unless a subclass filters)."""
        return labels

    def _identify(self, texts: list[str]) -> list[Labels]:
        memo = _memos.setdefault(self.module, BatchMemo())
        return memo.get(texts, self.identify)

    def predict(self, doc: Document) -> list[Span]:
        return self.predict_batch([doc])[0]

    def predict_batch(self, docs: Sequence[Document]) -> list[list[Span]]:
        texts = [valid_text(doc.text) if self.utf8_only else doc.text for doc in docs]
        if self.level == "document":
            return [self._document_spans(len(t), labels) for t, labels in zip(texts, self._identify(texts))]
        pieces = [paragraphs(text) for text in texts]
        flat = self._identify([piece for doc_pieces in pieces for _, _, piece in doc_pieces])
        out: list[list[Span]] = []
        pos = 0
        for text, doc_pieces in zip(texts, pieces):
            out.append(self._paragraph_spans(len(text), doc_pieces, flat[pos : pos + len(doc_pieces)]))
            pos += len(doc_pieces)
        return out

    def _document_spans(self, n: int, labels: Labels) -> list[Span]:
        if self.report == "languages":
            return [Span(0, n, lang, score) for lang, score in self.select(labels)]
        en = english(labels)
        if self.report == "en_only":
            return [Span(0, n, "en", en)]
        return [Span(0, n, "en", en), Span(0, n, "not_en", 1.0 - en)]

    def _paragraph_spans(self, n: int, pieces: list[tuple[int, int, str]], labels: list[Labels]) -> list[Span]:
        if self.report == "languages":
            return [
                Span(start, end, lang, score)
                for (start, end, _), found in zip(pieces, labels)
                for lang, score in self.select(found)
            ]
        scores = [(start, end, english(found)) for (start, end, _), found in zip(pieces, labels)]
        spans = [Span(s, e, "en", p) for s, e, p in scores] + [Span(s, e, "not_en", 1.0 - p) for s, e, p in scores]
        if self.report == "en_with_doc":
            doc_en = sum((e - s) * p for s, e, p in scores) / n if n else 0.0
            spans.append(Span(0, n, "doc_en", doc_en))
            spans.append(Span(0, n, "doc_not_en", 1.0 - doc_en if n else 0.0))
        return spans


def register_variants(base: type[LanguageIdTagger], table: Sequence[tuple[str, str, Level, Report, str]]) -> None:
    """Register one subclass of `base` per row (tagger name, class name, level, report, description).

    The taggers of one library differ only in what they ask for (document or paragraphs) and what they report,
    so each library module lists them in one table instead of a class block apiece.
    """
    for name, class_name, level, report, description in table:
        namespace = {"__module__": base.__module__, "__qualname__": class_name, "__doc__": description}
        register(name)(type(class_name, (base,), {**namespace, "level": level, "report": report}))


def english(labels: Labels) -> float:
    """The score of English among the pairs, 0 when the library did not name it."""
    return next((score for lang, score in labels if lang == "en"), 0.0)
