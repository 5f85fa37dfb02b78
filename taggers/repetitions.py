r"""Repeated substrings ("abcabcabcabc", "hello hello hello hello"): spans and document summaries.

Values equal those of the reference toolkit's `repetitions_v1` / `paragraph_repetitions_v1`. The search is
`re.finditer(r"(.+?)(?:\s?\1){3,}", text)` in effect, run in Rust (`dolma._rust.repetitions_batch`) on a
whole batch without the GIL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from dolma import Document, Span, Tagger, _rust, register
from taggers._text import rust_texts


def summary(text: str, found: list[tuple[int, int, int]]) -> list[Span]:
    """`repetition` spans (start, end, copies) and the three document summaries; shared by the character- and
    token-level repetition taggers."""
    n = len(text)
    spans = [Span(start, end, "repetition", float(copies)) for start, end, copies in found]
    spans.append(Span(0, n, "doc_max_score_repetition", float(max((c for _, _, c in found), default=0))))
    spans.append(Span(0, n, "doc_max_length_repetition", float(max((e - s for s, e, _ in found), default=0))))
    covered = sum(e - s for s, e, _ in found)
    spans.append(Span(0, n, "doc_frac_repetition", covered / n if n else 0.0))
    return spans


_SPAN_DOC = """
    A repetition is a unit of text (shortest possible, within one line) followed by at least 3 more copies,
    each optionally preceded by one whitespace character. Span types:

    - `repetition`: one per repetition, over it; score = number of copies (at least 4).
    - `doc_max_score_repetition`: whole document; the largest number of copies (0 if none).
    - `doc_max_length_repetition`: whole document; the longest repetition in characters (0 if none).
    - `doc_frac_repetition`: whole document; characters inside repetitions / characters of the text.
"""


@register("repetitions_v1")
class RepetitionsTagger(Tagger):
    """Repeated substrings over the whole document (copies may be separated by a newline)."""

    __doc__ = (__doc__ or "") + _SPAN_DOC
    per_paragraph: ClassVar[bool] = False

    def predict(self, doc: Document) -> list[Span]:
        return self.predict_batch([doc])[0]

    def predict_batch(self, docs: Sequence[Document]) -> list[list[Span]]:
        found = _rust.repetitions_batch(rust_texts(docs), per_paragraph=self.per_paragraph)
        return [summary(doc.text, spans) for doc, spans in zip(docs, found)]


@register("paragraph_repetitions_v1")
class ParagraphRepetitionsTagger(RepetitionsTagger):
    """Repeated substrings searched paragraph by paragraph (a repetition never crosses a newline)."""

    __doc__ = (__doc__ or "") + _SPAN_DOC
    description: ClassVar[str] = ""  # not inherited: `register` takes this class's first docstring line
    per_paragraph = True
