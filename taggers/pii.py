"""PII detection with regular expressions: e-mail addresses, US-style phone numbers and IPv4 addresses.

The patterns and scores reproduce the reference toolkit's `pii_regex_*` taggers exactly as observed by
black-box differential testing (spans include the surrounding whitespace and punctuation those patterns
consume), so existing mixer rules keep their meaning.

The taggers run the scan in the Rust core (`dolma._rust.pii_scan_batch`, rust_ext/core/src/pii.rs) on a
whole batch without the GIL. The Python functions below (`pii_spans`, `pii_spans_by_line`) are the
specification: tests/taggers/test_pii.py checks the Rust scan against them on random and adversarial text.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence
from itertools import chain

from dolma import Document, Span, Tagger, _rust, register
from taggers._text import rust_texts

# An e-mail candidate: optional leading punctuation/whitespace, "local@domain", optional punctuation, then a
# mandatory whitespace character (so an address at the very end of a text without trailing space is missed,
# as in the reference).
EMAIL = re.compile(r"[.\s@,?!;:)(]*([^\s@]+@[^\s@,?!;:)(]+?)[.\s@,?!;:)(]?\s")
# A phone number: whitespace, then 3 + 3 + 4 digits with optional parentheses and separators.
PHONE = re.compile(r"\s+\(?\d{3}\)?[-. ]*\d{3}[-. ]?\d{4}")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)"
IP = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}")
# Cheap screens: a phone needs three digits in a row, an IPv4 address a digit followed by a dot.
_HAS_3DIGITS = re.compile(r"\d\d\d")
_HAS_DIGIT_DOT = re.compile(r"\d\.")


def python_digit_ranges() -> list[tuple[int, int]]:
    """The inclusive code-point ranges that this Python's `re` matches with `\\d` (its Unicode database)."""
    text = "".join(map(chr, chain(range(0xD800), range(0xE000, 0x110000))))
    return [(ord(m.group()[0]), ord(m.group()[-1])) for m in re.finditer(r"\d+", text)]


@functools.cache
def _use_python_digits() -> None:
    # The Rust scan spells `\d` out as Unicode 14.0's digits (Python 3.11); another Python hands it its own
    # set, once per process and only when a scan is asked for (~0.4 s: not at import).
    if unicodedata.unidata_version != _rust.PII_DIGITS_UNICODE_VERSION:
        _rust.pii_set_digit_ranges(python_digit_ranges())


def rust_scan(texts: list[str], *, by_line: bool = False) -> list[tuple[list[tuple[int, int, int]], int]]:
    r"""`dolma._rust.pii_scan_batch` with this Python's `\d` (always call the scan through this)."""
    _use_python_digits()
    return _rust.pii_scan_batch(texts, by_line=by_line)


EMAIL_TYPE, PHONE_TYPE, IP_TYPE = "EMAIL_ADDRESS", "PHONE_NUMBER", "IP_ADDRESS"
HASH_WINDOW = 100


def _emails_v2(text: str, offset: int, out: list[Span]) -> None:
    # Accept a candidate when the text after its first "@" (up to the next "@") contains a dot.
    for m in EMAIL.finditer(text):
        if "." in m.group(0).split("@", 2)[1]:
            out.append(Span(offset + m.start(), offset + m.end(), EMAIL_TYPE, 1.0))


def _emails_fast(text: str, offset: int, out: list[Span]) -> None:
    # The fast variant checks the domain of the address itself (after the "@" inside the captured group).
    for m in EMAIL.finditer(text):
        if "." in m.group(1).split("@", 2)[1]:
            out.append(Span(offset + m.start(), offset + m.end(), EMAIL_TYPE, 1.0))


def _simple(pattern: re.Pattern[str], kind: str, text: str, offset: int, out: list[Span]) -> None:
    for m in pattern.finditer(text):
        out.append(Span(offset + m.start(), offset + m.end(), kind, 1.0))


def pii_spans(text: str) -> list[Span]:
    """E-mail, then phone, then IP spans over the whole text (the order of the reference's output)."""
    out: list[Span] = []
    if "@" in text:
        _emails_v2(text, 0, out)
    # Observed reference behaviour: a phone or IP match with a "#" within 100 characters before or after it
    # is dropped (e-mails are not). Kept so that attribute values match; the fast variant does not do this.
    found: list[Span] = []
    if _HAS_3DIGITS.search(text):
        _simple(PHONE, PHONE_TYPE, text, 0, found)
    if _HAS_DIGIT_DOT.search(text):
        _simple(IP, IP_TYPE, text, 0, found)
    if found and "#" in text:
        found = [s for s in found if "#" not in text[max(0, s.start - HASH_WINDOW) : s.end + HASH_WINDOW]]
    out.extend(found)
    return out


def pii_spans_by_line(text: str) -> list[Span]:
    """PII spans line by line (each line keeps its newline); per line: e-mail, phone, then IP spans."""
    out: list[Span] = []
    has_at = "@" in text
    if not has_at and not _HAS_3DIGITS.search(text) and not _HAS_DIGIT_DOT.search(text):
        return out
    offset = 0
    n = len(text)
    while offset < n:
        nl = text.find("\n", offset)
        end = n if nl < 0 else nl + 1
        line = text[offset:end]
        if has_at and "@" in line:
            _emails_fast(line, offset, out)
        if _HAS_3DIGITS.search(line):
            _simple(PHONE, PHONE_TYPE, line, offset, out)
        if _HAS_DIGIT_DOT.search(line):
            _simple(IP, IP_TYPE, line, offset, out)
        offset = end
    return out


_KINDS = (EMAIL_TYPE, PHONE_TYPE, IP_TYPE)


def scan_batch(docs: Sequence[Document], *, by_line: bool = False) -> list[tuple[list[Span], int]]:
    """`pii_spans` (or `pii_spans_by_line`) of each document plus its word count (0 by line), from Rust."""
    rows = rust_scan(rust_texts(docs), by_line=by_line)
    return [([Span(s, e, _KINDS[k], 1.0) for s, e, k in found], words) for found, words in rows]


@register("pii_regex_v1")
class PiiRegexV1Tagger(Tagger):
    """E-mail addresses, phone numbers and IPv4 addresses found with regular expressions (v1).

    Span types: `EMAIL_ADDRESS`, `PHONE_NUMBER`, `IP_ADDRESS` = each match (score 1; the span includes the
    whitespace/punctuation the pattern consumes around it); `doc` = matches per whitespace-separated word
    over the whole document. The reference crashes (division by zero) on a text without words; here such a
    document gets `doc` = -1, as in pii_regex_v2.
    """

    def predict(self, doc: Document) -> list[Span]:
        return self.predict_batch([doc])[0]

    def predict_batch(self, docs: Sequence[Document]) -> list[list[Span]]:
        out = []
        for doc, (spans, words) in zip(docs, scan_batch(docs)):
            spans.append(Span(0, len(doc.text), "doc", len(spans) / words if words else -1.0))
            out.append(spans)
        return out


@register("pii_regex_v2")
class PiiRegexV2Tagger(PiiRegexV1Tagger):
    """E-mail addresses, phone numbers and IPv4 addresses found with regular expressions (v2).

    Span types: `EMAIL_ADDRESS`, `PHONE_NUMBER`, `IP_ADDRESS` = each match (score 1); `doc` = matches per
    whitespace-separated word over the whole document, -1 when the text has no words.
    """


@register("pii_regex_with_counts_v2")
class PiiRegexWithCountsV2Tagger(Tagger):
    """PII matches as in pii_regex_v2, plus the number of matches per document.

    Span types: `EMAIL_ADDRESS`, `PHONE_NUMBER`, `IP_ADDRESS` = each match (score 1); `doc` = matches per
    whitespace-separated word (-1 without words; the reference crashes there); `doc_count` = number of
    matches, both over the whole document.
    """

    def predict(self, doc: Document) -> list[Span]:
        return self.predict_batch([doc])[0]

    def predict_batch(self, docs: Sequence[Document]) -> list[list[Span]]:
        out = []
        for doc, (spans, words) in zip(docs, scan_batch(docs)):
            count = len(spans)
            n = len(doc.text)
            spans.append(Span(0, n, "doc", count / words if words else -1.0))
            spans.append(Span(0, n, "doc_count", float(count)))
            out.append(spans)
        return out


@register("pii_regex_with_counts_fast_v2")
class PiiRegexWithCountsFastV2Tagger(Tagger):
    """PII matches found line by line, with the match count and a coverage score per document.

    Span types: `EMAIL_ADDRESS`, `PHONE_NUMBER`, `IP_ADDRESS` = each match (score 1; lines are scanned
    separately, so a phone number at the start of a line is not matched); `doc_count` = number of matches;
    `doc_frac` = (characters + characters inside matches) / characters, i.e. 1 + the covered fraction (the
    reference's formula, kept for compatibility), -1 for an empty text.
    """

    def predict(self, doc: Document) -> list[Span]:
        return self.predict_batch([doc])[0]

    def predict_batch(self, docs: Sequence[Document]) -> list[list[Span]]:
        out = []
        for doc, (spans, _) in zip(docs, scan_batch(docs, by_line=True)):
            covered = sum(s.end - s.start for s in spans)
            n = len(doc.text)
            count = len(spans)
            spans.append(Span(0, n, "doc_count", float(count)))
            spans.append(Span(0, n, "doc_frac", (n + covered) / n if n else -1.0))
            out.append(spans)
        return out
