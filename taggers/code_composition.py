"""How much of a document is code, comments and prose, line by line, with the reference's fastText line model.

The reference toolkit's `code_composition` tagger classifies every line with a fastText model published on the
Hugging Face Hub (techarb/code-prose-composition, file code-comment-prose-model.bin). That model is not shipped:
it comes from `model_path`, $DOLMA_CODE_COMPOSITION_MODEL, or is fetched once from its public URL when the machine
can reach it; without any of these the run stops at start-up with one message naming the three ways. The rules
around the model were found by black-box testing of the reference with models trained for the purpose
(tests/taggers/test_code_composition.py).
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import ClassVar

from dolma import Document, Span, register
from taggers.classifiers import LABEL_PREFIX, FastTextClassifier

CODE_PROSE_MODEL = "https://huggingface.co/techarb/code-prose-composition/resolve/main/code-comment-prose-model.bin"
MIN_LINE = 4  # a stripped line shorter than this (in code points) is `other`, without asking the model
SHORT_LABEL = "other"
BOUNDARY = frozenset({"code", "prose"})


@register("code_composition")
class CodeCompositionTagger(FastTextClassifier):
    """Share of lines that are code, comment or prose (the labels of the model), and code/prose boundaries.

    Each non-blank line (str.splitlines, stripped) gets a label: `other` when it has fewer than 4 characters,
    else the model's most likely label without `__label__`, with the entropy (bits) of the model's whole
    distribution. Span types, all over the whole document: `boundaries` = number of consecutive non-blank lines
    whose labels are `code` then `prose` or `prose` then `code`; then per label found, in order of first
    appearance: `<label>_pct` = its lines / non-blank lines, rounded to 2 decimals; `<label>` = its lines;
    `<label>_entropy` = mean entropy of its lines (0 for `other`). A blank document gets `boundaries` only.
    Model: `model_path`, else $DOLMA_CODE_COMPOSITION_MODEL, else the reference's model fetched once from
    CODE_PROSE_MODEL (Hugging Face; $DOLMA_MODEL_MIRROR replaces its host).
    """

    model_env: ClassVar[str] = "DOLMA_CODE_COMPOSITION_MODEL"
    default_model: ClassVar[str | None] = CODE_PROSE_MODEL

    def line_label(self, line: str) -> tuple[str, float]:
        """(label, entropy in bits) of one stripped, non-blank line."""
        if len(line) < MIN_LINE:
            return SHORT_LABEL, 0.0
        labels, probs = self.model.predict(line, k=-1)
        entropy = -sum(float(p) * math.log2(float(p)) for p in probs if p > 0)
        top = labels[0]
        return (top[len(LABEL_PREFIX) :] if top.startswith(LABEL_PREFIX) else top), entropy

    def predict(self, doc: Document) -> list[Span]:
        n = len(doc.text)
        found = [self.line_label(s) for line in doc.text.splitlines() if (s := line.strip())]
        boundaries = sum(1 for (a, _), (b, _) in pairwise(found) if a != b and {a, b} == BOUNDARY)
        spans = [Span(0, n, "boundaries", float(boundaries))]
        entropies: dict[str, list[float]] = {}
        for label, entropy in found:
            entropies.setdefault(label, []).append(entropy)
        for label, values in entropies.items():
            spans += [
                Span(0, n, f"{label}_pct", round(len(values) / len(found), 2)),
                Span(0, n, label, float(len(values))),
                Span(0, n, f"{label}_entropy", sum(values) / len(values)),
            ]
        return spans
