"""Offensive-language scores that work offline: the linear model of `alt-profanity-check`, evaluated with numpy.

The model ships in taggers/resources/offensive_v1.bin (MIT licence, see NOTICE.md there), converted once from the
PyPI package alt-profanity-check 1.9.1 by taggers/resources/convert_profanity_check.py, which also documents the
file format. Scores equal the package's `predict_prob` (within 1e-6, tested): the text is lower-cased, split into
tokens of two or more word characters (`(?u)\\b\\w\\w+\\b`, Python's `re`), weighted tf-idf over the model's
vocabulary, l2-normalised, and each calibrated member gives `1 / (1 + exp(a * (w . x + c) + b))`; the score is
their mean. A batch is scored at once: tokens of all units go through one vocabulary look-up (`map` of
`dict.get`, no Python loop per token) and the dot products are numpy reductions over the whole batch.

What it measures: offensive or profane language (insults, slurs, obscenities), as labelled in the package's
training data (tweets labelled offensive / hate speech by Davidson et al. 2017, and the Jigsaw toxic Wikipedia
comments). It is not a hate-speech detector (it scores the words, not their target) nor an NSFW / adult-content
detector, and it knows English only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import zlib
from collections.abc import Sequence
from functools import cached_property
from itertools import chain, repeat
from pathlib import Path
from typing import Annotated, ClassVar

import numpy as np
from msgspec import Meta

from dolma import Document, Span, Tagger, TaggerConfig, TaggerError, paragraphs, register
from dolma.models import resolve_model
from taggers.classifiers import sentences

SHIPPED_OFFENSIVE_MODEL = str(Path(__file__).parent / "resources" / "offensive_v1.bin")
OFFENSIVE_MODEL_ENV = "DOLMA_OFFENSIVE_MODEL"
MAGIC = b"DOLMAOFF"
VERSION = 1
TOKEN_PATTERN = r"(?u)\b\w\w+\b"
_HEADER = struct.Struct("<8sIIII")
_DIGEST_LEN = 32


class OffensiveModel:
    """A tf-idf + calibrated linear model read from our file format (see convert_profanity_check.py)."""

    def __init__(self, path: str):
        self.path = path
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise TaggerError(f"offensive-language model {path}: cannot be read ({exc.strerror or exc})") from None
        self._parse(data)

    def _fail(self, reason: str) -> TaggerError:
        return TaggerError(f"offensive-language model {self.path}: {reason}")

    def _parse(self, data: bytes) -> None:
        if len(data) < _HEADER.size + _DIGEST_LEN:
            raise self._fail("too short to be a model file")
        magic, version, n_terms, n_members, body_len = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise self._fail("not an offensive-language model file (wrong magic)")
        if version != VERSION:
            raise self._fail(f"format version {version}, this toolkit reads version {VERSION}")
        digest = data[_HEADER.size : _HEADER.size + _DIGEST_LEN]
        packed = data[_HEADER.size + _DIGEST_LEN :]
        if len(packed) != body_len or n_terms == 0 or n_members == 0:
            raise self._fail("truncated or damaged (header and length disagree)")
        try:
            body = zlib.decompress(packed)
        except zlib.error:
            raise self._fail("damaged (the body does not decompress)") from None
        if hashlib.sha256(body).digest() != digest:
            raise self._fail("damaged (SHA-256 of the body differs)")
        pos = 4
        (meta_len,) = struct.unpack_from("<I", body)
        floats = 3 * n_members + n_terms + n_members * n_terms
        if len(body) < pos + meta_len + 8 * floats:
            raise self._fail("damaged (body shorter than its counts)")
        try:
            meta = json.loads(body[pos : pos + meta_len])
        except ValueError:
            raise self._fail("damaged (metadata is not JSON)") from None
        if meta.get("token_pattern") != TOKEN_PATTERN or meta.get("lowercase") is not True or meta.get("norm") != "l2":
            raise self._fail(f"tokenizer settings {meta} are not the ones this evaluator implements")
        pos += meta_len
        arrays = np.frombuffer(body, dtype="<f8", count=floats, offset=pos)
        k = n_members
        self.intercept = arrays[0:k].copy()
        self.sigmoid_a = arrays[k : 2 * k].copy()
        self.sigmoid_b = arrays[2 * k : 3 * k].copy()
        self.idf = arrays[3 * k : 3 * k + n_terms].copy()
        weights = arrays[3 * k + n_terms :].reshape(k, n_terms)
        # Term-major (V, K): one row gather per token instead of K.
        self.weights = np.ascontiguousarray(weights.T)
        terms = body[pos + 8 * floats :].decode("utf-8").split("\n")
        if len(terms) != n_terms:
            raise self._fail(f"{len(terms)} terms, the header says {n_terms}")
        self.vocabulary = {t: i for i, t in enumerate(terms)}
        if len(self.vocabulary) != n_terms:
            raise self._fail("a term is listed twice")
        self.meta = meta
        self.token_re = re.compile(TOKEN_PATTERN)

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """P(offensive) of each text (float64), computed for the whole batch at once."""
        n = len(texts)
        if n == 0:
            return np.zeros(0)
        token_lists = list(map(self.token_re.findall, map(str.lower, texts)))
        lengths = np.fromiter(map(len, token_lists), dtype=np.int64, count=n)
        total = int(lengths.sum())
        ids = np.fromiter(
            map(self.vocabulary.get, chain.from_iterable(token_lists), repeat(-1)), dtype=np.int64, count=total
        )
        unit = np.repeat(np.arange(n, dtype=np.int64), lengths)
        known = ids >= 0
        n_terms = len(self.idf)
        # Counts per (unit, term): the tf of the vectorizer.
        pairs, counts = np.unique(unit[known] * n_terms + ids[known], return_counts=True)
        rows, cols = np.divmod(pairs, n_terms)
        values = counts * self.idf[cols]
        norms = np.sqrt(np.bincount(rows, weights=values * values, minlength=n))
        values = values / norms[rows]
        members = self.weights.shape[1]
        contrib = self.weights[cols] * values[:, None]
        decision = np.empty((n, members))
        for m in range(members):
            decision[:, m] = np.bincount(rows, weights=contrib[:, m], minlength=n)
        decision += self.intercept
        return np.mean(1.0 / (1.0 + np.exp(self.sigmoid_a * decision + self.sigmoid_b)), axis=1)


class OffensiveConfig(TaggerConfig, kw_only=True):
    model_path: Annotated[
        str | None,
        Meta(
            description="Model file in this toolkit's format (taggers/resources/convert_profanity_check.py writes "
            "one), local path or s3:// / https:// URL. Default: $DOLMA_OFFENSIVE_MODEL, else offensive_v1.bin "
            "shipped with the package."
        ),
    ] = None


class OffensiveTagger(Tagger):
    """Base of the offensive-language taggers: P(offensive) per unit (document, paragraph or sentence)."""

    Config = OffensiveConfig
    _transient = ("model",)
    level: ClassVar[str] = "document"

    @cached_property
    def model(self) -> OffensiveModel:
        path = self.config.model_path or os.environ.get(OFFENSIVE_MODEL_ENV) or SHIPPED_OFFENSIVE_MODEL
        return OffensiveModel(resolve_model(path, f"model of tagger '{self.name}'"))

    def check(self) -> None:
        self.model  # noqa: B018 - loads and validates the model (small); errors surface at start-up

    def units(self, text: str) -> list[tuple[int, int, str]]:
        if self.level == "document":
            return [(0, len(text), text)]
        if self.level == "paragraph":
            return paragraphs(text)
        return sentences(text)

    def predict_batch(self, docs: Sequence[Document]) -> list[list[Span]]:
        per_doc = [self.units(doc.text) for doc in docs]
        scores = self.model.scores([u[2] for units in per_doc for u in units]).tolist()
        out: list[list[Span]] = []
        i = 0
        for units in per_doc:
            out.append([Span(s, e, "offensive", p) for (s, e, _), p in zip(units, scores[i : i + len(units)])])
            i += len(units)
        return out

    def predict(self, doc: Document) -> list[Span]:
        return self.predict_batch([doc])[0]


@register("toxicity_offensive_v1")
class OffensiveDocumentTagger(OffensiveTagger):
    """Offensive / profane language (offline linear model from alt-profanity-check): P(offensive) of the document.

    Span types: `offensive` = probability that the text is offensive (insults, slurs, obscenities), over the whole
    document (an empty document gets the model's score for empty text, about 0.036). Not hate speech as such
    (see jigsaw_hatespeech_document_v2) nor adult content (jigsaw_nsfw_document_v1); English only. Long
    documents dilute a few offensive words (tf-idf, l2-normalised): use toxicity_offensive_paragraph_v1 to find
    them. Model shipped with the toolkit (no download); `model_path` or $DOLMA_OFFENSIVE_MODEL replace it.
    """


@register("toxicity_offensive_paragraph_v1")
class OffensiveParagraphTagger(OffensiveTagger):
    """Offensive / profane language (offline linear model from alt-profanity-check): P(offensive) of each paragraph.

    Span types: `offensive` = probability as in toxicity_offensive_v1, one span per non-blank paragraph (split at
    newlines, the newline included).
    """

    level = "paragraph"


@register("toxicity_offensive_sentence_v1")
class OffensiveSentenceTagger(OffensiveTagger):
    """Offensive / profane language (offline linear model from alt-profanity-check): P(offensive) of each sentence.

    Span types: `offensive` = probability as in toxicity_offensive_v1, one span per sentence (the sentence rule
    of jigsaw_hatespeech_sentence_v2: a sentence ends at . ! or ? followed by whitespace and a character that is
    not a lower-case letter).
    """

    level = "sentence"
