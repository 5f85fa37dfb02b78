"""Deterministic random numbers per document, for sampling with mixer rules."""

from __future__ import annotations

import hashlib
from typing import Annotated

from msgspec import Meta

from dolma import Document, Span, Tagger, TaggerConfig, register


class RandomNumberConfig(TaggerConfig, kw_only=True):
    seed: Annotated[int, Meta(description="Seed mixed with the document id.")] = 0


def uniform(doc_id: str, seed: int) -> float:
    """A number in [0, 1) that depends only on the id and the seed (stable across runs and machines)."""
    digest = hashlib.blake2b(doc_id.encode("utf-8", "surrogatepass"), digest_size=8, key=str(seed).encode()).digest()
    return (int.from_bytes(digest, "little") >> 11) / float(1 << 53)


@register("random_number_v1")
class RandomNumberTagger(Tagger):
    """A uniform random number in [0, 1) per document, derived from its id and a seed.

    Span types: `random` = the number, over the whole document. Unlike the reference (which draws a fresh
    number on every run) the value is reproducible, so a sampling rule keeps the same documents on rerun.
    """

    Config = RandomNumberConfig

    def predict(self, doc: Document) -> list[Span]:
        return [Span(0, len(doc.text), "random", uniform(doc.id, self.config.seed))]
