"""Model-based classifiers: fastText quality and toxicity models.

Each tagger reads `model_path` from its tagger config, else an environment variable. The Jigsaw toxicity taggers
then fall back to the public URL the reference toolkit uses; the other taggers download nothing by default and
fail with a message saying how to supply a model. `s3://` and `http(s)://` models are fetched once into the local
cache (dolma.models.resolve_model: a lock so parallel workers do not race, the transfer checked, and
`model_sha256` / `model_size` checked when given). `dolma train-fasttext` trains models these taggers load.
"""

from __future__ import annotations

import os
import re
from functools import cached_property
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from msgspec import Meta

from dolma import Document, Span, Tagger, TaggerConfig, TaggerError, paragraphs, register
from dolma.models import cache_dir, check_fasttext_model, resolve_model
from taggers.language import load_fasttext

LABEL_PREFIX = "__label__"
MODEL_MIRROR_ENV = "DOLMA_MODEL_MIRROR"
# Where the reference toolkit downloads its Jigsaw toxicity models from (public URLs, read from its tagger classes).
JIGSAW_MODELS = "https://dolma-artifacts.org/fasttext_models/jigsaw_fasttext_bigrams_20230515/"
# A sentence ends at ".", "!" or "?" followed by whitespace and a character that is not a lower-case letter.
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[^\sa-z])")


class ClassifierConfig(TaggerConfig, kw_only=True):
    model_path: Annotated[
        str | None,
        Meta(description="fastText model (.bin/.ftz): local path, s3:// or http(s):// URL (fetched once, cached)."),
    ] = None
    model_sha256: Annotated[
        Annotated[str, Meta(pattern="^[0-9a-fA-F]{64}$")] | None,
        Meta(
            description="Expected SHA-256 (64 hex digits) of a model fetched from a URL: a download that differs is "
            "refused, a cached copy that differs is fetched again."
        ),
    ] = None
    model_size: Annotated[
        Annotated[int, Meta(ge=1)] | None,
        Meta(description="Expected size in bytes of a model fetched from a URL (checked like model_sha256)."),
    ] = None


class FastTextClassifierConfig(ClassifierConfig, kw_only=True):
    level: Annotated[
        Literal["document", "paragraph", "sentence"],
        Meta(description="Unit that gets scores: the whole document, each paragraph, or each sentence."),
    ] = "document"
    top_k: Annotated[int, Meta(description="Labels reported per unit, most likely first; -1 for all.")] = -1
    strip_label_prefix: Annotated[
        bool, Meta(description="Report `hq` rather than `__label__hq` as the span type.")
    ] = True


def sentences(text: str) -> list[tuple[int, int, str]]:
    """(start, end, sentence) with surrounding whitespace excluded; empty pieces skipped."""
    out = []
    start = 0
    for m in [*_SENTENCE_BREAK.finditer(text), None]:
        end = len(text) if m is None else m.start()
        piece = text[start:end]
        stripped = piece.strip()
        if stripped:
            lead = len(piece) - len(piece.lstrip())
            out.append((start + lead, start + lead + len(stripped), stripped))
        if m is not None:
            start = m.end()
    return out


class FastTextClassifier(Tagger):
    """Base of fastText classifiers: newlines become spaces, labels and probabilities become spans."""

    Config: ClassVar[type[TaggerConfig]] = ClassifierConfig
    _transient = ("model",)
    model_env: ClassVar[str] = "DOLMA_FASTTEXT_MODEL"
    level: ClassVar[str] = "document"
    top_k: ClassVar[int] = -1
    strip_label_prefix: ClassVar[bool] = True

    def settings(self) -> tuple[str, int, bool]:
        return self.level, self.top_k, self.strip_label_prefix

    default_model: ClassVar[str | None] = None
    """Public URL of the tagger's model, fetched when neither model_path nor the variable is set (None: no default)."""

    def default_model_url(self) -> str | None:
        """`default_model`, its scheme and host replaced by $DOLMA_MODEL_MIRROR when that is set."""
        if self.default_model is None:
            return None
        mirror = os.environ.get(MODEL_MIRROR_ENV)
        if not mirror:
            return self.default_model
        return mirror.rstrip("/") + urlsplit(self.default_model).path

    def model_location(self) -> str:
        path = self.config.model_path or os.environ.get(self.model_env) or self.default_model_url()
        if not path:
            raise TaggerError(
                f"tagger '{self.name}' needs a fastText model: set tagger_config.{self.name}.model_path "
                f"(a local path, s3:// or https:// URL) or the environment variable {self.model_env}. "
                "Nothing is downloaded by default; `dolma train-fasttext` trains such a model."
            )
        return path

    def model_file(self) -> str:
        """The model as a local file, fetched into the cache if it is a URL.

        When the tagger's default URL cannot be fetched (no network), the error names all three ways to supply
        the model: the config field, the environment variable and the URL.
        """
        location = self.model_location()
        what = f"model of tagger '{self.name}'"
        try:
            return resolve_model(location, what, self.config.model_sha256, self.config.model_size)
        except TaggerError as exc:
            if self.config.model_path or os.environ.get(self.model_env):
                raise
            raise TaggerError(
                f"tagger '{self.name}' has no model: {exc}. Supply it one of three ways: "
                f"(1) tagger_config.{self.name}.model_path: a local path, s3:// or https:// URL of the model file; "
                f"(2) the environment variable {self.model_env}: the same; "
                f"(3) the public URL {self.default_model}, downloaded once into "
                f"{cache_dir()} when this machine can reach it (${MODEL_MIRROR_ENV} replaces its host with a mirror)."
            ) from None

    @cached_property
    def model(self) -> Any:
        return load_fasttext(self.model_file())

    def check(self) -> None:
        check_fasttext_model(self.model_file(), f"model of tagger '{self.name}'")

    def classify(self, text: str, k: int, strip: bool) -> list[tuple[str, float]]:
        labels, probs = self.model.predict(text.replace("\n", " "), k=k)
        return [
            (lab[len(LABEL_PREFIX) :] if strip and lab.startswith(LABEL_PREFIX) else lab, float(p))
            for lab, p in zip(labels, probs)
        ]

    def predict(self, doc: Document) -> list[Span]:
        level, k, strip = self.settings()
        text = doc.text
        if level == "document":
            units = [(0, len(text), text)]
        elif level == "paragraph":
            units = paragraphs(text)
        else:
            units = sentences(text)
        return [Span(s, e, label, p) for s, e, unit in units for label, p in self.classify(unit, k, strip)]


@register("fasttext_classifier_v1")
class GenericFastTextTagger(FastTextClassifier):
    """Any fastText classifier given by path, per document, paragraph or sentence.

    Span types: one per label of the model (prefix `__label__` removed unless strip_label_prefix is false),
    score = its probability, over the unit chosen by `level`; `top_k` labels per unit, most likely first.
    The model comes from `model_path` or $DOLMA_FASTTEXT_MODEL.
    """

    Config = FastTextClassifierConfig

    def settings(self) -> tuple[str, int, bool]:
        return self.config.level, self.config.top_k, self.config.strip_label_prefix


@register("dclm-oh-eli5")
class DclmQualityTagger(FastTextClassifier):
    """DCLM quality classifier (OpenHermes + ELI5 vs RefinedWeb), most likely label only.

    Span types: the single most likely label without `__label__`, score = its probability, over the whole
    document; the label `hq` is reported as `score` (as the reference does), so with the DCLM model a
    document gets either `score` (= P(hq)) or `cc` (= P(cc)). Model: `model_path` or $DOLMA_DCLM_MODEL (the
    reference's file is openhermes_reddit_eli5_vs_rw_v2_bigram_200k_train.bin from mlfoundations/fasttext-oh-eli5).
    """

    model_env = "DOLMA_DCLM_MODEL"
    top_k = 1

    def classify(self, text: str, k: int, strip: bool) -> list[tuple[str, float]]:
        return [("score" if label == "hq" else label, p) for label, p in super().classify(text, k, strip)]


@register("dolma17-quality")
class Dolma17QualityTagger(FastTextClassifier):
    """Dolma 1.7 quality classifier: probability of every label for the whole document.

    Span types: every label of the model without `__label__`, score = its probability, most likely first,
    over the whole document. Model: `model_path` or $DOLMA_DOLMA17_QUALITY_MODEL. (The reference crashes on
    an empty document; here it gets the model's scores for empty text.)
    """

    model_env = "DOLMA_DOLMA17_QUALITY_MODEL"


@register("jigsaw_hatespeech_document_v2")
class JigsawHatespeechDocumentTagger(FastTextClassifier):
    """Hate speech / toxic comments (Jigsaw fastText model): P(toxic) and P(non-toxic) of the whole document.

    Span types: `__label__toxic` and `__label__non-toxic` (in this order, `__label__` prefix kept, as the
    reference does), score = probability, over the whole document. It measures insulting, hateful or abusive
    comment language as labelled in the Jigsaw data, not obscenity as such (see jigsaw_nsfw_document_v1) and
    not profanity in general (see toxicity_offensive_v1, which needs no download).

    Model: `model_path`, else $DOLMA_JIGSAW_HATESPEECH_MODEL, else the reference toolkit's model, fetched once
    into the cache from `default_model` (a large file; $DOLMA_MODEL_MIRROR points at a mirror); offline without a
    model, the run stops at start-up with one error naming these three ways. The model is a fastText bigram
    classifier AI2 trained for Dolma on the Jigsaw Toxic Comment Classification data (Wikipedia talk comments).
    """

    model_env = "DOLMA_JIGSAW_HATESPEECH_MODEL"
    default_model = JIGSAW_MODELS + "jigsaw_fasttext_bigrams_hatespeech_final.bin"
    top_k = 2
    strip_label_prefix = False

    def classify(self, text: str, k: int, strip: bool) -> list[tuple[str, float]]:
        """The flagged label (`toxic`, `nsfw`) first and its `non-` counterpart second, as the reference orders them
        (not most likely first), so attribute keys come out in the reference's order."""
        out = super().classify(text.strip(), k, strip)
        if len(out) == 2 and "non" in out[0][0]:
            out.reverse()
        return out


@register("jigsaw_hatespeech_sentence_v2")
class JigsawHatespeechSentenceTagger(JigsawHatespeechDocumentTagger):
    """Hate speech / toxic comments (Jigsaw fastText model): P(toxic) and P(non-toxic) of each sentence.

    Span types: as jigsaw_hatespeech_document_v2, one pair per sentence. Sentences end at . ! or ? followed
    by whitespace and a character that is not a lower-case letter (the reference uses a trained sentence
    splitter, so sentence boundaries can differ). Same model as jigsaw_hatespeech_document_v2.
    """

    level = "sentence"


@register("jigsaw_nsfw_document_v1")
class JigsawNsfwDocumentTagger(JigsawHatespeechDocumentTagger):
    """NSFW / obscene language (Jigsaw fastText model): P(nsfw) and P(non-nsfw) of the whole document.

    Span types: `__label__nsfw` and `__label__non-nsfw` (in this order, `__label__` prefix kept), score =
    probability, over the whole document. It measures obscene, vulgar or sexual language as labelled in the
    Jigsaw data, not hate speech (see jigsaw_hatespeech_document_v2).

    Model: `model_path`, else $DOLMA_JIGSAW_NSFW_MODEL, else the reference toolkit's model, fetched once into the
    cache from `default_model`, as for jigsaw_hatespeech_document_v2.
    """

    model_env = "DOLMA_JIGSAW_NSFW_MODEL"
    default_model = JIGSAW_MODELS + "jigsaw_fasttext_bigrams_nsfw_final.bin"


@register("jigsaw_nsfw_sentence_v2")
class JigsawNsfwSentenceTagger(JigsawNsfwDocumentTagger):
    """NSFW / obscene language (Jigsaw fastText model): P(nsfw) and P(non-nsfw) of each sentence.

    Span types: as jigsaw_nsfw_document_v1, one pair per sentence (sentence rule as in
    jigsaw_hatespeech_sentence_v2). Same model as jigsaw_nsfw_document_v1. Also registered under the
    reference's misspelling `jigsaw_nsfw_sencence_v2`.
    """

    level = "sentence"


@register("jigsaw_nsfw_sencence_v2")
class JigsawNsfwSencenceTagger(JigsawNsfwSentenceTagger):
    """NSFW / obscene language per sentence: jigsaw_nsfw_sentence_v2 under the reference toolkit's spelling.

    Span types: as jigsaw_nsfw_sentence_v2.
    """
