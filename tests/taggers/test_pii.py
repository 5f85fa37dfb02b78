"""Hand-checkable PII tagger cases (the differential suite checks the same rules against the reference)."""

from __future__ import annotations

import random
import re
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dolma import _rust, registry
from dolma.documents import Document, Span
from taggers.pii import pii_spans, pii_spans_by_line, python_digit_ranges, rust_scan


def found(name: str, text: str) -> list[tuple[int, int, str]]:
    spans = registry.create(name).predict(Document(id="d", text=text))
    return [(s.start, s.end, s.type) for s in spans if s.type.isupper()]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("see 192.168.1.1 now", [(4, 15, "IP_ADDRESS")]),
        ("a 10.0.0.1 b", [(2, 10, "IP_ADDRESS")]),
        # a "#" within 100 characters suppresses phone numbers and IP addresses, not e-mails (as in the reference)
        ("x 1.2.3.4 y # z", []),
        ("# " + "w" * 97 + " 1.2.3.4 y", []),
        ("# " + "w" * 98 + " 1.2.3.4 y", [(101, 108, "IP_ADDRESS")]),
        ("x 1.2.3.4 " + "w" * 97 + " #", []),
        ("x 1.2.3.4 " + "w" * 98 + " #", [(2, 9, "IP_ADDRESS")]),
        ("call 555-123-4567 now #", []),
        ("mail a@b.com now #", [(4, 13, "EMAIL_ADDRESS")]),
    ],
)
@pytest.mark.parametrize("tagger", ["pii_regex_v1", "pii_regex_v2", "pii_regex_with_counts_v2"])
def test_pii_regex(tagger, text, expected):
    assert found(tagger, text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("x 1.2.3.4 y # z", [(2, 9, "IP_ADDRESS")]),
        ("call 555-123-4567 now #", [(4, 17, "PHONE_NUMBER")]),
    ],
)
def test_fast_variant_ignores_hash(text, expected):
    assert found("pii_regex_with_counts_fast_v2", text) == expected


# --- The Rust scan (dolma._rust.pii_scan_batch) against the Python specification in taggers/pii.py ---------

_KIND = {"EMAIL_ADDRESS": 0, "PHONE_NUMBER": 1, "IP_ADDRESS": 2}


def python_rows(texts: list[str], by_line: bool) -> list[tuple[list[tuple[int, int, int]], int]]:
    out = []
    for text in texts:
        spans = pii_spans_by_line(text) if by_line else pii_spans(text)
        out.append(([(s.start, s.end, _KIND[s.type]) for s in spans], 0 if by_line else len(text.split())))
    return out


def assert_same(texts: list[str]) -> None:
    for by_line in (False, True):
        got = rust_scan(texts, by_line=by_line)
        want = python_rows(texts, by_line)
        for text, g, w in zip(texts, got, want):
            assert g == w, (by_line, text)


# Pieces that make PII-like text hard: separators the patterns treat specially, Python-only whitespace
# (U+001C..U+001F), Unicode whitespace, digits of other scripts (and U+1E4F0, a digit only in Unicode 15+,
# not in Python 3.11's database), multi-byte letters, "#" (the phone/IP drop rule) and newlines.
_PIECES = [
    "a@b.com",
    "x.y@z",
    "@",
    "@@",
    "a@b",
    ".",
    ",",
    "(",
    ")",
    "?",
    "!",
    ";",
    ":",
    "-",
    " ",
    "  ",
    "\n",
    "\t",
    "\x1c",
    "\x1d",
    "\x1e",
    "\x1f",
    "\x0b",
    "\x85",
    "\xa0",
    "\u2003",
    "\u3000",
    "\u180e",
    "\u200b",
    "555",
    "123",
    "4567",
    "(555)",
    "555-123-4567",
    " 555.123.4567",
    "192.168.1.1",
    "256.1.1.1",
    "10.0.0",
    "1.2.3.4.5",
    "0",
    "25",
    "255",
    "\u0665\u0665\u0665",
    "\u0966\u0967\u0968\u0969",
    "\uff11\uff12\uff13",
    "\U0001d7ce\U0001d7cf\U0001d7d0",
    "\U0001e4f0",
    "\u00b2",
    "\u2460",
    "é",
    "ü@ß.de",
    "中文",
    "#",
    "#1",
    "w" * 60,
    "john.doe@example.com",
    "(a@b.c)",
    "mail: x@y.z, ",
]
_ALPHABET = "".join(sorted(set("".join(_PIECES)))) + "abcxyz09"


@st.composite
def pii_texts(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.one_of(st.sampled_from(_PIECES), st.text(alphabet=_ALPHABET, max_size=6)), max_size=40))
    return "".join(parts)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(pii_texts(), min_size=1, max_size=8))
def test_rust_scan_matches_python_on_adversarial_text(texts):
    assert_same(texts)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=80), min_size=1, max_size=8))
def test_rust_scan_matches_python_on_random_unicode(texts):
    assert_same(texts)


def test_rust_scan_matches_python_on_seeded_fuzz():
    # A fixed corpus of 4,000 random PII-fragment strings (so a failure is reproducible without hypothesis).
    rng = random.Random(1234)
    texts = ["".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 30))) for _ in range(4000)]
    assert_same(texts)


def test_character_classes_match_python_re_for_every_code_point():
    # \s: "c5551234567" holds a phone number iff c is whitespace for Python's re; \d: " ccc1234567" holds one
    # iff c is a decimal digit (3 + 7 digits). Every code point but the lone surrogates (they cannot cross
    # into Rust; the taggers pass them as U+FFFD, which matches the same classes).
    chars = [chr(i) for i in range(0x110000) if not 0xD800 <= i < 0xE000]
    space_texts = [c + "5551234567" for c in chars]
    digit_texts = [" " + c * 3 + "1234567" for c in chars]
    for texts, pattern in ((space_texts, re.compile(r"\s")), (digit_texts, re.compile(r"\d"))):
        rows = rust_scan(texts, by_line=False)
        got = {c for c, (found, _) in zip(chars, rows) if any(k == 1 for _, _, k in found)}
        want = {c for c in chars if pattern.match(c)}
        assert got == want, sorted(got ^ want)[:20]


def test_rust_digit_set_is_the_running_pythons():
    # the scan gives Rust this Python's `\d` when its Unicode database is not 14.0
    rust_scan([])
    assert python_digit_ranges() == [tuple(r) for r in _rust.pii_digit_ranges()]
    assert (0x30, 0x39) in python_digit_ranges()


def test_digit_set_can_be_replaced_before_the_first_scan():
    # another Unicode database (Nag Mundari digits U+1E4F0.. are Nd from Unicode 15): a fresh process
    code = """
from dolma import _rust
_rust.pii_set_digit_ranges([(0x30, 0x39), (0x1E4F0, 0x1E4F9)])
rows = _rust.pii_scan_batch([" 555123456\\U0001e4f0", " \\u0665\\u0665\\u06655551234"])
print([[k for _, _, k in found] for found, _ in rows])
try:
    _rust.pii_set_digit_ranges([(0x30, 0x39)])
except ValueError as exc:
    print("refused:", exc)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[0] == "[[1], []]"
    assert out.splitlines()[1].startswith("refused: the PII digit set is already in use")


def test_taggers_equal_python_specification():
    rng = random.Random(7)
    docs = [
        Document(id=str(i), text="".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 40)))) for i in range(500)
    ]
    docs += [
        Document(id="empty", text=""),
        Document(id="blank", text=" \n\x1c "),
        Document(id="sur", text="a\ud800 x@y.z "),
    ]
    for name in ("pii_regex_v1", "pii_regex_v2", "pii_regex_with_counts_v2", "pii_regex_with_counts_fast_v2"):
        tagger = registry.create(name)
        batch = tagger.predict_batch(docs)
        for doc, spans in zip(docs, batch):
            text = doc.text
            by_line = name.endswith("fast_v2")
            want = pii_spans_by_line(text) if by_line else pii_spans(text)
            n, count = len(text), len(want)
            if by_line:
                covered = sum(s.end - s.start for s in want)
                want += [
                    Span(0, n, "doc_count", float(count)),
                    Span(0, n, "doc_frac", (n + covered) / n if n else -1.0),
                ]
            else:
                words = len(text.split())
                want.append(Span(0, n, "doc", count / words if words else -1.0))
                if name == "pii_regex_with_counts_v2":
                    want.append(Span(0, n, "doc_count", float(count)))
            assert spans == want, (name, text)
            assert tagger.predict(doc) == want
