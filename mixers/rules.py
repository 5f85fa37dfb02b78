"""Mixer rules compiled once per stream: a JSONPath subset, jq programs and plain typed rules.

Every rule form compiles into a plain Python callable `doc -> bool` (or `doc -> selected value` for span
selectors); `StreamRules` holds a stream's rules and decides documents. Nothing a user writes is ever executed
as Python: JSONPath is parsed by a small recursive descent parser (`mixers/jsonpath.py`, evaluated by
`mixers/jsonpath_eval.py`) into closures over constants, jq programs run inside libjq (`mixers/jq_rules.py`)
and only in the rule sandbox (`mixers/sandbox.py`), and typed rules are msgspec structs (`mixers/typed_rules.py`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from mixers.jq_rules import JqProgram
from mixers.jsonpath import JsonPath, Threshold
from mixers.jsonpath_eval import RuleError, Selector, _is_number
from mixers.mix_config import Rule, Stream
from mixers.typed_rules import compile_typed, typed_thresholds

# ----------------------------------------------------------------------------------------------------------
# One entry point for the mixer
# ----------------------------------------------------------------------------------------------------------


class CompiledRule:
    """A filter rule in any syntax, ready to run: `matches(doc)`, a readable `name`, the attribute keys used.

    `jq` says what `matches` takes: the document as JSON text (jq, only inside the sandbox) or as a dict.
    """

    def __init__(self, rule: str | Rule, syntax: str, where: str, compile_jq: bool = False):
        self.source = rule
        self.where = where
        self.jq = False
        self.thresholds: list[Threshold] = []
        """The attribute score thresholds the rule compares with (none are read out of jq programs)."""
        if isinstance(rule, Rule):
            self.name = rule.describe()
            self.thresholds = typed_thresholds(rule)
            self.matches, self.attribute_keys = compile_typed(rule, where)
            return
        self.name = rule
        try:
            if syntax == "jq":
                program = JqProgram(rule, compile_jq)
                self.jq = True
                self.matches = program.matches
                self.attribute_keys = program.attribute_keys
            elif syntax == "jsonpath":
                path = JsonPath(rule)
                self.matches = path.matches
                self.attribute_keys = path.attribute_keys
                self.thresholds = path.thresholds
            else:
                raise RuleError(f"unknown rule syntax '{syntax}' (jsonpath or jq)")
        except RuleError as exc:
            raise RuleError(f"{where}: {exc}") from None

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("compiled rules are not sent between processes; send the config and compile there")


class CompiledSelector:
    """A span_replacement `span` expression: `select(doc)` is the first value it selects, else None."""

    def __init__(self, expr: str, syntax: str, where: str, compile_jq: bool = False):
        self.name = expr
        self.where = where
        self.jq = syntax == "jq"
        self.attribute: str | None = None
        """The attribute key when the expression is `$.attributes.<key>` (its span list), else None."""
        try:
            if syntax == "jq":
                program = JqProgram(expr, compile_jq)
                self.select: Selector = program.first
                self.attribute_keys = program.attribute_keys
            elif syntax == "jsonpath":
                path = JsonPath(expr)
                self.select = path.first
                self.attribute_keys = path.attribute_keys
                if len(path.steps) == 2 and path.steps[0] == ("key", "attributes") and path.steps[1][0] == "key":
                    self.attribute = path.steps[1][1]
            else:
                raise RuleError(f"unknown rule syntax '{syntax}' (jsonpath or jq)")
        except RuleError as exc:
            raise RuleError(f"{where}: {exc}") from None


def compile_selector(expr: str, syntax: str, where: str) -> tuple[Selector, set[str]]:
    """`doc -> value` for a span_replacement `span` expression (JSONPath; jq selectors run in the sandbox)."""
    selector = CompiledSelector(expr, syntax, where)
    return selector.select, selector.attribute_keys


KEEP = 0
"""`StreamRules.decide` verdicts: KEEP, DROP_INCLUDE (no include rule matched), EXCLUDED + i (exclude rule i)."""
DROP_INCLUDE = 1
EXCLUDED = 2

Decision = tuple[int, "list[Any] | None"]
"""(verdict, the value each span selector picked for a kept document, or None when there are no selectors)."""


class StreamRules:
    """A stream's include and exclude rules and span selectors, compiled once per process.

    The mixer process builds it with `compile_jq=False`: JSONPath and typed rules are ready to run there, while
    jq expressions are only checked; they are compiled and run inside the rule sandbox (mixers/sandbox.py),
    which builds the same object with `compile_jq=True` and decides every document of a stream that uses jq.
    """

    def __init__(self, stream: Stream, compile_jq: bool = False):
        where = f"stream '{stream.name}'"
        flt = stream.filter
        self.include: list[CompiledRule] = []
        self.exclude: list[CompiledRule] = []
        if flt is not None:
            syntax = flt.syntax
            self.include = [
                CompiledRule(r, syntax, f"{where} filter.include[{i}]", compile_jq) for i, r in enumerate(flt.include)
            ]
            self.exclude = [
                CompiledRule(r, syntax, f"{where} filter.exclude[{i}]", compile_jq) for i, r in enumerate(flt.exclude)
            ]
        self.selectors = [
            CompiledSelector(sr.span, sr.syntax, f"{where} span_replacement[{i}].span", compile_jq)
            for i, sr in enumerate(stream.span_replacement)
        ]
        self.bounds = [(sr.min_score, sr.max_score, sr.replacement) for sr in stream.span_replacement]
        everything: list[CompiledRule | CompiledSelector] = [*self.include, *self.exclude, *self.selectors]
        self.labels = [f"{r.where} {r.name!r}" for r in everything]
        """Every rule and selector by its number in decision order (progress and error messages)."""
        self.uses_jq = any(r.jq for r in everything)
        self.needs_dict = any(not r.jq for r in everything)
        self.attribute_keys: set[str] = set().union(*(r.attribute_keys for r in everything)) if everything else set()
        # the mixer-process fast path (`decide`): plain callables, verdicts built once
        self._include = [r.matches for r in self.include]
        self._exclude = [(r.matches, (EXCLUDED + i, None)) for i, r in enumerate(self.exclude)]
        self._select = [s.select for s in self.selectors]

    def decide(self, doc: dict[str, Any]) -> Decision:
        """The verdict for one document (a dict), in the mixer process: streams without jq only.

        Includes are tried in order until one matches, then excludes until one matches (the first decides),
        then the span selectors run for a kept document. Verdicts without selections are shared tuples.
        """
        if self._include:
            for matches in self._include:
                if matches(doc):
                    break
            else:
                return _DROPPED
        for matches, verdict in self._exclude:
            if matches(doc):
                return verdict
        if not self._select:
            return _KEPT
        return KEEP, [select(doc) for select in self._select]

    def decide_in_sandbox(self, doc: Any, text: str | None, mark: Callable[[int], None]) -> Decision:
        """`decide` for any rules, jq included: `doc` is the dict (for JSONPath and typed rules) and `text`
        the JSON text (for jq); `mark(i)` is called before rule number i runs (the sandbox's progress record).
        """
        if self.include:
            for i, rule in enumerate(self.include):
                mark(i)
                if rule.matches(text if rule.jq else doc):
                    break
            else:
                return _DROPPED
        base = len(self.include)
        for i, rule in enumerate(self.exclude):
            mark(base + i)
            if rule.matches(text if rule.jq else doc):
                return EXCLUDED + i, None
        if not self.selectors:
            return _KEPT
        base += len(self.exclude)
        picked = []
        for i, selector in enumerate(self.selectors):
            mark(base + i)
            picked.append(selector.select(text if selector.jq else doc))
        return KEEP, picked


_DROPPED: Decision = (DROP_INCLUDE, None)
_KEPT: Decision = (KEEP, None)


def score_in_range(score: Any, low: float | None, high: float | None) -> bool:
    """Span replacement bounds: `min_score <= score < max_score` (either bound optional)."""
    if not _is_number(score) or (isinstance(score, float) and math.isnan(score)):
        return False
    if low is not None and score < low:
        return False
    return not (high is not None and score >= high)
