"""Creative Commons licence detection on a page's HTML (`cc_re`, `cc_re_fast`), for "licensed pages only" crawls.

Both read `metadata.html` (what `dolma warc` hands its pre taggers) and fall back to the text when a document
carries no HTML, so they also run as ordinary taggers over documents. Span types (one span per licence link,
in page order, each covering the whole text):

- `cc_re`: links `<a ... href="http(s)://creativecommons.org/[licenses/]<type>[/<version>][/[deed.]<xx>]...">`,
  type `cc_<type>[_<version>][_<xx>]`, e.g. `cc_by-sa_3.0`, `cc_by_4.0_en` (from `deed.en`),
  `cc_publicdomain/zero_1.0`.
- `cc_re_fast`: any `http(s)://creativecommons.org/licenses/<type>/` URL in the page (links, `<link>`, text),
  type `cc_<type>`, e.g. `cc_by-nc-sa`.

The score falls with the position of the link: 1.0 for the first, then 0.5 + 0.5 / (n + 1) for the n-th
(0-based), so the first licence a page states counts most. Matching follows the reference toolkit's taggers
of the same names (checked by tests/compat/test_reference_warc.py).
"""

from __future__ import annotations

import re

from dolma import Document, Span, Tagger, register

_MARKER = "creativecommons.org"

_CC_LINK = re.compile(
    r"(?i:<a\s[^>]*?href=)[\"']https?://creativecommons\.org/(?:licenses/|(?!licenses))"
    r"(?P<type>[a-z\-]+(?:/[a-z\-]+)*)"
    r"(?:/(?P<version>\d+\.\d+))?"
    r"(?:/(?:deed\.)?(?P<lang>[a-z]{2}))?"
    r"[^\"'>]*[\"'][^>]*>"
)
_CC_URL = re.compile(r"https?://creativecommons\.org/licenses/(?P<type>[a-z\-]+)/")


def _position_score(index: int) -> float:
    return 0.5 + 0.5 / (index + 1)


def _html(doc: Document) -> str:
    html = (doc.metadata or {}).get("html")
    return html if isinstance(html, str) else doc.text


@register("cc_re")
class CreativeCommonsLicenseTagger(Tagger):
    """Creative Commons licence links in the page's HTML: licence type, version and language."""

    def predict(self, doc: Document) -> list[Span]:
        html = _html(doc)
        if _MARKER not in html:
            return []
        end = len(doc.text)
        spans = []
        for idx, match in enumerate(_CC_LINK.finditer(html)):
            name = "cc_" + "_".join(p for p in match.group("type", "version", "lang") if p)
            spans.append(Span(0, end, name, _position_score(idx)))
        return spans


@register("cc_re_fast")
class CreativeCommonsLicenseFastTagger(Tagger):
    """Creative Commons licence URLs anywhere in the page's HTML: licence type only (a cheaper regex)."""

    def predict(self, doc: Document) -> list[Span]:
        html = _html(doc)
        if _MARKER not in html:
            return []
        end = len(doc.text)
        return [
            Span(0, end, f"cc_{match.group('type')}", _position_score(idx))
            for idx, match in enumerate(_CC_URL.finditer(html))
        ]
