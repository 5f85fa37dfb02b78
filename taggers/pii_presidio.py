"""`pii_presidio_v1`: e-mail addresses, phone numbers and IP addresses found by Microsoft Presidio's analyzer.

Presidio runs on a spaCy pipeline, which is not shipped (the reference uses Presidio's default, spaCy's
`en_core_web_lg`, several hundred MB): it comes from `spacy_model` or $DOLMA_PRESIDIO_SPACY_MODEL, a directory
holding a saved pipeline or the name of an installed spaCy model package. Without one the run stops at start-up
with one message naming both and where the official model is published. Presidio itself is the `presidio` extra.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from dolma import Document, Span, Tagger, TaggerConfig, TaggerError, register

ENTITIES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "IP_ADDRESS")  # the reference's span types for this tagger
SPACY_MODEL_ENV = "DOLMA_PRESIDIO_SPACY_MODEL"
OFFICIAL_MODEL = "https://github.com/explosion/spacy-models/releases (en_core_web_lg)"


class PresidioConfig(TaggerConfig, kw_only=True):
    """Where the spaCy pipeline comes from, and the language Presidio analyses."""

    spacy_model: str | None = None  # a saved pipeline's directory or an installed package name; else the env var
    language: str = "en"


@register("pii_presidio_v1")
class PiiPresidioV1Tagger(Tagger):
    """E-mail addresses, phone numbers and IP addresses found by Presidio's analyzer on a spaCy pipeline.

    Span types: `EMAIL_ADDRESS`, `PHONE_NUMBER`, `IP_ADDRESS` = each entity Presidio reports (its offsets; score =
    Presidio's confidence); `doc` = entities per whitespace-separated word, -1 for a text without words (the
    counting of pii_regex_v1). The spaCy pipeline: `spacy_model`, else $DOLMA_PRESIDIO_SPACY_MODEL.
    """

    Config = PresidioConfig
    _transient: ClassVar[tuple[str, ...]] = ("analyzer",)

    def model_name(self) -> str:
        """The configured spaCy pipeline (a directory or an installed package), checked to exist."""
        config: PresidioConfig = self.config  # type: ignore[assignment]
        model = config.spacy_model or os.environ.get(SPACY_MODEL_ENV)
        field = f"tagger_config.{self.name}.spacy_model"
        if not model:
            raise TaggerError(
                f"tagger '{self.name}' has no spaCy model: set {field} or the environment variable "
                f"{SPACY_MODEL_ENV} to a saved spaCy pipeline's directory or an installed model package's name. "
                f"The reference uses Presidio's default, spaCy's English model published at {OFFICIAL_MODEL}; "
                "`python -m spacy download en_core_web_lg` installs it."
            )
        if not Path(model).is_dir() and importlib.util.find_spec(model.replace("-", "_")) is None:
            raise TaggerError(
                f"tagger '{self.name}': spaCy model {model!r} (from {field} or {SPACY_MODEL_ENV}) is neither a "
                f"directory nor an installed package; the official models are published at {OFFICIAL_MODEL}."
            )
        return model

    def check(self) -> None:
        if importlib.util.find_spec("presidio_analyzer") is None:
            raise TaggerError(
                f"tagger '{self.name}' needs Presidio: pip install 'dolma-toolkit[presidio]' (presidio-analyzer)"
            )
        self.model_name()

    @cached_property
    def analyzer(self) -> Any:
        import tldextract.tldextract
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import SpacyNlpEngine

        # Presidio's e-mail check asks tldextract's module-wide extractor, which downloads the public suffix list on
        # first use: this one reads the snapshot tldextract ships, so a run never contacts the network and gives
        # the same answer on every machine.
        tldextract.tldextract.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
        # Presidio warns at every start about its recognizers for other languages: noise in a tagging run's log.
        logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
        config: PresidioConfig = self.config  # type: ignore[assignment]
        engine = SpacyNlpEngine(models=[{"lang_code": config.language, "model_name": self.model_name()}])
        engine.load()
        return AnalyzerEngine(nlp_engine=engine, supported_languages=[config.language])

    def predict(self, doc: Document) -> list[Span]:
        text = doc.text
        config: PresidioConfig = self.config  # type: ignore[assignment]
        found = self.analyzer.analyze(text=text, language=config.language, entities=list(ENTITIES)) if text else []
        spans = [Span(r.start, r.end, r.entity_type, float(r.score)) for r in sorted(found, key=lambda r: r.start)]
        words = len(text.split())
        spans.append(Span(0, len(text), "doc", len(spans) / words if words else -1.0))
        return spans
