"""Deterministic synthetic documents that exercise the rule-based quality taggers (test data, not fixtures)."""

from __future__ import annotations

import random
from collections.abc import Callable

WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "a",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "he",
    "this",
    "are",
    "or",
    "his",
    "from",
    "at",
    "which",
    "but",
    "have",
    "an",
    "they",
    "you",
    "were",
    "her",
    "she",
    "there",
    "been",
    "one",
    "all",
    "we",
    "their",
    "has",
    "would",
    "when",
    "if",
    "so",
    "no",
    "will",
    "more",
    "can",
    "out",
    "up",
    "time",
    "about",
    "river",
    "model",
    "data",
    "paper",
    "city",
    "market",
    "music",
    "school",
    "water",
    "light",
    "system",
    "table",
    "world",
    "people",
    "number",
    "history",
]
EXTRA = ["#tag", "wait…", "naïve", "café", "東京", "Москва", "2024", "x=1", "e.g.", "(see", "below)", "--", "ass"]
ENDINGS = [".", ".", ".", "!", "?", '"', "", ":", "…", "..."]


def sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS if rng.random() < 0.9 else EXTRA) for _ in range(rng.randint(1, 14))]
    words[0] = words[0].capitalize()
    return " ".join(words) + rng.choice(ENDINGS)


def document(rng: random.Random) -> str:
    lines: list[str] = []
    for _ in range(rng.randint(0, 12)):
        r = rng.random()
        if r < 0.08:
            lines.append(rng.choice(["- ", "* ", "• ", "1. "]) + sentence(rng))
        elif r < 0.12 and lines:
            lines.append(rng.choice(lines))  # a repeated line
        elif r < 0.15:
            lines.append(rng.choice(["---", "***", "=====", "!!", "   "]))
        elif r < 0.18:
            unit = rng.choice(["ha", "abc", "la ", "hello ", "na"])
            lines.append(unit * rng.randint(2, 8))
        elif r < 0.20:
            lines.append(rng.choice(["Enable JavaScript to view.", "Lorem ipsum dolor sit amet.", "if (x) { y }"]))
        elif r < 0.22:
            lines.append("")
        else:
            lines.append(" ".join(sentence(rng) for _ in range(rng.randint(1, 4))))
    sep = rng.choice(["\n", "\n", "\n\n", "\r\n"])
    return sep.join(lines) + rng.choice(["", "\n", " "])


def synthetic_docs(n: int, seed: int = 0, source: str = "synthetic") -> list[dict]:
    rng = random.Random(seed)
    return [{"id": f"{source}-{i}", "text": document(rng), "source": source} for i in range(n)]


def fragment_docs(
    pieces: list[str],
    separators: list[str],
    *,
    n: int,
    seed: int,
    max_parts: int,
    prefix: str,
    source: str,
    metadata: Callable[[random.Random], dict] | None = None,
) -> list[dict]:
    """Seeded documents made of 1..max_parts random pieces, each followed by a random separator."""
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        parts = [rng.choice(pieces) for _ in range(rng.randint(1, max_parts))]
        doc = {"id": f"{prefix}-{i}", "text": "".join(p + rng.choice(separators) for p in parts), "source": source}
        if metadata is not None:
            doc["metadata"] = metadata(rng)
        docs.append(doc)
    return docs
