"""Built-in taggers, one module per family. Importing this package registers them (models load lazily)."""

from taggers import (
    c4,
    classifiers,
    code,
    gopher,
    language,
    length,
    licenses,
    pii,
    punctuation,
    repetitions,
    sampling,
    toxicity,
    urls,
    wordlist,
)

__all__ = [
    "c4",
    "classifiers",
    "code",
    "gopher",
    "language",
    "length",
    "licenses",
    "pii",
    "punctuation",
    "repetitions",
    "sampling",
    "toxicity",
    "urls",
    "wordlist",
]
