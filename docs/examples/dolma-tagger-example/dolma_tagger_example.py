"""An example tagger plugin for dolma-toolkit: the share of digits in a document and in each paragraph.

Installed as a package (`pip install .` in this directory), it is found through the `dolma.taggers` entry point
declared in pyproject.toml; without installing, `dolma tag --tagger_modules path/to/dolma_tagger_example.py`
imports it. Either way `@register` makes `digit_fraction_v1` a tagger name like the built-in ones.
"""

from __future__ import annotations

from dolma import Document, Span, Tagger, TaggerConfig, paragraphs, register


class DigitFractionConfig(TaggerConfig, frozen=True, kw_only=True):
    """Options under `tagger_config.digit_fraction_v1` (unknown options are refused by the toolkit)."""

    per_paragraph: bool = False  # also write one `paragraph` span per non-blank paragraph


def digit_fraction(text: str) -> float:
    """Digits (Unicode category Nd) / code points; 0 for an empty text, so no document fails the run."""
    return sum(ch.isdecimal() for ch in text) / len(text) if text else 0.0


@register("digit_fraction_v1")
class DigitFractionTagger(Tagger):
    """Share of decimal digits in the text.

    Span types: `document` = digits / code points of the whole text; with `per_paragraph: true` also
    `paragraph` = the same for each non-blank paragraph (its newline included, as Dolma paragraphs are).
    """

    Config = DigitFractionConfig

    def predict(self, doc: Document) -> list[Span]:
        spans = [Span(0, len(doc.text), "document", digit_fraction(doc.text))]
        if self.config.per_paragraph:
            for start, end, text in paragraphs(doc.text):
                spans.append(Span(start, end, "paragraph", digit_fraction(text)))
        return spans
