"""Built-in taggers, one module per family. Importing this package registers them (models load lazily)."""

from taggers import language, length, sampling

__all__ = ["language", "length", "sampling"]
