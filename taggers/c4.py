"""C4 quality rules (Raffel et al. 2020) as measurements: flagged lines and document flags, never drops.

Values equal those of the reference toolkit's `c4_v1` / `c4_v2` (see docs/taggers.md for the naughty-word list,
which is a permissively licensed subset). Line statistics come from one Rust scan per document
(`dolma._rust.c4_stats_batch`), run on a whole batch without the GIL.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Annotated, ClassVar

from msgspec import Meta

from dolma import Document, Span, Tagger, TaggerConfig, TaggerError, _rust, register
from dolma.io import read_text
from taggers._text import rust_texts

SHIPPED_NAUGHTY_WORDS = Path(__file__).resolve().parent / "resources" / "naughty_words_en.txt"


class C4Config(TaggerConfig, kw_only=True):
    naughty_words: Annotated[
        str | None,
        Meta(
            description="Word list for has_naughty_word (local path or s3://; one word or phrase a line, `#` "
            "starts a comment). Default: the list shipped in taggers/resources (see NOTICE.md)."
        ),
    ] = None


def load_word_list(path: str) -> list[str]:
    try:
        lines = read_text(path).splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TaggerError(f"cannot read naughty word list {path}: {exc}") from exc
    return [w.strip().lower() for w in lines if w.strip() and not w.lstrip().startswith("#")]


_SPAN_DOC = """
    Lines are `text.split("\\n")`; a line span covers its newline. Span types (score 1 unless said):

    - `lines_with_no_ending_punctuation`: a line whose stripped text does not end with `.`, `!`, `?` or `"`.
    - `lines_with_too_few_words`: a line with fewer than 3 words (`str.split()`).
    - `has_naughty_word`: whole document; some line has a listed word or phrase among its lower-cased words
      (exact whole words: "word," does not match "word").
    - `has_javascript`: whole document; c4_v1: some lower-cased word is exactly "javascript" ("javascript."
      is not); c4_v2: the lower-cased text contains "javascript" anywhere.
    - `has_lorem_ipsum`: whole document; the lower-cased text contains "lorem ipsum" (even inside words).
    - `has_curly_brace`: whole document; the text contains `{`.
    - `line_count`: whole document; the number of lines (1 for an empty text).
"""


# Positions in a `_rust.c4_stats_batch` row: 4 = "javascript" as a whole word, 7 = anywhere in the text.
_FLAGS_V1 = ((3, "has_naughty_word"), (4, "has_javascript"), (5, "has_lorem_ipsum"), (6, "has_curly_brace"))
_FLAGS_V2 = ((3, "has_naughty_word"), (7, "has_javascript"), (5, "has_lorem_ipsum"), (6, "has_curly_brace"))


class _C4Tagger(Tagger):
    Config = C4Config
    flags: ClassVar[tuple[tuple[int, str], ...]] = _FLAGS_V1
    lowercase_offsets: ClassVar[bool] = False
    _transient = ("naughty_words",)

    @cached_property
    def naughty_words(self) -> list[str]:
        return load_word_list(self.config.naughty_words or str(SHIPPED_NAUGHTY_WORDS))

    def check(self) -> None:
        self.naughty_words  # noqa: B018 - reads the word list; errors surface at start-up

    def predict(self, doc: Document) -> list[Span]:
        return self.predict_batch([doc])[0]

    def predict_batch(self, docs: Sequence[Document]) -> list[list[Span]]:
        rows = _rust.c4_stats_batch(rust_texts(docs), self.naughty_words, lowercase_offsets=self.lowercase_offsets)
        return [self._spans(len(doc.text), row) for doc, row in zip(docs, rows)]

    def _spans(self, n: int, row: tuple) -> list[Span]:
        no_punct, few, line_count = row[:3]
        spans = [Span(s, e, "lines_with_no_ending_punctuation", 1.0) for s, e in no_punct]
        spans += [Span(s, e, "lines_with_too_few_words", 1.0) for s, e in few]
        for flag, name in self.flags:
            if row[flag]:
                spans.append(Span(0, n, name, 1.0))
        spans.append(Span(0, n, "line_count", float(line_count)))
        return spans


@register("c4_v1")
class C4V1Tagger(_C4Tagger):
    """C4 rule measurements: lines without ending punctuation or with too few words, and document flags."""

    __doc__ = (__doc__ or "") + _SPAN_DOC


@register("c4_v2")
class C4V2Tagger(_C4Tagger):
    """C4 rule measurements, as c4_v1 but `has_javascript` finds "javascript" anywhere in the text.

    Line spans are offsets into the lower-cased text, as the reference writes them: they drift from the
    real offsets after characters whose lower case is longer (such as "İ").
    """

    __doc__ = (__doc__ or "") + _SPAN_DOC
    flags = _FLAGS_V2
    # The reference's v2 measures line offsets on the lower-cased text; kept so spans match its files.
    lowercase_offsets = True
