"""Built-in taggers, one module per family. Importing this package registers them (models load lazily)."""

from taggers import classifiers, language, length, pii, sampling

__all__ = ["classifiers", "language", "length", "pii", "sampling"]
