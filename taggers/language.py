"""Language identification with fastText (lid.176), working offline with the model shipped in the package."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

from msgspec import Meta

from dolma import Document, Span, Tagger, TaggerConfig, paragraphs, register
from dolma.models import check_fasttext_model, resolve_model
from taggers._langid import valid_text

SHIPPED_LID_MODEL = str(Path(__file__).parent / "resources" / "lid.176.ftz")
LID_MODEL_ENV = "DOLMA_LID_MODEL"


def load_fasttext(path: str) -> Any:
    import fasttext

    # fastText prints a deprecation warning on every load; it is noise for users.
    fasttext.FastText.eprint = lambda *args, **kwargs: None
    return fasttext.load_model(path)


class LanguageConfig(TaggerConfig, kw_only=True):
    model_path: Annotated[
        str | None,
        Meta(
            description="fastText language-ID model (local path or s3:// URL). Default: $DOLMA_LID_MODEL, "
            "else the lid.176.ftz shipped with the package."
        ),
    ] = None


_PREFIX = len("__label__")
_EN_LABEL = "__label__en"


def _clean(text: str) -> str:
    """The line fastText sees: stripped first, as the reference does (this matters for non-fastText
    whitespace such as U+00A0), lower-cased, newlines as spaces, plus the newline fastText's binding expects.
    A lone surrogate (which fastText's binding refuses) becomes U+FFFD."""
    return valid_text(text).strip().lower().replace("\n", " ").replace("\r", " ") + "\n"


class FastTextLanguageTagger(Tagger):
    """Base for fastText language-ID taggers: lower-cased, newline-free text in, label probabilities out."""

    Config = LanguageConfig
    _transient = ("model", "_predict")

    @property
    def model_location(self) -> str:
        return self.config.model_path or os.environ.get(LID_MODEL_ENV) or SHIPPED_LID_MODEL

    @cached_property
    def model(self) -> Any:
        return load_fasttext(resolve_model(self.model_location, "language-ID model"))

    def check(self) -> None:
        check_fasttext_model(self.model_location, f"language-ID model of tagger '{self.name}'")

    @cached_property
    def _predict(self) -> Any:
        # fastText's own binding, without the Python wrapper's checks and numpy conversion: (text + "\n", k,
        # threshold, on_unicode_error) -> [(probability, label), ...], most likely first. The text never
        # contains "\n" here (the wrapper's only check).
        return self.model.f.predict

    def probabilities(self, text: str) -> dict[str, float]:
        return {label[_PREFIX:]: p for p, label in self._predict(_clean(text), -1, 0.0, "strict")}

    def en_probability(self, text: str) -> float:
        """`probabilities(text).get("en", 0.0)`, cheaper: a label's probability does not depend on k, so ask
        for the most likely label first and for all of them only when that is not English."""
        clean = _clean(text)
        top = self._predict(clean, 1, 0.0, "strict")
        if top and top[0][1] == _EN_LABEL:
            return top[0][0]
        for p, label in self._predict(clean, -1, 0.0, "strict"):
            if label == _EN_LABEL:
                return p
        return 0.0


@register("ft_lang_id_en_doc_v2")
class FastTextEnglishDocumentTagger(FastTextLanguageTagger):
    """English vs not English for the whole document (fastText lid.176).

    Span types: `en` = probability that the document is English; `not_en` = 1 - that, both over the
    whole document.
    """

    def predict(self, doc: Document) -> list[Span]:
        en = self.en_probability(doc.text)
        n = len(doc.text)
        return [Span(0, n, "en", en), Span(0, n, "not_en", 1.0 - en)]


class _ParagraphEnglish(FastTextLanguageTagger):
    """Shared code: English probability per non-blank paragraph."""

    def paragraph_scores(self, text: str) -> list[tuple[int, int, float]]:
        en = self.en_probability
        return [(start, end, en(p)) for start, end, p in paragraphs(text)]


@register("ft_lang_id_en_paragraph_v2")
class FastTextEnglishParagraphTagger(_ParagraphEnglish):
    """English vs not English for each paragraph (fastText lid.176).

    Span types: `en` = probability that the paragraph is English; `not_en` = 1 - that, one span per
    non-blank paragraph (split at newlines, the newline included). All `en` spans come first.
    """

    def predict(self, doc: Document) -> list[Span]:
        scores = self.paragraph_scores(doc.text)
        return [Span(s, e, "en", p) for s, e, p in scores] + [Span(s, e, "not_en", 1.0 - p) for s, e, p in scores]


@register("ft_lang_id_en_paragraph_with_doc_score_v2")
class FastTextEnglishParagraphWithDocScoreTagger(_ParagraphEnglish):
    """English probability per paragraph plus a length-weighted document score (fastText lid.176).

    Span types: `en`/`not_en` = as in ft_lang_id_en_paragraph_v2; `doc_en` = sum of paragraph `en` scores
    weighted by paragraph length, divided by the document length; `doc_not_en` = 1 - doc_en (both 0 for
    an empty document).
    """

    def predict(self, doc: Document) -> list[Span]:
        scores = self.paragraph_scores(doc.text)
        spans = [Span(s, e, "en", p) for s, e, p in scores] + [Span(s, e, "not_en", 1.0 - p) for s, e, p in scores]
        n = len(doc.text)
        doc_en = sum((e - s) * p for s, e, p in scores) / n if n else 0.0
        spans.append(Span(0, n, "doc_en", doc_en))
        spans.append(Span(0, n, "doc_not_en", 1.0 - doc_en if n else 0.0))
        return spans


@register("ft_lang_id_doc_v1")
class FastTextDocumentLanguagesTagger(FastTextLanguageTagger):
    """Probability of every language for the whole document (fastText lid.176).

    Span types: one per language code the model gives a non-zero probability (e.g. `en`, `fr`, `zh`),
    score = that probability, over the whole document, most likely first.
    """

    def predict(self, doc: Document) -> list[Span]:
        n = len(doc.text)
        return [Span(0, n, lang, p) for lang, p in self.probabilities(doc.text).items() if p > 0.0]


@register("ft_lang_id_1e2")
class FastTextDocumentLanguagesRoundedTagger(FastTextLanguageTagger):
    """Languages with probability of at least 0.01 for the whole document, rounded to 2 decimals.

    Span types: one per language code (e.g. `en`, `de`) whose fastText lid.176 probability is >= 0.01,
    score = that probability rounded to two decimals, over the whole document, most likely first.
    """

    def predict(self, doc: Document) -> list[Span]:
        n = len(doc.text)
        return [Span(0, n, lang, round(p, 2)) for lang, p in self.probabilities(doc.text).items() if p >= 0.01]


@register("ft_lang_id_en_only_v2")
class FastTextEnglishOnlyDocumentTagger(FastTextLanguageTagger):
    """Probability that the whole document is English (fastText lid.176): the `en` span of ft_lang_id_en_doc_v2 only.

    Span type: `en` = that probability, over the whole document.
    """

    def predict(self, doc: Document) -> list[Span]:
        return [Span(0, len(doc.text), "en", self.en_probability(doc.text))]


@register("ft_lang_id_paragraph_v1")
class FastTextParagraphLanguagesTagger(FastTextLanguageTagger):
    """Probability of every language for each paragraph (fastText lid.176).

    Span types: one per language code the model gives a non-zero probability, per non-blank paragraph (split at
    newlines, the newline included), score = that probability, most likely first.
    """

    def predict(self, doc: Document) -> list[Span]:
        return [
            Span(start, end, lang, p)
            for start, end, piece in paragraphs(doc.text)
            for lang, p in self.probabilities(piece).items()
            if p > 0.0
        ]
