"""Built-in taggers, one module per family. Importing this package registers them (models load lazily)."""

from taggers import (
    c4,
    classifiers,
    code,
    gopher,
    lang_cld2,
    lang_cld3,
    lang_langdetect,
    lang_lingua,
    language,
    length,
    pii,
    punctuation,
    repetitions,
    sampling,
    urls,
    wordlist,
)

__all__ = [
    "c4",
    "classifiers",
    "code",
    "gopher",
    "lang_cld2",
    "lang_cld3",
    "lang_langdetect",
    "lang_lingua",
    "language",
    "length",
    "pii",
    "punctuation",
    "repetitions",
    "sampling",
    "urls",
    "wordlist",
]
