"""Length taggers: characters, bytes and word-like tokens, per document and per paragraph."""

from __future__ import annotations

import regex

from dolma import Document, Span, Tagger, paragraphs, register

# A token is a run of word characters or a run of other non-space characters ("world" and "." in "world.").
# Word characters follow Unicode UTS #18 (the `regex` package): "a²" is two tokens, "e\u0301" one, as in the
# reference toolkit; the stdlib `re` disagrees on such characters.
_TOKEN = regex.compile(r"\w+|[^\w\s]+")


def count_tokens(text: str) -> int:
    """Tokens as the reference's whitespace tokenizer counts them: word runs plus punctuation runs, plus one."""
    return sum(1 for _ in _TOKEN.finditer(text)) + 1


@register("char_length_v1")
class CharLengthTagger(Tagger):
    """Document length in characters.

    Span types: `length` = number of Unicode code points in the text, over the whole document.
    """

    def predict(self, doc: Document) -> list[Span]:
        n = len(doc.text)
        return [Span(0, n, "length", float(n))]


@register("char_length_with_paragraphs_v1")
class CharLengthWithParagraphsTagger(Tagger):
    """Characters per paragraph and per document.

    Span types: `paragraph` = characters of each non-blank paragraph (its newline included);
    `document` = characters of the whole text.
    """

    def predict(self, doc: Document) -> list[Span]:
        spans = [Span(start, end, "paragraph", float(end - start)) for start, end, _ in paragraphs(doc.text)]
        spans.append(Span(0, len(doc.text), "document", float(len(doc.text))))
        return spans


@register("whitespace_tokenizer_v1")
class WhitespaceTokenizerTagger(Tagger):
    """Word-like token count of the document.

    Span types: `length` = runs of word characters plus runs of punctuation, plus one (as the reference
    toolkit counts them, so existing thresholds keep their meaning).
    """

    def predict(self, doc: Document) -> list[Span]:
        return [Span(0, len(doc.text), "length", float(count_tokens(doc.text)))]


@register("whitespace_tokenizer_with_paragraphs_v1")
class WhitespaceTokenizerWithParagraphsTagger(Tagger):
    """Word-like token counts per paragraph, and their sum for the document.

    Span types: `paragraph` = token count of each non-blank paragraph (as in whitespace_tokenizer_v1);
    `document` = the sum of the paragraph counts (0 for a blank document).
    """

    def predict(self, doc: Document) -> list[Span]:
        spans = [Span(start, end, "paragraph", float(count_tokens(p))) for start, end, p in paragraphs(doc.text)]
        total = sum(s.score for s in spans)
        spans.append(Span(0, len(doc.text), "document", float(total)))
        return spans


@register("bytes_length_v1")
class BytesLengthTagger(Tagger):
    """Document size in UTF-8 bytes.

    Span types: `bytes` = length of the UTF-8 encoding of the text, over the whole document.
    """

    def predict(self, doc: Document) -> list[Span]:
        return [Span(0, len(doc.text), "bytes", float(len(doc.text.encode("utf-8", "surrogatepass"))))]


@register("char_length_strip_ws_v1")
class CharLengthStripWsTagger(Tagger):
    """Document length in characters without the leading and trailing whitespace.

    Span types: `length_no_ws` = code points of the text with leading and trailing whitespace (str.strip)
    removed, over the whole document (inner whitespace counts).
    """

    def predict(self, doc: Document) -> list[Span]:
        return [Span(0, len(doc.text), "length_no_ws", float(len(doc.text.strip())))]


@register("doc_count_v1")
class DocCountTagger(Tagger):
    """One per document, so that summing the attribute counts documents.

    Span types: `docs` = 1, over the whole document (empty documents included).
    """

    def predict(self, doc: Document) -> list[Span]:
        return [Span(0, len(doc.text), "docs", 1.0)]
