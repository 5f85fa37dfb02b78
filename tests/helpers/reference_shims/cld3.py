"""The `cld3` module the reference toolkit imports, for its differential tests only.

The reference calls `cld3.get_language(text)` from `pycld3`, a binding of Google's CLD3 that publishes no wheel
for current Pythons and needs protoc to build. This adapter gives it that function (and
`get_frequent_languages`) over `cld3-py`, the maintained binding of the same library, with pycld3 0.22's
behaviour: at most the first 1024 bytes are considered, and an empty text or an undetermined language gives None
(an empty list). Tests put this directory on the reference's PYTHONPATH.
"""

from __future__ import annotations

from collections import namedtuple

import gcld3

LanguagePrediction = namedtuple("LanguagePrediction", ["language", "probability", "is_reliable", "proportion"])


def _prediction(result):
    if result.language == "und":
        return None
    return LanguagePrediction(result.language, result.probability, result.is_reliable, result.proportion)


def get_language(text, min_bytes=0, max_bytes=1024):
    if not text:
        return None
    return _prediction(gcld3.NNetLanguageIdentifier(min_bytes, max_bytes).FindLanguage(text))


def get_frequent_languages(text, num_langs, min_bytes=0, max_bytes=1024):
    if not text:
        return []
    identifier = gcld3.NNetLanguageIdentifier(min_bytes, max_bytes)
    found = [_prediction(r) for r in identifier.FindTopNMostFreqLangs(text, num_langs)]
    return [p for p in found if p is not None]
