"""Model-based classifiers: fastText quality and toxicity models, loaded from a path the user supplies.

No model is downloaded implicitly: each tagger reads `model_path` from its tagger config or from an
environment variable, and fails with a message saying how to supply it. `s3://` and `http(s)://` paths are
fetched once into the local cache (dolma.models.resolve_model, with a lock so parallel workers do not race).
`dolma train-fasttext` trains models these taggers load.
"""

from __future__ import annotations

import os
import re
from functools import cached_property
from typing import Annotated, Any, ClassVar, Literal

from msgspec import Meta

from dolma import Document, Span, Tagger, TaggerConfig, TaggerError, paragraphs, register
from dolma.models import check_fasttext_model, resolve_model
from taggers.language import load_fasttext

LABEL_PREFIX = "__label__"
# A sentence ends at ".", "!" or "?" followed by whitespace and a character that is not a lower-case letter.
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[^\sa-z])")


class ClassifierConfig(TaggerConfig, kw_only=True):
    model_path: Annotated[
        str | None,
        Meta(description="fastText model (.bin/.ftz): local path, s3:// or http(s):// URL (fetched once, cached)."),
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

    def model_location(self) -> str:
        path = self.config.model_path or os.environ.get(self.model_env)
        if not path:
            raise TaggerError(
                f"tagger '{self.name}' needs a fastText model: set tagger_config.{self.name}.model_path "
                f"(a local path, s3:// or https:// URL) or the environment variable {self.model_env}. "
                "Nothing is downloaded by default; `dolma train-fasttext` trains such a model."
            )
        return path

    @cached_property
    def model(self) -> Any:
        return load_fasttext(resolve_model(self.model_location(), f"model of tagger '{self.name}'"))

    def check(self) -> None:
        check_fasttext_model(self.model_location(), f"model of tagger '{self.name}'")

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
    """Jigsaw hate-speech classifier, whole document, two most likely labels.

    Span types: the two most likely labels with their `__label__` prefix kept (e.g. `__label__toxic`,
    `__label__non-toxic`), score = probability, over the whole document. Model: `model_path` or
    $DOLMA_JIGSAW_HATESPEECH_MODEL.
    """

    model_env = "DOLMA_JIGSAW_HATESPEECH_MODEL"
    top_k = 2
    strip_label_prefix = False


@register("jigsaw_hatespeech_sentence_v2")
class JigsawHatespeechSentenceTagger(JigsawHatespeechDocumentTagger):
    """Jigsaw hate-speech classifier per sentence, two most likely labels.

    Span types: as jigsaw_hatespeech_document_v2, one pair per sentence. Sentences end at . ! or ? followed
    by whitespace and a character that is not a lower-case letter (the reference uses a trained sentence
    splitter, so sentence boundaries can differ).
    """

    level = "sentence"


@register("jigsaw_nsfw_document_v1")
class JigsawNsfwDocumentTagger(JigsawHatespeechDocumentTagger):
    """Jigsaw NSFW (obscene) classifier, whole document, two most likely labels.

    Span types: the two most likely labels, `__label__` prefix kept, score = probability, over the whole
    document. Model: `model_path` or $DOLMA_JIGSAW_NSFW_MODEL.
    """

    model_env = "DOLMA_JIGSAW_NSFW_MODEL"


@register("jigsaw_nsfw_sentence_v2")
class JigsawNsfwSentenceTagger(JigsawNsfwDocumentTagger):
    """Jigsaw NSFW classifier per sentence, two most likely labels.

    Span types: as jigsaw_nsfw_document_v1, one pair per sentence (sentence rule as in
    jigsaw_hatespeech_sentence_v2). Also registered under the reference's misspelling
    `jigsaw_nsfw_sencence_v2`.
    """

    level = "sentence"


@register("jigsaw_nsfw_sencence_v2")
class JigsawNsfwSencenceTagger(JigsawNsfwSentenceTagger):
    """Alias of jigsaw_nsfw_sentence_v2 under the reference toolkit's spelling.

    Span types: as jigsaw_nsfw_sentence_v2.
    """
