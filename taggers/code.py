"""Taggers for source code: leaked secrets, licence/copyright headers and RedPajama-style code statistics.

Values reproduce the reference toolkit's `code_*` taggers as observed by black-box differential testing
(tests/compat/test_reference_code_taggers.py), including its quirks, so that existing mixer thresholds keep their
meaning; the quirks are spelled out in each docstring and in docs/taggers.md.
"""

from __future__ import annotations

import ast
import bisect
import io
import re
import tokenize
import warnings
from collections import OrderedDict

from dolma import Document, Span, Tagger, TaggerConfig, TaggerError, register
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


# Extensions (`metadata.ext`, exact, lower case, no dot) whose comments the reference measures; found by probing
# it with one text under each candidate extension (every other extension gets the neutral 0.5).
PYTHON_EXTS = frozenset({"py", "pyw", "pyde", "pyp", "pyt", "bzl", "gyp", "lmi", "tac", "wsgi", "xpy"})
JAVASCRIPT_EXTS = frozenset(
    {"js", "_js", "bones", "es6", "jake", "jsb", "jscad", "jsfl", "jsm", "jss", "njs", "pac", "sjs", "ssjs"}
    | {"xsjs", "xsjslib"}
)
JAVA_EXTS = frozenset({"java"})
HTML_EXTS = frozenset({"html", "htm", "xhtml", "xht"})

_XML_DECLARATION = "<?xml version="
_HTML_MIN_VISIBLE = 100  # visible characters an HTML page needs (strictly more) for a non-zero ratio


def _docstrings(tree: ast.AST) -> list[str]:
    """Cleaned docstrings of the module, classes and (non-async) functions, in source (pre-)order."""
    out: list[str] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)):
            doc = ast.get_docstring(node, clean=True)
            if doc is not None:
                out.append(doc)
        stack.extend(reversed(list(ast.iter_child_nodes(node))))
    return out


def python_comment_text(text: str) -> str | None:
    """The natural-language part of Python source as the reference measures it, or None if it does not tokenize.

    Each docstring (module, class and `def` function; `async def` excluded; dedented as `inspect.cleandoc`
    does; none when the text does not parse) followed by a newline, then the `#` comments (the stdlib
    tokenizer's COMMENT tokens with every `#` removed, concatenated without separator); the whole stripped.
    A tokenizer error (an unclosed bracket or string at the end, an inconsistent dedent) gives None.
    """
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return None
    comments = "".join(tok.string.replace("#", "") for tok in tokens if tok.type == tokenize.COMMENT)
    try:
        docs = _docstrings(ast.parse(text))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        docs = []
    return ("".join(doc + "\n" for doc in docs) + comments).strip()


_CHAIN = re.compile(r"[\w.\[\]$<>?\s]+")  # the characters Pygments' Java method-signature rule can span
_NAME_START = re.compile(r"[^\W\d]|\$")
_PURE_NAME = re.compile(r"(?:[^\W\d]|\$)[\w$]*")
_ELEMENT = re.compile(r"\S+")


class _MethodRuleGuard:
    """Pygments' Java method-signature rule, answered without its quadratic backtracking.

    The rule (return-type words, a name, optional spaces, "(") is tried at every identifier and scans the
    whole run of words after it, so a long run of words without "(" (prose, a long line) costs quadratic
    time (25 s for 50 kB in Pygments 2.21). It can only match when the run of its characters that starts at
    `pos` ends with "(", every whitespace-separated element from `pos` on starts like a name, there are at
    least two of them, and the last is a plain name. That is checked with one linear scan per text; only
    then does the original expression run (bounded to the run), so the tokens are unchanged (checked token
    by token against the unguarded lexer in tests/taggers/test_code_taggers.py).
    """

    def __init__(self, match):
        self.match = match
        self.cache: OrderedDict[int, tuple[str, list[int], list[int], dict[int, tuple[int, int]]]] = OrderedDict()

    def _analysis(self, text: str):
        hit = self.cache.get(id(text))
        if hit is not None and hit[0] is text:
            self.cache.move_to_end(id(text))
            return hit
        starts, ends = [], []
        for m in _CHAIN.finditer(text):
            starts.append(m.start())
            ends.append(m.end())
        # Least recently used out: the text being lexed is asked about at every word, so it stays while the
        # snippets that `using(this)` re-lexes come and go.
        if len(self.cache) >= 4:
            self.cache.popitem(last=False)
        hit = self.cache[id(text)] = (text, starts, ends, {})
        return hit

    @staticmethod
    def _run_bounds(text: str, start: int, end: int) -> tuple[int, int]:
        """(start of the last element, start of the last badly-starting element before it or -1), or
        (-1, -1) when the last element is not a plain name."""
        elements = [(m.start(), m.group()) for m in _ELEMENT.finditer(text, start, end)]
        last_start, last = elements[-1] if elements else (-1, "")
        if not elements or not _PURE_NAME.fullmatch(last):
            return -1, -1
        bad = -1
        for at, element in elements[:-1]:
            if not _NAME_START.match(element):
                bad = at
        return last_start, bad

    def __call__(self, text: str, pos: int, endpos: int | None = None):
        if not _NAME_START.match(text, pos):
            return None
        _, starts, ends, runs = self._analysis(text)
        i = bisect.bisect_right(starts, pos) - 1
        if i < 0 or ends[i] <= pos or ends[i] >= len(text) or text[ends[i]] != "(":
            return None
        bounds = runs.get(i)
        if bounds is None:
            bounds = runs[i] = self._run_bounds(text, starts[i], ends[i])
        last_start, bad = bounds
        if not (bad < pos < last_start):
            return None
        return self.match(text, pos, ends[i] + 1)


_GUARDED_JAVA: list[type] = []


def _java_lexer():
    """Pygments' Java lexer with its method-signature rule guarded (see _MethodRuleGuard): same tokens."""
    from pygments.lexers import JavaLexer

    if not _GUARDED_JAVA:
        sub = type("GuardedJavaLexer", (JavaLexer,), {})
        sub()  # Pygments compiles a lexer class's rules when its first instance is made
        root = sub._tokens["root"]
        for i, (rex, action, new_state) in enumerate(root):
            pattern = getattr(getattr(rex, "__self__", None), "pattern", "")
            if isinstance(pattern, str) and pattern.endswith(r"(\s*)(\()"):
                root[i] = (_MethodRuleGuard(rex), action, new_state)
        _GUARDED_JAVA.append(sub)
    return _GUARDED_JAVA[0]()


def _lexer(ext: str):
    from pygments.lexers import JavascriptLexer

    return JavascriptLexer() if ext in JAVASCRIPT_EXTS else _java_lexer()


def lexer_comment_text(text: str, ext: str) -> str:
    """Single-line and block comments (delimiters included) of JavaScript or Java source, concatenated.

    Pygments' lexer for the language decides what is a comment (strings, regex literals, template
    literals are not); it reads `\\r\\n` and `\\r` as `\\n` first. A `#!` line is not a comment here.
    """
    from pygments.token import Comment

    kinds = (Comment.Single, Comment.Multiline)
    return "".join(value for kind, value in _lexer(ext).get_tokens(text) if kind in kinds)


def comment_ratio(text: str, ext: object) -> float:
    """code_to_comment_ratio_doc of a text with extension `ext`; see CodeStarCoderTaggers."""
    if not isinstance(ext, str) or ext not in PYTHON_EXTS | JAVASCRIPT_EXTS | JAVA_EXTS:
        return 0.5
    if not text:
        return -1.0
    if ext in PYTHON_EXTS:
        comments = python_comment_text(text)
        return 0.0 if comments is None else len(comments) / len(text)
    return len(lexer_comment_text(text, ext)) / len(text)


def html_visible_text(text: str) -> str:
    """The text a browser would show: BeautifulSoup (stdlib html.parser) get_text(), CDATA included and
    comments, doctype, processing instructions and <script>/<style>/<template> contents left out."""
    from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning, XMLParsedAsHTMLWarning

    with warnings.catch_warnings():  # every page is parsed as HTML on purpose, even one that looks like XML
        warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)
        warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
        return BeautifulSoup(text, "html.parser").get_text()


def html_text_ratio(text: str) -> float:
    """code_to_text_ratio_html_doc of an HTML text; see CodeStarCoderTaggers."""
    if not text:
        return -1.0
    visible = len(html_visible_text(text))
    return visible / len(text) if visible > _HTML_MIN_VISIBLE else 0.0


class StarCoderConfig(TaggerConfig, kw_only=True):
    """Metadata fields read by code_starcoder_taggers_v2 (the defaults are The Stack's field names)."""

    ext_field: str = "ext"  # file extension without the dot, e.g. "py"; decides the language
    stars_field: str = "max_stars_count"  # GitHub stars of the repository


def starcoder_metadata(doc: Document, config: StarCoderConfig) -> tuple[object, float]:
    """(extension, GitHub stars) from the document's metadata, as both StarCoder taggers read them; stars that
    are not a number are an error naming the document and the field."""
    meta = doc.metadata or {}
    stars_value = meta.get(config.stars_field)
    try:
        stars = 0.0 if stars_value is None else float(stars_value)
    except (TypeError, ValueError):
        msg = f"document {doc.id!r}: metadata.{config.stars_field} = {stars_value!r} is not a number"
        raise TaggerError(msg) from None
    return meta.get(config.ext_field), stars


@register("code_starcoder_taggers_v2")
class CodeStarCoderTaggers(Tagger):
    """StarCoder's code filters: XML declaration, GitHub stars, comment ratio and HTML visible-text ratio.

    Span types, all over the whole document: `has_xml_template_doc` = 1 when "<?xml version=" (exact case)
    starts within the first 100 characters, else 0; `num_github_stars_doc` = `metadata.max_stars_count`
    as a number (0 when absent or null; a value that is not a number is an error naming the document);
    `code_to_comment_ratio_doc` = characters of comments / characters of the text for Python, JavaScript
    and Java files (by `metadata.ext`, see PYTHON_EXTS, JAVASCRIPT_EXTS, JAVA_EXTS): for Python the
    docstrings and `#` comments without their `#` (python_comment_text; 0 when the text does not
    tokenize), for JavaScript and Java the comments with their delimiters (lexer_comment_text); 0.5 for any
    other or missing extension and -1 for an empty text of those languages (the reference crashes there);
    `code_to_text_ratio_html_doc` = for HTML files (ext html, htm, xhtml, xht) the visible text's characters
    / the text's characters when there are more than 100 visible characters, else 0, and -1 for an empty
    text; 1 for every other file.
    """

    Config = StarCoderConfig

    def predict(self, doc: Document) -> list[Span]:
        text = doc.text
        n = len(text)
        ext, stars = starcoder_metadata(doc, self.config)  # type: ignore[arg-type]
        html = isinstance(ext, str) and ext in HTML_EXTS
        return [
            Span(0, n, "has_xml_template_doc", 1.0 if _XML_DECLARATION in text[:100] else 0.0),
            Span(0, n, "num_github_stars_doc", stars),
            Span(0, n, "code_to_comment_ratio_doc", comment_ratio(text, ext)),
            Span(0, n, "code_to_text_ratio_html_doc", html_text_ratio(text) if html else 1.0),
        ]
