"""Toxicity without a model: occurrences of words and phrases from a profanity word list.

The default list is `profanity_wordlist.txt` of the `better-profanity` package (MIT licence,
https://github.com/snguyenthanh/better_profanity), one word or phrase per line; `wordlist_path` replaces it
with any local or s3:// file in the same format. Matching is case-insensitive on whole words.
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Annotated

from msgspec import Meta

from dolma import Document, Span, Tagger, TaggerConfig, io, register


def default_wordlist() -> list[str]:
    from importlib.resources import files

    return files("better_profanity").joinpath("profanity_wordlist.txt").read_text(encoding="utf-8").splitlines()


def compile_wordlist(entries: list[str]) -> re.Pattern[str]:
    """One alternation, longest phrase first, with internal whitespace matching any run of whitespace."""
    phrases = sorted({" ".join(e.lower().split()) for e in entries if e.strip()}, key=lambda p: (-len(p), p))
    if not phrases:
        return re.compile(r"(?!x)x")
    body = "|".join(r"\s+".join(re.escape(w) for w in p.split(" ")) for p in phrases)
    return re.compile(rf"(?<!\w)(?:{body})(?!\w)", re.IGNORECASE)


class WordListConfig(TaggerConfig, kw_only=True):
    wordlist_path: Annotated[
        str | None,
        Meta(description="Word list, one word or phrase per line (local or s3://). Default: better-profanity's."),
    ] = None


@register("naughty_words_v1")
class NaughtyWordsTagger(Tagger):
    """Profanity from a word list: each occurrence, their count, and whether the document has any.

    Span types: `naughty_word` = each occurrence of a listed word or phrase (score 1); `doc_count` = number
    of occurrences; `has_naughty_word` = 1 if there is at least one, else 0; `doc_frac` = occurrences per
    whitespace-separated word (0 without words); the last three over the whole document.
    """

    Config = WordListConfig
    _transient = ("pattern",)

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        path = self.config.wordlist_path
        entries = io.read_text(path).splitlines() if path else default_wordlist()
        return compile_wordlist(entries)

    def check(self) -> None:
        self.pattern  # noqa: B018 - loads and compiles the list (small); errors surface at start-up

    def predict(self, doc: Document) -> list[Span]:
        text = doc.text
        spans = [Span(m.start(), m.end(), "naughty_word", 1.0) for m in self.pattern.finditer(text)]
        n, count = len(text), len(spans)
        words = len(text.split())
        spans.append(Span(0, n, "doc_count", float(count)))
        spans.append(Span(0, n, "has_naughty_word", 1.0 if count else 0.0))
        spans.append(Span(0, n, "doc_frac", count / words if words else 0.0))
        return spans
