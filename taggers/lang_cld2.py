"""Language identification with CLD2 (Google's Compact Language Detector 2, the `pycld2` binding).

CLD2 answers with a reliability flag and three (language name, code, percent, score) entries. The taggers
report an entry as the span type `name[:2].lower()` with score percent / 100, as the reference toolkit does:
so German is `ge`, Spanish `sp`, Chinese `ch`, and an empty entry `un` (English is `en`, French `fr`). An
unreliable answer reports nothing (English score 0).

CLD2 refuses text that is not interchange-valid UTF-8 (control characters such as U+0007 or U+0085). Such a
text is tried again transliterated to ASCII (`anyascii`), then with its control characters removed; if CLD2
still refuses it, it counts as unreliable.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Any

from taggers._langid import Labels, LanguageIdTagger, import_library, register_variants

# C0 and C1 control characters, except tab, newline, form feed and carriage return (which CLD2 accepts).
_CONTROLS = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")


@cache
def _libraries(tagger: str) -> tuple[Any, Any]:
    pycld2 = import_library("pycld2", "pycld2", tagger)
    anyascii = import_library("anyascii", "anyascii", tagger)
    return pycld2, anyascii.anyascii


class Cld2Tagger(LanguageIdTagger):
    """Base of the CLD2 taggers."""

    package = "pycld2"
    module = "pycld2"

    def check(self) -> None:
        _libraries(self.name)

    def identify(self, texts: list[str]) -> list[Labels]:
        pycld2, to_ascii = _libraries(self.name)
        out: list[Labels] = []
        for text in texts:
            answer = _detect(pycld2, (None, to_ascii, _without_controls), text)
            if answer is None or not answer[0]:
                out.append([])
            else:
                out.append([(name[:2].lower(), percent / 100) for name, _, percent, _ in answer[2]])
        return out


def _without_controls(text: str) -> str:
    return _CONTROLS.sub("", text)


def _detect(pycld2: Any, transforms: tuple[Callable[[str], str] | None, ...], text: str) -> Any:
    """CLD2's answer for the first form of `text` it accepts (None: it accepts none)."""
    for transform in transforms:
        try:
            return pycld2.detect(text if transform is None else transform(text))
        except pycld2.error:
            continue
    return None


# fmt: off
register_variants(
    Cld2Tagger,
    # tagger name, class name, level, report, description
    [
        ("cld2_doc_v2", "Cld2DocumentTagger", "document", "languages",
         "Languages of the whole document by CLD2: three spans (type = CLD2 name[:2]: en, ge, un...), percent/100."),
        ("cld2_paragraph_v2", "Cld2ParagraphTagger", "paragraph", "languages",
         "Languages of each paragraph by CLD2: three spans per reliable paragraph (type = CLD2 name[:2]), "
         "percent/100."),
        ("cld2_en_doc_v2", "Cld2EnglishDocumentTagger", "document", "en",
         "English vs not English for the whole document by CLD2: `en` = English percent/100, `not_en` = 1 - en."),
        ("cld2_en_paragraph_v2", "Cld2EnglishParagraphTagger", "paragraph", "en",
         "English vs not English for each paragraph by CLD2: `en` = English percent/100, `not_en` = 1 - en."),
        ("cld2_en_paragraph_with_doc_score_v2", "Cld2EnglishParagraphWithDocScoreTagger", "paragraph", "en_with_doc",
         "CLD2 English per paragraph (`en`, `not_en`) plus `doc_en`/`doc_not_en`, their length-weighted document "
         "mean."),
    ],
)
# fmt: on
