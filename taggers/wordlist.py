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


def compile_wordlist(entries: list[str], trie: bool = True) -> re.Pattern[str]:
    """Whole-word, case-insensitive occurrences of the entries; internal whitespace matches any run of whitespace.

    Where several entries match at one place the longest wins. An ASCII list (the default) is compiled as a trie,
    one branch per first character, so the pattern tries one branch per position instead of every entry (20x
    faster on the demo sample); with `trie` false, or for any other list, the pattern is the alternation of every
    entry, longest first, which the trie matches like.
    """
    phrases = normalized(entries)
    if not phrases:
        return re.compile(r"(?!x)x")
    body = _trie_body(phrases) if trie and all(p.isascii() for p in phrases) else _flat_body(phrases)
    return re.compile(rf"(?<!\w)(?:{body})(?!\w)", re.IGNORECASE)


def normalized(entries: list[str]) -> list[str]:
    """The distinct entries, lower-cased, whitespace runs as one space, longest first."""
    return sorted({" ".join(e.lower().split()) for e in entries if e.strip()}, key=lambda p: (-len(p), p))


def _flat_body(phrases: list[str]) -> str:
    return "|".join(r"\s+".join(re.escape(w) for w in p.split(" ")) for p in phrases)


_END = ""  # the trie key marking that a phrase ends at a node


def _trie_body(phrases: list[str]) -> str:
    """The phrases as nested groups, the longer continuation tried before the end of a shorter phrase.

    Siblings never match the same character (distinct lower-case ASCII characters, or the whitespace run against
    a character that is not whitespace), so at most one branch continues from any node: the deepest phrase whose
    end passes the closing lookahead wins, as the longest-first alternation's does.
    """
    root: dict = {}
    for phrase in phrases:
        node = root
        for token in [re.escape(c) if c != " " else r"\s+" for c in phrase]:
            node = node.setdefault(token, {})
        node[_END] = {}

    def render(node: dict) -> str:
        branches = [token + render(child) for token, child in sorted(node.items()) if token != _END]
        if _END in node:
            branches.append("")
        if len(branches) == 1:
            return branches[0]
        return "(?:" + "|".join(branches) + ")"

    return render(root)


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
