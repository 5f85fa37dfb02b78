"""Language identification with fastText (lid.176), working offline with the model shipped in the package."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

from msgspec import Meta

from dolma.documents import Document, Span
from dolma.models import resolve_model
from dolma.registry import register
from dolma.tagger import Tagger, TaggerConfig

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


class FastTextLanguageTagger(Tagger):
    """Base for fastText language-ID taggers: lower-cased, newline-free text in, label probabilities out."""

    Config = LanguageConfig
    _transient = ("model",)

    @cached_property
    def model(self) -> Any:
        path = self.config.model_path or os.environ.get(LID_MODEL_ENV) or SHIPPED_LID_MODEL
        return load_fasttext(resolve_model(path, "language-ID model"))

    def probabilities(self, text: str) -> dict[str, float]:
        clean = text.lower().replace("\n", " ").replace("\r", " ")
        labels, probs = self.model.predict(clean, k=-1)
        return {label[len("__label__") :]: float(p) for label, p in zip(labels, probs)}


@register("ft_lang_id_en_doc_v2")
class FastTextEnglishDocumentTagger(FastTextLanguageTagger):
    """English vs not English for the whole document (fastText lid.176).

    Span types: `en` = probability that the document is English; `not_en` = 1 - that, both over the
    whole document.
    """

    def predict(self, doc: Document) -> list[Span]:
        en = self.probabilities(doc.text).get("en", 0.0)
        n = len(doc.text)
        return [Span(0, n, "en", en), Span(0, n, "not_en", 1.0 - en)]
