"""Language identification with Lingua (`lingua-language-detector`, which ships its n-gram models).

One detector per process for all 75 languages, high-accuracy mode (Lingua's default, the reference toolkit's
setting); its models load on first use (about 1 GB of memory once every language has been seen). Lingua gives a
confidence for every language, summing to 1 (all 0 for a text without letters); batches are identified on all
cores (`compute_language_confidence_values_in_parallel`), with the same values as one text at a time.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from dolma import register
from taggers._langid import Labels, LanguageIdTagger, import_library, register_variants

MIN_SCORE = 0.01


@cache
def _detector(tagger: str) -> tuple[Any, dict[Any, str]]:
    """(detector, ISO 639-1 code of each Lingua language)."""
    lingua = import_library("lingua", "lingua-language-detector", tagger)
    codes = {language: language.iso_code_639_1.name.lower() for language in lingua.Language.all()}
    return lingua.LanguageDetectorBuilder.from_all_languages().build(), codes


class LinguaTagger(LanguageIdTagger):
    """Base of the Lingua taggers."""

    package = "lingua-language-detector"
    module = "lingua"

    def identify(self, texts: list[str]) -> list[Labels]:
        detector, codes = _detector(self.name)
        results = detector.compute_language_confidence_values_in_parallel(texts)
        return [[(codes[found.language], found.value) for found in result] for result in results]


# fmt: off
register_variants(
    LinguaTagger,
    # tagger name, class name, level, report, description
    [
        ("lingua_doc_v1", "LinguaDocumentTagger", "document", "languages",
         "Languages of the whole document by Lingua: one span per language (all 75, most 0), its confidence."),
        ("lingua_par_v1", "LinguaParagraphTagger", "paragraph", "languages",
         "Languages of each paragraph by Lingua: one span per language (all 75, most 0), its confidence."),
        ("lingua_doc_en_v1", "LinguaEnglishDocumentTagger", "document", "en",
         "English vs not English for the whole document by Lingua: `en` = English confidence, `not_en` = 1 - en."),
        ("lingua_en_only_v1", "LinguaEnglishOnlyTagger", "document", "en_only",
         "English confidence of the whole document by Lingua (`en` only)."),
        ("lingua_en_par_v1", "LinguaEnglishParagraphTagger", "paragraph", "en",
         "English vs not English for each paragraph by Lingua: `en` = English confidence, `not_en` = 1 - en."),
    ],
)
# fmt: on


@register("lingua_1e2")
class LinguaDocumentMinScoreTagger(LinguaTagger):
    """Languages of the whole document by Lingua with confidence >= 0.01, rounded to 2 decimals."""

    def select(self, labels: Labels) -> Labels:
        return [(lang, round(score, 2)) for lang, score in labels if score >= MIN_SCORE]
