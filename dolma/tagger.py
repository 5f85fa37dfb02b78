"""The Tagger abstraction: annotate documents with scored spans; never drop or edit them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import msgspec

from dolma.documents import Document, Span


class TaggerConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Options of a tagger, given under `tagger_config.<tagger name>` in the tag config. Empty by default."""


class Tagger(ABC):
    """Base class of every tagger.

    Subclasses set `name` (through `@register`), a one-line `description`, optionally a `Config` struct, and
    implement `predict`. Fast taggers also override `predict_batch`. Heavy resources (models) must load
    lazily and be listed in `_transient` so that taggers are cheap to create and pickle to workers.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Config: ClassVar[type[TaggerConfig]] = TaggerConfig
    _transient: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: TaggerConfig | None = None):
        self.config = config if config is not None else self.Config()

    @abstractmethod
    def predict(self, doc: Document) -> list[Span]:
        """Spans for one document; offsets are code-point offsets into `doc.text`, end exclusive."""

    def predict_batch(self, docs: Sequence[Document]) -> list[list[Span]]:
        return [self.predict(doc) for doc in docs]

    def check(self) -> None:  # noqa: B027 - an optional hook, empty by default
        """Check the tagger's resources (model files, word or URL lists) before any document is read.

        Called once by the driver when it plans a run, so a missing or unreadable resource is one error at
        start-up rather than the same failure for every file. Raise `TaggerError` naming the tagger and the
        file. Small resources may be loaded here; models stay lazy (check their file, do not load it).
        """

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for attr in self._transient:
            state.pop(attr, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


def paragraphs(text: str) -> list[tuple[int, int, str]]:
    """Split at "\\n": (start, end, paragraph) with the newline included; whitespace-only pieces skipped.

    This is the paragraph convention of Dolma attributes (a paragraph span covers its trailing newline).
    """
    out = []
    start = 0
    n = len(text)
    while start < n:
        nl = text.find("\n", start)
        end = n if nl < 0 else nl + 1
        piece = text[start:end]
        if piece.strip():
            out.append((start, end, piece))
        start = end
    return out
