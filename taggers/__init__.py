"""Built-in taggers, one module per family. Importing this package registers them (models load lazily)."""

from taggers import classifiers, language, length, pii, sampling, urls, wordlist

__all__ = ["classifiers", "language", "length", "pii", "sampling", "urls", "wordlist"]
