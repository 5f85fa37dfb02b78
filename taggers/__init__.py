"""Built-in taggers, one module per family. Importing this package registers them (models load lazily)."""

from taggers import language, length, pii, sampling

__all__ = ["language", "length", "pii", "sampling"]
