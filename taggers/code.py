"""Taggers for source code: leaked secrets, licence/copyright headers and RedPajama-style code statistics.

Values reproduce the reference toolkit's `code_*` taggers as observed by black-box differential testing
(tests/test_reference_code_taggers.py), including its quirks, so that existing mixer thresholds keep their
meaning; the quirks are spelled out in each docstring and in the README.
"""

from __future__ import annotations

from dolma.documents import Document, Span
from dolma.errors import TaggerError
from dolma.registry import register
from dolma.tagger import Tagger
from taggers.length import count_tokens


def _secrets_api():
    """detect-secrets, imported lazily so that only users of code_secrets_v1 pay for it."""
    try:
        from detect_secrets.core.scan import _process_line_based_plugins
        from detect_secrets.settings import default_settings
    except ImportError as exc:  # pragma: no cover - it is a dependency; this guards broken installs
        msg = f"code_secrets_v1 needs the detect-secrets package (pip install detect-secrets==1.4.0): {exc}"
        raise TaggerError(msg) from exc
    return _process_line_based_plugins, default_settings


@register("code_secrets_v1")
class CodeSecretsTagger(Tagger):
    """Credentials and keys in source code, found with detect-secrets' default plugins and filters.

    Span types: `SECRET_<detector>` (e.g. `SECRET_AWS_Access_Key`, `SECRET_Secret_Keyword`,
    `SECRET_Private_Key`; the detect-secrets plugin name with spaces as underscores) = one span per distinct
    (detector, secret value) pair in the document, placed at the value's first occurrence in the line where it
    was first found, ordered by line and
    detector name, score 1; `doc` =
    number of such spans per whitespace-separated word, -1 for a text without words.
    """

    def secrets(self, text: str) -> list[tuple[int, str, str]]:
        """(offset, detector name, value) per distinct (detector, value), in detect-secrets' order.

        Every line (str.splitlines) goes through detect-secrets' line plugins and filters with the rules
        of a YAML file (`password: value` counts) but without its YAML re-parsing: the combination that
        matches the reference in differential fuzzing. The line scanner is detect-secrets' internal
        function, hence the exact version pin. The offset is the value's first occurrence in the line
        where it was first found.
        """
        scan_lines, default_settings = _secrets_api()
        lines = text.splitlines(keepends=True)
        starts = [0]
        for line in lines:
            starts.append(starts[-1] + len(line))
        out: list[tuple[int, str, str]] = []
        seen: set[tuple[str, str]] = set()
        with default_settings():
            numbered = [(i + 1, line.rstrip("\r\n")) for i, line in enumerate(text.splitlines())]
            for secret in scan_lines(lines=numbered, filename="document.yaml"):
                key = (secret.type, secret.secret_value)
                if secret.secret_value is None or key in seen:
                    continue
                seen.add(key)
                at = lines[secret.line_number - 1].find(secret.secret_value)
                if at >= 0:
                    out.append((starts[secret.line_number - 1] + at, secret.type, secret.secret_value))
        return out

    def predict(self, doc: Document) -> list[Span]:
        text = doc.text
        spans = [
            Span(start, start + len(value), "SECRET_" + kind.replace(" ", "_"), 1.0)
            for start, kind, value in (self.secrets(text) if text.strip() else [])
        ]
        words = len(text.split())
        spans.append(Span(0, len(text), "doc", len(spans) / words if words else -1.0))
        return spans


_LINE_COMMENT = ("#", "//", "--")


def copyright_span(text: str) -> tuple[int, int, str] | None:
    """The licence-header span of a text: (start, end, type) or None; see CodeCopyrightTagger."""
    start = text.find("/*")
    close = text.find("*/", start + 2) if start >= 0 else -1
    if close >= 0:
        end = close + 2
        return (start, end, "copyright_notice") if "copyright" in text[start:end].lower() else None
    # The reference's end offset: each comment line adds its length and each empty line adds 1 (so the
    # newlines between comment lines are not counted and a block of empty lines can pass the text's end).
    end = 0
    lines = 0
    for line in text.split("\n"):
        if line and not line.startswith(_LINE_COMMENT):
            break
        end += len(line) if line else 1
        lines += 1
    return (0, end, "comment_block") if lines else None


@register("code_copyright_comments_v1")
class CodeCopyrightTagger(Tagger):
    """Licence headers: the first /* ... */ block when it mentions copyright, else the leading line comments.

    Span types: `copyright_notice` = the first `/* ... */` block of the text when it contains "copyright"
    (any case; when that first block does not, there is no span); `comment_block` = for texts without a
    closed `/* ... */` block, the leading run of lines that start with `#`, `//` or `--` or are empty (any
    comment, copyright or not; the reference's end offset is kept: the sum of the comment lines' lengths
    plus one per empty line); `doc` = (span end - span start + 1) / characters (so it can exceed 1, as in
    the reference), 0 without a span,
    -1 for an empty text.
    """

    def predict(self, doc: Document) -> list[Span]:
        text = doc.text
        found = copyright_span(text)
        spans = []
        score = 0.0
        if found is not None:
            start, end, kind = found
            spans.append(Span(start, end, kind, 1.0))
            score = (end - start + 1) / len(text) if text else -1.0
        elif not text:
            score = -1.0
        spans.append(Span(0, len(text), "doc", score))
        return spans


def redpajama_code_stats(text: str) -> tuple[float, float, float, float]:
    """(max line length, mean line length, alphanumeric fraction, letters per token) of a text."""
    lines = text.splitlines()
    lengths = [len(line) for line in lines]
    max_len = float(max(lengths)) if lengths else 0.0
    avg_len = sum(lengths) / len(lengths) if lengths else 0.0
    alnum = sum(1 for c in text if c.isalnum()) / len(text) if text else 0.0
    alpha = sum(1 for c in text if c.isalpha()) / count_tokens(text)
    return max_len, avg_len, alnum, alpha


@register("code_redpajama_taggers_v1")
class CodeRedPajamaTaggers(Tagger):
    """RedPajama's code-quality statistics: line lengths, alphanumeric fraction and letters per token.

    Span types, all over the whole document: `max_line_length_doc` = characters in the longest line
    (str.splitlines, so \\r, \\x0b, \\x85, \\u2028 ... also end lines); `avg_line_length_doc` = mean characters
    per line (0 without lines); `alnum_prop_doc` = alphanumeric characters / characters (0 for an empty
    text); `alpha_token_prop_doc` = letters / (word and punctuation runs + 1), the reference's formula
    (named a proportion but it is letters per token, so it exceeds 1 on ordinary text).
    """

    def predict(self, doc: Document) -> list[Span]:
        n = len(doc.text)
        max_len, avg_len, alnum, alpha = redpajama_code_stats(doc.text)
        return [
            Span(0, n, "max_line_length_doc", max_len),
            Span(0, n, "avg_line_length_doc", avg_len),
            Span(0, n, "alnum_prop_doc", alnum),
            Span(0, n, "alpha_token_prop_doc", alpha),
        ]
