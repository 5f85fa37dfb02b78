"""Repeated substrings ("abcabcabcabc", "hello hello hello hello"): spans and document summaries.

Values equal those of the reference toolkit's `repetitions_v1` / `paragraph_repetitions_v1`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import ClassVar

from dolma.documents import Document, Span
from dolma.registry import register
from dolma.tagger import Tagger

# A unit (shortest first, no newline inside) followed by at least 3 more copies, each optionally preceded by
# one whitespace character. Matches do not overlap; the scan goes left to right.
_REPEAT = re.compile(r"(.+?)(?:\s?\1){3,}")


def repeats(text: str, offset: int = 0) -> Iterator[tuple[int, int, int]]:
    """(start, end, number of copies) of every repetition in `text`, offsets shifted by `offset`."""
    for m in _REPEAT.finditer(text):
        unit = m.group(1)
        pos, end, copies = m.start() + len(unit), m.end(), 1
        while pos < end:
            pos += len(unit) if text.startswith(unit, pos) else 1 + len(unit)
            copies += 1
        yield offset + m.start(), offset + m.end(), copies


def summary(text: str, found: list[tuple[int, int, int]]) -> list[Span]:
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
        text = doc.text
        if not self.per_paragraph:
            return summary(text, list(repeats(text)))
        found: list[tuple[int, int, int]] = []
        pos = 0
        for part in text.split("\n"):
            found.extend(repeats(part, pos))
            pos += len(part) + 1
        return summary(text, found)


@register("paragraph_repetitions_v1")
class ParagraphRepetitionsTagger(RepetitionsTagger):
    """Repeated substrings searched paragraph by paragraph (a repetition never crosses a newline)."""

    __doc__ = (__doc__ or "") + _SPAN_DOC
    description: ClassVar[str] = ""  # not inherited: `register` takes this class's first docstring line
    per_paragraph = True
