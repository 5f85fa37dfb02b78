"""Built-in taggers, one module per family. Importing this package registers them (models load lazily)."""

from taggers import language, length, sampling
from taggers import pii

__all__ = ["language", "length", "sampling"]
