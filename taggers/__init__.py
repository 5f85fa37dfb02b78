"""Built-in taggers, one module per family. Importing this package registers them (models load lazily)."""

from taggers import c4, gopher, language, length, punctuation, repetitions, sampling

__all__ = ["c4", "gopher", "language", "length", "punctuation", "repetitions", "sampling"]
