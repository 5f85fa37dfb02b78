"""Language identification with CLD3 (Google's Compact Language Detector 3, neural), through `cld3-py`.

`cld3-py` is the maintained binding of Google's CLD3 with wheels for Python 3.10-3.14 (import name `gcld3`).
The reference toolkit calls the older `pycld3` binding of the same library (`cld3.get_language`, which considers
at most the first 1024 bytes of a text): the same settings here. CLD3 names one language per text, with a
probability; the English score is that probability when the language is English, else 0.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from taggers._langid import Labels, LanguageIdTagger, import_library, register_variants

MIN_BYTES = 0
MAX_BYTES = 1024
_UNKNOWN = "und"


@cache
def _identifier(tagger: str) -> Any:
    gcld3 = import_library("gcld3", "cld3-py", tagger)
    return gcld3.NNetLanguageIdentifier(MIN_BYTES, MAX_BYTES)


class Cld3Tagger(LanguageIdTagger):
    """Base of the CLD3 taggers: English vs not English."""

    package = "cld3-py"
    module = "gcld3"
    report = "en"

    def identify(self, texts: list[str]) -> list[Labels]:
        find = _identifier(self.name).FindLanguage
        out: list[Labels] = []
        for text in texts:
            # An empty text has no language (CLD3 itself would still name one).
            result = find(text) if text else None
            if result is None or result.language == _UNKNOWN:
                out.append([])
            else:
                out.append([(result.language, result.probability)])
        return out


# fmt: off
register_variants(
    Cld3Tagger,
    # tagger name, class name, level, report, description
    [
        ("cld3_en_doc_v2", "Cld3EnglishDocumentTagger", "document", "en",
         "English vs not English for the whole document by CLD3: `en` = its probability if English, `not_en` = 1 - "
         "en."),
        ("cld3_en_paragraph_v2", "Cld3EnglishParagraphTagger", "paragraph", "en",
         "English vs not English for each paragraph by CLD3: `en` = its probability if English, `not_en` = 1 - en."),
        ("cld3_en_paragraph_with_doc_score_v2", "Cld3EnglishParagraphWithDocScoreTagger", "paragraph", "en_with_doc",
         "CLD3 English per paragraph (`en`, `not_en`) plus `doc_en`/`doc_not_en`, their length-weighted document "
         "mean."),
    ],
)
# fmt: on
