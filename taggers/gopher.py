"""Gopher quality rules (Rae et al. 2021): document statistics that mixer rules threshold.

The values equal those of the reference toolkit's `gopher_v1` / `gopher_v2` (within 1e-4), quirks included,
so existing mixer thresholds keep their meaning. All statistics come from one Rust scan per document
(`dolma._rust.gopher_stats_batch`), run on a whole batch without the GIL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from dolma import Document, Span, Tagger, _rust, register
from taggers._text import rust_texts

# Order of the values returned by `_rust.gopher_stats_batch` (and of the spans written).
GOPHER_STAT_NAMES: tuple[str, ...] = (
    "fraction_of_characters_in_most_common_2grams",
    "fraction_of_characters_in_most_common_3grams",
    "fraction_of_characters_in_most_common_4grams",
    "fraction_of_characters_in_duplicate_5grams",
    "fraction_of_characters_in_duplicate_6grams",
    "fraction_of_characters_in_duplicate_7grams",
    "fraction_of_characters_in_duplicate_8grams",
    "fraction_of_characters_in_duplicate_9grams",
    "fraction_of_characters_in_duplicate_10grams",
    "character_count",
    "word_count",
    "median_word_length",
    "symbol_to_word_ratio",
    "fraction_of_words_with_alpha_character",
    "required_word_count",
    "fraction_of_lines_starting_with_bullet_point",
    "fraction_of_lines_ending_with_ellipsis",
    "fraction_of_duplicate_lines",
    "fraction_of_characters_in_duplicate_lines",
)

_SPAN_DOC = """
    Every span covers the whole document. Words are `str.split()` pieces (Python whitespace), lengths count
    code points, "characters of words" is the sum of word lengths. Span types:

    - `fraction_of_characters_in_most_common_{2,3,4}grams`: (count of the most frequent word n-gram) x (its
      characters) / characters of all words; the first n-gram seen wins ties; can exceed 1 (overlapping
      repeats are all counted). Absent when the document has fewer than n words.
    - `fraction_of_characters_in_duplicate_{5..10}grams`: characters of every n-gram occurrence whose n-gram
      occurs more than once / characters of all n-gram occurrences. Absent below n words.
    - `character_count`: code points of the text. `word_count`: number of words.
    - `median_word_length`: median word length (mean of the two middle ones for an even count; 0 if none).
    - `symbol_to_word_ratio`: words containing `#` or `…`, per word.
    - `fraction_of_words_with_alpha_character`: words with at least one letter, per word.
    - `required_word_count`: words equal to one of the, be, to, of, and, that, have, with (case-sensitive).
    - `fraction_of_lines_starting_with_bullet_point`: lines starting with `*` or `-`, per line.
    - `fraction_of_lines_ending_with_ellipsis`: lines ending with `…`, per line.
    - `fraction_of_duplicate_lines`: lines whose exact text occurs more than once, per line.
    - `fraction_of_characters_in_duplicate_lines`: code points of those lines / max(1, characters of words)
      (can exceed 1: the reference divides by word characters, not line characters).
"""


class _GopherTagger(Tagger):
    lines_v2: ClassVar[bool] = False

    def predict(self, doc: Document) -> list[Span]:
        return self.predict_batch([doc])[0]

    def predict_batch(self, docs: Sequence[Document]) -> list[list[Span]]:
        rows = _rust.gopher_stats_batch(rust_texts(docs), v2=self.lines_v2)
        out = []
        for doc, row in zip(docs, rows):
            n = len(doc.text)
            out.append([Span(0, n, name, value) for name, value in zip(GOPHER_STAT_NAMES, row) if value is not None])
        return out


@register("gopher_v1")
class GopherV1Tagger(_GopherTagger):
    """Gopher quality statistics per document (lines split at every newline).

    Lines are `text.split("\\n")`, so blank lines count (and repeat).
    """

    __doc__ = (__doc__ or "") + _SPAN_DOC


@register("gopher_v2")
class GopherV2Tagger(_GopherTagger):
    """Gopher quality statistics per document (runs of newlines end a line).

    As `gopher_v1`, but lines are `re.split("\\n+", text)`: blank lines inside the text vanish (an empty
    first or last line remains).
    """

    __doc__ = (__doc__ or "") + _SPAN_DOC
    lines_v2 = True
