"""Mixer rules compiled once per stream: a JSONPath subset, jq programs and plain typed rules.

Every rule form compiles into a plain Python callable `doc -> bool` (or `doc -> selected value` for span
selectors). Nothing a user writes is ever executed as Python: JSONPath is parsed by the small recursive
descent parser below into closures over constants, jq programs run inside libjq (the `jq` package), and
typed rules are msgspec structs.

JSONPath semantics follow what Dolma users rely on:
- `$` (also written `$@`) is the document, with the merged `attributes` of every attribute set.
- `.name`, `['name']`, `[n]` (negative from the end), `[*]` / `.*` select children.
- `[?(expr)]` applied to an object tests the object itself (`$.attributes[?(@.key[0][2] > 0.5)]` tests the
  attributes object); applied to an array it keeps the elements for which `expr` holds.
- In `expr`: `@...` / `$...` paths, numbers, 'strings' / "strings", true, false, null, `== != < <= > >=`,
  `&& || !` and parentheses. A path alone is true when it selects something. A comparison with a missing
  side, or between a number and a string, is false.
- A rule matches when its selection is non-empty.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from dolma.commands.mix import Rule
from dolma.errors import ConfigError

MISSING: Any = object()
"""Marker for "the path selects nothing" (distinct from a JSON null)."""

Predicate = Callable[[dict[str, Any]], bool]
Selector = Callable[[dict[str, Any]], Any]


class RuleError(ConfigError):
    """A rule cannot be parsed; the message shows the rule and where parsing stopped."""


# ----------------------------------------------------------------------------------------------------------
# JSONPath: tokenizer
# ----------------------------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    \s*(?:
      (?P<num>-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
    | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    | (?P<op>==|!=|<=|>=|&&|\|\||\$@|\.\.|[$@.\[\]()?*<>!,:])
    | (?P<name>[A-Za-z_][A-Za-z0-9_\-]*)
    )""",
    re.VERBOSE,
)

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "/": "/"}


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


class _Tokens:
    def __init__(self, rule: str):
        self.rule = rule
        self.items: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(rule):
            if rule[pos:].strip() == "":
                break
            m = _TOKEN.match(rule, pos)
            if m is None or m.end() == pos:
                raise RuleError(f"JSONPath rule {rule!r}: unexpected character at offset {pos}: {rule[pos:]!r}")
            kind = m.lastgroup or ""
            self.items.append((kind, m.group(kind), m.start(kind)))
            pos = m.end()
        self.i = 0

    def peek(self, offset: int = 0) -> tuple[str, str, int]:
        j = self.i + offset
        return self.items[j] if j < len(self.items) else ("end", "", len(self.rule))

    def take(self) -> tuple[str, str, int]:
        tok = self.peek()
        self.i += 1
        return tok

    def accept(self, value: str) -> bool:
        kind, text, _ = self.peek()
        if kind == "op" and text == value:
            self.i += 1
            return True
        return False

    def expect(self, value: str) -> None:
        if not self.accept(value):
            self.fail(f"expected '{value}'")

    def fail(self, what: str) -> None:
        _, text, pos = self.peek()
        found = f"'{text}'" if text else "the end"
        raise RuleError(f"JSONPath rule {self.rule!r}: {what} at offset {pos}, found {found}")


# ----------------------------------------------------------------------------------------------------------
# JSONPath: steps and paths
# ----------------------------------------------------------------------------------------------------------

Step = tuple[str, Any]
"""('key', name) | ('index', n) | ('wild', None) | ('filter', predicate)."""


def _apply_step(step: Step, nodes: list[Any], root: Any) -> list[Any]:
    kind, arg = step
    out: list[Any] = []
    if kind == "key":
        for node in nodes:
            if isinstance(node, dict) and arg in node:
                out.append(node[arg])
    elif kind == "index":
        for node in nodes:
            if isinstance(node, list) and -len(node) <= arg < len(node):
                out.append(node[arg])
    elif kind == "wild":
        for node in nodes:
            if isinstance(node, dict):
                out.extend(node.values())
            elif isinstance(node, list):
                out.extend(node)
    else:
        for node in nodes:
            if isinstance(node, list):
                out.extend(x for x in node if arg(root, x))
            elif arg(root, node):
                out.append(node)
    return out


def _singular(steps: list[Step]) -> bool:
    return all(kind in ("key", "index") for kind, _ in steps)


def _singular_getter(steps: list[Step]) -> Callable[[Any], Any]:
    """A fast lookup for paths made only of keys and indexes: the value, or MISSING."""
    plan = tuple(steps)

    def get(node: Any) -> Any:
        for kind, arg in plan:
            if kind == "key":
                if type(node) is not dict:
                    return MISSING
                node = node.get(arg, MISSING)
                if node is MISSING:
                    return MISSING
            else:
                if type(node) is not list or not -len(node) <= arg < len(node):
                    return MISSING
                node = node[arg]
        return node

    return get


def _multi_getter(steps: list[Step]) -> Callable[[Any, Any], list[Any]]:
    plan = tuple(steps)

    def select(root: Any, start: Any) -> list[Any]:
        nodes = [start]
        for step in plan:
            nodes = _apply_step(step, nodes, root)
            if not nodes:
                break
        return nodes

    return select


def _parse_steps(toks: _Tokens) -> list[Step]:
    steps: list[Step] = []
    while True:
        kind, text, _ = toks.peek()
        if kind != "op" or text not in (".", "["):
            return steps
        toks.take()
        if text == ".":
            kind, text, _ = toks.peek()
            if kind == "name":
                toks.take()
                steps.append(("key", text))
            elif kind == "op" and text == "*":
                toks.take()
                steps.append(("wild", None))
            elif kind == "num" and re.fullmatch(r"\d+", text):
                toks.take()
                steps.append(("key", text))
            else:
                toks.fail("expected a field name after '.'")
            continue
        kind, text, _ = toks.peek()
        if kind == "num":
            toks.take()
            try:
                steps.append(("index", int(text)))
            except ValueError:
                toks.fail("expected an integer index")
        elif kind == "str":
            toks.take()
            steps.append(("key", _unquote(text)))
        elif kind == "op" and text == "*":
            toks.take()
            steps.append(("wild", None))
        elif kind == "op" and text == "?":
            toks.take()
            if toks.peek()[:2] == ("op", "("):
                toks.take()
                expr = _parse_or(toks)
                toks.expect(")")
            else:
                expr = _parse_or(toks)
            steps.append(("filter", _as_predicate(expr)))
        else:
            toks.fail("expected an index, a quoted name, '*' or a filter '?(...)'")
        toks.expect("]")


# ----------------------------------------------------------------------------------------------------------
# JSONPath: filter expressions. An expression node is ("path", getter) | ("lit", value) | ("bool", fn).
# ----------------------------------------------------------------------------------------------------------

Expr = tuple[str, Any]


def _path_value(rel: bool, steps: list[Step]) -> Callable[[Any, Any], Any]:
    """(root, current) -> the single value a path selects (its first match), or MISSING."""
    if _singular(steps):
        get = _singular_getter(steps)
        if rel:
            return lambda root, cur: get(cur)
        return lambda root, cur: get(root)
    select = _multi_getter(steps)
    if rel:
        return lambda root, cur: next(iter(select(root, cur)), MISSING)
    return lambda root, cur: next(iter(select(root, root)), MISSING)


def _parse_operand(toks: _Tokens) -> Expr:
    kind, text, _ = toks.peek()
    if kind == "op" and text in ("@", "$", "$@"):
        toks.take()
        return ("path", _path_value(text == "@", _parse_steps(toks)))
    if kind == "num":
        toks.take()
        value = float(text)
        return ("lit", int(value) if value.is_integer() and re.fullmatch(r"-?\d+", text) else value)
    if kind == "str":
        toks.take()
        return ("lit", _unquote(text))
    if kind == "name" and text in ("true", "false", "null"):
        toks.take()
        return ("lit", {"true": True, "false": False, "null": None}[text])
    if kind == "op" and text == "(":
        toks.take()
        inner = _parse_or(toks)
        toks.expect(")")
        return inner
    toks.fail("expected a path (@ or $), a number, a string, true, false, null or '('")
    raise AssertionError  # unreachable: fail() raises


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)


def _compare(op: str, a: Any, b: Any) -> bool:
    if a is MISSING or b is MISSING:
        return False
    na, nb = _is_number(a), _is_number(b)
    if op in ("==", "!="):
        if na and nb:
            equal = a == b
        elif type(a) is not type(b):
            equal = False
        else:
            equal = a == b
        return equal if op == "==" else not equal
    if (na and nb) or (isinstance(a, str) and isinstance(b, str)):
        pass
    else:
        return False
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    if op == ">":
        return a > b
    return a >= b


def _value_fn(expr: Expr) -> Callable[[Any, Any], Any]:
    kind, arg = expr
    if kind == "path":
        return arg
    if kind == "lit":
        return lambda root, cur, _v=arg: _v
    fn = arg
    return lambda root, cur: fn(root, cur)


def _as_predicate(expr: Expr) -> Callable[[Any, Any], bool]:
    kind, arg = expr
    if kind == "bool":
        return arg
    if kind == "path":
        return lambda root, cur: arg(root, cur) is not MISSING
    truthy = arg not in (None, False, MISSING)
    return lambda root, cur: truthy


_OPS = ("==", "!=", "<=", ">=", "<", ">")


def _parse_cmp(toks: _Tokens) -> Expr:
    if toks.accept("!"):
        inner = _as_predicate(_parse_cmp(toks))
        return ("bool", lambda root, cur: not inner(root, cur))
    left = _parse_operand(toks)
    kind, text, _ = toks.peek()
    if kind == "op" and text in _OPS:
        toks.take()
        right = _parse_operand(toks)
        op = text
        if left[0] == "path" and right[0] == "lit":
            get, const = left[1], right[1]
            if _is_number(const) and op in ("<", "<=", ">", ">="):
                return ("bool", _fast_numeric(op, get, const))
            return ("bool", lambda root, cur: _compare(op, get(root, cur), const))
        lf, rf = _value_fn(left), _value_fn(right)
        return ("bool", lambda root, cur: _compare(op, lf(root, cur), rf(root, cur)))
    return left


def _fast_numeric(op: str, get: Callable[[Any, Any], Any], const: float) -> Callable[[Any, Any], bool]:
    """The common `@.key[0][2] >= 0.5` shape, without the generic comparison dispatch."""
    if op == ">=":

        def pred(root: Any, cur: Any) -> bool:
            v = get(root, cur)
            return (type(v) is float or type(v) is int) and v >= const

    elif op == ">":

        def pred(root: Any, cur: Any) -> bool:
            v = get(root, cur)
            return (type(v) is float or type(v) is int) and v > const

    elif op == "<=":

        def pred(root: Any, cur: Any) -> bool:
            v = get(root, cur)
            return (type(v) is float or type(v) is int) and v <= const

    else:

        def pred(root: Any, cur: Any) -> bool:
            v = get(root, cur)
            return (type(v) is float or type(v) is int) and v < const

    return pred


def _parse_and(toks: _Tokens) -> Expr:
    parts = [_as_predicate(_parse_cmp(toks))]
    while toks.accept("&&"):
        parts.append(_as_predicate(_parse_cmp(toks)))
    if len(parts) == 1:
        return ("bool", parts[0])
    preds = tuple(parts)
    return ("bool", lambda root, cur: all(p(root, cur) for p in preds))


def _parse_or(toks: _Tokens) -> Expr:
    first = _parse_and(toks)
    parts = [_as_predicate(first)]
    while toks.accept("||"):
        parts.append(_as_predicate(_parse_and(toks)))
    if len(parts) == 1:
        return first
    preds = tuple(parts)
    return ("bool", lambda root, cur: any(p(root, cur) for p in preds))


class JsonPath:
    """A compiled JSONPath: `select(doc)` returns the matched values; `matches(doc)` whether there are any."""

    def __init__(self, rule: str):
        self.rule = rule
        toks = _Tokens(rule.strip())
        kind, text, _ = toks.peek()
        if kind != "op" or text not in ("$", "$@"):
            toks.fail("a JSONPath rule starts with '$'")
        toks.take()
        self.steps = _parse_steps(toks)
        if toks.peek()[0] != "end":
            toks.fail("unexpected text after the path")
        self._select = _multi_getter(self.steps)
        self._single = _singular_getter(self.steps) if _singular(self.steps) else None
        self._filtered = None
        if self.steps and self.steps[-1][0] == "filter" and _singular(self.steps[:-1]):
            # the common `$.attributes[?(...)]` shape: one lookup, then one predicate call
            self._filtered = (_singular_getter(self.steps[:-1]), self.steps[-1][1])
        self.attribute_keys = _attribute_keys(rule)

    def select(self, doc: dict[str, Any]) -> list[Any]:
        if self._single is not None:
            value = self._single(doc)
            return [] if value is MISSING else [value]
        return self._select(doc, doc)

    def matches(self, doc: dict[str, Any]) -> bool:
        if self._single is not None:
            return self._single(doc) is not MISSING
        if self._filtered is not None:
            get, pred = self._filtered
            node = get(doc)
            if type(node) is list:
                return any(pred(doc, x) for x in node)
            return node is not MISSING and pred(doc, node)
        return bool(self._select(doc, doc))

    def first(self, doc: dict[str, Any]) -> Any:
        found = self.select(doc)
        return found[0] if found else None


_ATTR_REFS = [
    re.compile(r"\$@?\.attributes\.([A-Za-z0-9_]+)"),
    re.compile(r"\$@?\.attributes\[\s*['\"]([^'\"]+)['\"]\s*\]"),
    re.compile(r"\.attributes\.([A-Za-z0-9_]+)"),
    re.compile(r"\.attributes\[\s*['\"]([^'\"]+)['\"]\s*\]"),
]
_FILTER_ON_ATTRS = re.compile(r"\$@?\.attributes\s*\[\s*\?")
_AT_KEY = re.compile(r"(?<!\$)@\.([A-Za-z0-9_]+)|(?<!\$)@\[\s*['\"]([^'\"]+)['\"]\s*\]")


def _attribute_keys(rule: str) -> set[str]:
    """Attribute names a JSONPath or jq rule refers to (checked against the inputs at start-up)."""
    keys: set[str] = set()
    for pattern in _ATTR_REFS:
        keys.update(m.group(1) for m in pattern.finditer(rule))
    if _FILTER_ON_ATTRS.search(rule):
        keys.update(m.group(1) or m.group(2) for m in _AT_KEY.finditer(rule))
    return keys


# ----------------------------------------------------------------------------------------------------------
# jq
# ----------------------------------------------------------------------------------------------------------


def _truthy(value: Any) -> bool:
    return value is not None and value is not False


class JqProgram:
    """A jq program compiled once with libjq. It matches when any output is truthy (not false or null)."""

    def __init__(self, program: str):
        self.rule = program
        self.attribute_keys = _attribute_keys(program)
        self._program = self._compile()

    def _compile(self) -> Any:
        try:
            import jq
        except ImportError as exc:  # pragma: no cover - jq is a declared dependency
            raise ConfigError("jq rules need the 'jq' package (pip install jq)") from exc
        try:
            return jq.compile(self.rule)
        except ValueError as exc:
            raise RuleError(f"jq rule {self.rule!r}: {exc}") from None

    def __getstate__(self) -> dict[str, Any]:
        return {"rule": self.rule}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.rule = state["rule"]
        self.attribute_keys = _attribute_keys(self.rule)
        self._program = self._compile()

    def outputs(self, doc: dict[str, Any]) -> list[Any]:
        try:
            return self._program.input_value(doc).all()
        except ValueError as exc:
            raise RuleError(f"jq rule {self.rule!r} failed: {exc}") from None

    def matches(self, doc: dict[str, Any]) -> bool:
        return any(_truthy(v) for v in self.outputs(doc))

    def first(self, doc: dict[str, Any]) -> Any:
        out = self.outputs(doc)
        return out[0] if out else None


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


# ----------------------------------------------------------------------------------------------------------
# One entry point for the mixer
# ----------------------------------------------------------------------------------------------------------


class CompiledRule:
    """A filter rule in any syntax, ready to run: `matches(doc)`, a readable `name`, the attribute keys used."""

    def __init__(self, rule: str | Rule, syntax: str, where: str):
        self.source = rule
        if isinstance(rule, Rule):
            self.name = rule.describe()
            self.matches, self.attribute_keys = compile_typed(rule, where)
            return
        self.name = rule
        if syntax == "jq":
            program = JqProgram(rule)
            self.matches = program.matches
            self.attribute_keys = program.attribute_keys
        elif syntax == "jsonpath":
            path = JsonPath(rule)
            self.matches = path.matches
            self.attribute_keys = path.attribute_keys
        else:
            raise RuleError(f"{where}: unknown rule syntax '{syntax}' (jsonpath or jq)")

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("compiled rules are not sent between processes; send the config and compile there")


def compile_selector(expr: str, syntax: str, where: str) -> tuple[Selector, set[str]]:
    """`doc -> value` for a span_replacement `span` expression (the first value it selects, else None)."""
    if syntax == "jq":
        program = JqProgram(expr)
        return program.first, program.attribute_keys
    if syntax != "jsonpath":
        raise RuleError(f"{where}: unknown rule syntax '{syntax}' (jsonpath or jq)")
    path = JsonPath(expr)
    return path.first, path.attribute_keys


def score_in_range(score: Any, low: float | None, high: float | None) -> bool:
    """Span replacement bounds: `min_score <= score < max_score` (either bound optional)."""
    if not _is_number(score) or (isinstance(score, float) and math.isnan(score)):
        return False
    if low is not None and score < low:
        return False
    return not (high is not None and score >= high)
