"""Language identification with langdetect (a port of Google's language-detection, naive Bayes on n-grams).

langdetect samples n-grams at random. The taggers are deterministic: their detector factory has seed 0 (the
seed the reference toolkit's results correspond to) and every text gets a fresh detector seeded with it, so a
text's result never depends on the texts before it, the batch or the process. The factory is our own instance:
langdetect's global `DetectorFactory.seed` is left untouched.

langdetect gives the languages whose probability is above 0.1, most likely first; a text without letters
(empty, whitespace, digits) gives none.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from taggers._langid import Labels, LanguageIdTagger, import_library, register_variants

SEED = 0


@cache
def _factory(tagger: str) -> tuple[Any, type[Exception]]:
    """(detector factory with the profiles loaded and SEED set, langdetect's exception class)."""
    langdetect = import_library("langdetect", "langdetect", tagger)
    factory = langdetect.DetectorFactory()
    factory.load_profile(langdetect.PROFILES_DIRECTORY)
    factory.seed = SEED
    return factory, langdetect.LangDetectException


class LangdetectTagger(LanguageIdTagger):
    """Base of the langdetect taggers."""

    package = "langdetect"
    module = "langdetect"
    utf8_only = False  # pure Python: a lone surrogate is a character like any other, as in the reference

    def identify(self, texts: list[str]) -> list[Labels]:
        factory, no_features = _factory(self.name)
        out: list[Labels] = []
        for text in texts:
            detector = factory.create()
            detector.append(text)
            try:
                out.append([(found.lang, found.prob) for found in detector.get_probabilities()])
            except no_features:
                out.append([])
        return out


# fmt: off
register_variants(
    LangdetectTagger,
    # tagger name, class name, level, report, description
    [
        ("langdetect_doc_v1", "LangdetectDocumentTagger", "document", "languages",
         "Languages of the whole document by langdetect (seeded): one span per language above 0.1, its probability."),
        ("langdetect_paragraph_v1", "LangdetectParagraphTagger", "paragraph", "languages",
         "Languages of each paragraph by langdetect (seeded): one span per language above 0.1, its probability."),
        ("langdetect_doc_en_v1", "LangdetectEnglishDocumentTagger", "document", "en",
         "English vs not English for the whole document by langdetect (seeded): `en` probability, `not_en` = 1 - en."),
        ("langdetect_en_paragraph_v1", "LangdetectEnglishParagraphTagger", "paragraph", "en",
         "English vs not English for each paragraph by langdetect (seeded): `en` probability, `not_en` = 1 - en."),
    ],
)
# fmt: on
