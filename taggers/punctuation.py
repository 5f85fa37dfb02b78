"""Paragraphs made only of punctuation and symbols (separator lines, ASCII art)."""

from __future__ import annotations

from dolma import Document, Span, Tagger, register


@register("not_alphanum_paragraph_v1")
class NotAlphanumParagraphTagger(Tagger):
    """Paragraphs without any letter or digit.

    Paragraphs are `text.split("\\n")` pieces (a span covers its newline). Span types: `all_punct` = 1 for
    each paragraph that is not blank and has no alphanumeric character (`str.isalnum`); when there is none,
    a single `all_punct` = 0 span over the whole document (as the reference writes it).
    """

    def predict(self, doc: Document) -> list[Span]:
        text = doc.text
        spans = []
        pos = 0
        parts = text.split("\n")
        last = len(parts) - 1
        for i, part in enumerate(parts):
            end = pos + len(part) + (1 if i < last else 0)
            if part.strip() and not any(c.isalnum() for c in part):
                spans.append(Span(pos, end, "all_punct", 1.0))
            pos = end
        return spans or [Span(0, len(text), "all_punct", 0.0)]
