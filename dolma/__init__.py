"""dolma-toolkit: curate pretraining corpora (tag, dedupe, mix, tokenize) locally, on S3 and on Spark.

The public plugin API, what a tagger needs and nothing more:

    from dolma import Document, Span, Tagger, TaggerConfig, register

The names load on first use (`import dolma` stays cheap, so a plugin's import costs only what it uses), and
the built-in taggers import them from here too, so this is the API they are held to.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from dolma.documents import Document, Span
    from dolma.errors import TaggerError
    from dolma.registry import register
    from dolma.tagger import Tagger, TaggerConfig, paragraphs

_PUBLIC = {
    "Document": "dolma.documents",
    "Span": "dolma.documents",
    "Tagger": "dolma.tagger",
    "TaggerConfig": "dolma.tagger",
    "TaggerError": "dolma.errors",
    "paragraphs": "dolma.tagger",
    "register": "dolma.registry",
}

__all__ = ["Document", "Span", "Tagger", "TaggerConfig", "TaggerError", "paragraphs", "register"]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'dolma' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later lookups skip this hook
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
