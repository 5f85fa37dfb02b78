"""Typed mixer rules (msgspec structs) compiled into predicates, and the thresholds `dolma report` draws."""

from __future__ import annotations

import math
from typing import Any

from mixers.jsonpath import _FLIPPED, Threshold
from mixers.jsonpath_eval import MISSING, Predicate, RuleError, _compare, _is_number, _singular_getter
from mixers.mix_config import Rule

# ----------------------------------------------------------------------------------------------------------
# Typed rules
# ----------------------------------------------------------------------------------------------------------


def _reduce(spans: Any, how: str) -> Any:
    if not isinstance(spans, list):
        return MISSING
    if how == "count":
        return len(spans)
    scores = [s[2] for s in spans if isinstance(s, list) and len(s) >= 3 and _is_number(s[2])]
    if not scores:
        return MISSING
    if how == "first":
        return scores[0]
    if how == "max":
        return max(scores)
    if how == "min":
        return min(scores)
    if how == "sum":
        return sum(scores)
    return sum(scores) / len(scores)


def compile_typed(rule: Rule, where: str) -> tuple[Predicate, set[str]]:
    """A predicate for a typed rule, and the attribute keys it needs."""
    forms = [rule.attribute is not None or rule.field is not None, rule.all is not None, rule.any is not None]
    forms.append(rule.not_ is not None)
    if sum(forms) != 1:
        raise RuleError(f"{where}: a rule has exactly one of attribute/field, all, any, not")
    if rule.all is not None or rule.any is not None:
        subs = rule.all if rule.all is not None else rule.any
        assert subs is not None
        compiled = [compile_typed(r, where) for r in subs]
        preds = tuple(p for p, _ in compiled)
        keys = set().union(*(k for _, k in compiled)) if compiled else set()
        if rule.all is not None:
            return (lambda doc: all(p(doc) for p in preds)), keys
        return (lambda doc: any(p(doc) for p in preds)), keys
    if rule.not_ is not None:
        inner, keys = compile_typed(rule.not_, where)
        return (lambda doc: not inner(doc)), keys
    if rule.attribute is not None and rule.field is not None:
        raise RuleError(f"{where}: give either 'attribute' or 'field', not both")
    op, const, how = rule.op, rule.value, rule.reduce
    if op in ("in", "not_in") and not isinstance(const, list):
        raise RuleError(f"{where}: op '{op}' needs a list value")
    if op in ("<", "<=", ">", ">=") and not (_is_number(const) or isinstance(const, str)):
        raise RuleError(f"{where}: op '{op}' needs a number or string value, got {const!r}")
    if rule.attribute is not None:
        key = rule.attribute

        def getter(doc: dict[str, Any]) -> Any:
            attrs = doc.get("attributes")
            spans = attrs.get(key, MISSING) if type(attrs) is dict else MISSING
            return MISSING if spans is MISSING else _reduce(spans, how)

        keys = {key}
    else:
        assert rule.field is not None
        get = _singular_getter([("key", part) for part in rule.field.split(".")])

        def getter(doc: dict[str, Any]) -> Any:
            return get(doc)

        keys = set()
    if op == "exists":
        return (lambda doc: getter(doc) is not MISSING), keys
    if op == "missing":
        return (lambda doc: getter(doc) is MISSING), keys
    if op in ("in", "not_in"):
        members = list(const)
        want = op == "in"
        return (lambda doc: (getter(doc) in members) == want if getter(doc) is not MISSING else not want), keys
    return (lambda doc: _compare(op, getter(doc), const)), keys


def typed_thresholds(rule: Rule) -> list[Threshold]:
    """The numeric comparisons of attribute scores in a typed rule and its sub-rules (a `count` is no score)."""
    found: list[Threshold] = []
    for sub in [*(rule.all or []), *(rule.any or []), *([rule.not_] if rule.not_ is not None else [])]:
        found.extend(typed_thresholds(sub))
    number = _is_number(rule.value) and math.isfinite(rule.value)
    if rule.attribute is not None and rule.op in _FLIPPED and number and rule.reduce != "count":
        found.append(Threshold(rule.attribute, rule.op, rule.value))
    return found
