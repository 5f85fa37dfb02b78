"""Built-in taggers, one module per family. Importing this package registers them (models load lazily)."""

from taggers import classifiers, code, language, length, pii, sampling, urls, wordlist

__all__ = ["classifiers", "code", "language", "length", "pii", "sampling", "urls", "wordlist"]
