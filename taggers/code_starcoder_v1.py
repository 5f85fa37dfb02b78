"""The reference toolkit's first StarCoder tagger, `code_starcoder_taggers_v1`: a natural-language ratio per language.

It differs from `code_starcoder_taggers_v2` (taggers/code.py) in one value: `nl_ratio_doc`, measured for the 356
extensions of the reference's extension table with the Pygments lexer that table names. The table
(taggers/resources/starcoder_v1_lexers.json) was derived by black-box probing, not from the reference's source: every
alias and file-name extension Pygments 2.21 knows was given to the reference with a one-line text (an extension
outside its table gives -1), then each extension it knows was tagged on 46 texts with the comment syntaxes of many
languages and matched to the one Pygments lexer whose comment tokens give the same ratios
(tests/compat/test_reference_code_taggers.py compares the result with the reference on a texts x extensions grid).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from dolma import Document, Span, Tagger, register
from taggers.code import (
    _XML_DECLARATION,
    HTML_EXTS,
    StarCoderConfig,
    _java_lexer,
    html_text_ratio,
    python_comment_text,
    starcoder_metadata,
)

LEXER_TABLE = Path(__file__).parent / "resources" / "starcoder_v1_lexers.json"
PYTHON_V1_EXTS = frozenset({"py", "pyw", "tac", "bzl"})  # measured as code_starcoder_taggers_v2 measures Python


@functools.cache
def lexer_table() -> dict[str, str]:
    """Extension (exact case, no dot) -> Pygments lexer alias, for every extension the reference measures."""
    return json.loads(LEXER_TABLE.read_text(encoding="utf-8"))["lexers"]


@functools.cache
def _lexer(alias: str):
    """One Pygments lexer per alias (lexers keep no state between texts); Java's is the guarded one."""
    if alias == "java":
        return _java_lexer()
    from pygments.lexers import get_lexer_by_name

    return get_lexer_by_name(alias)


def comment_chars(text: str, alias: str) -> int:
    """Characters of the text's single-line and block comments (delimiters included) as lexer `alias` sees them.

    Preprocessor lines and `#!` lines are other comment kinds in Pygments and are not counted.
    """
    from pygments.token import Comment

    kinds = (Comment.Single, Comment.Multiline)
    return sum(len(value) for kind, value in _lexer(alias).get_tokens(text) if kind in kinds)


def nl_ratio(text: str, ext: object) -> float:
    """nl_ratio_doc of a text with extension `ext`; see CodeStarCoderV1Tagger."""
    alias = lexer_table().get(ext) if isinstance(ext, str) else None
    if alias is None or not text:
        return -1.0
    if ext in PYTHON_V1_EXTS:
        comments = python_comment_text(text)
        return 0.0 if comments is None else len(comments) / len(text)
    return comment_chars(text, alias) / len(text)


@register("code_starcoder_taggers_v1")
class CodeStarCoderV1Tagger(Tagger):
    """StarCoder's filters with a natural-language ratio for every language of the reference's extension table.

    Span types, all over the whole document: `has_xml_template_doc` and `num_github_stars_doc` as in
    code_starcoder_taggers_v2; `nl_ratio_doc` = for Python (`py pyw tac bzl`) v2's comment ratio (docstrings and
    `#` comments without the `#`, 0 when the text does not tokenize), for the other extensions of the table
    (starcoder_v1_lexers.json) characters of Pygments `Comment.Single` and `Comment.Multiline` tokens / characters;
    `code_to_text_ratio_html_doc` = as in v2 for `html htm xhtml xht`, 1 for the table's other extensions. A
    missing, null or unknown extension (exact case: `PY` is unknown) or an empty text gives -1 for both ratios.
    """

    Config = StarCoderConfig

    def predict(self, doc: Document) -> list[Span]:
        text = doc.text
        n = len(text)
        ext, stars = starcoder_metadata(doc, self.config)  # type: ignore[arg-type]
        known = isinstance(ext, str) and ext in lexer_table() and bool(text)
        if not known:
            html = -1.0
        elif ext in HTML_EXTS:
            html = html_text_ratio(text)
        else:
            html = 1.0
        return [
            Span(0, n, "has_xml_template_doc", 1.0 if _XML_DECLARATION in text[:100] else 0.0),
            Span(0, n, "num_github_stars_doc", stars),
            Span(0, n, "nl_ratio_doc", nl_ratio(text, ext)),
            Span(0, n, "code_to_text_ratio_html_doc", html),
        ]
