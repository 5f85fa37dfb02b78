"""Hand-checkable PII tagger cases (the differential suite checks the same rules against the reference)."""

from __future__ import annotations

import pytest

from dolma import registry
from dolma.documents import Document


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
