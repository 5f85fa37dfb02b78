"""Helpers shared by the rule-based quality taggers."""

from __future__ import annotations

from collections.abc import Sequence

from dolma import Document


def rust_texts(docs: Sequence[Document]) -> list[str]:
    """Texts ready to cross into Rust: a lone surrogate (invalid in UTF-8) becomes U+FFFD, one code point for
    one, so offsets and lengths are unchanged."""
    out = []
    for doc in docs:
        text = doc.text
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        out.append(text)
    return out
