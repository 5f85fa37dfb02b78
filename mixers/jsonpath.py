"""The JSONPath subset of mixer rules: tokenizer and recursive descent parser into closures over constants.

Longer than 400 lines because the grammar (operands, comparisons, filters, slices) is one unit and reads best whole.

JSONPath semantics follow what Dolma users rely on:
- `$` (also written `$@`) is the document, with the merged `attributes` of every attribute set.
- `.name`, `['name']`, `[n]` (negative from the end), `[*]` / `.*` select children.
- `..name`, `..['name']`, `..*` select at any depth (recursive descent: the node itself and every node below it).
  `..` before an index or a filter is refused, as the reference refuses it.
- `[a:b]`, `[a:b:c]` slice a list with the reference's rules (jsonpath-rust 0.3, checked by a differential test):
  a negative bound counts from the end; a start that is still negative, or an end past the length or still
  negative, selects nothing; an end that is (or becomes) 0 means the whole length (so `[0:0]` and `[:-n]` on a
  list of n items select everything); step 0 selects nothing and a negative step is refused.
- `[?(expr)]` applied to an object tests the object itself (`$.attributes[?(@.key[0][2] > 0.5)]` tests the
  attributes object); applied to an array it keeps the elements for which `expr` holds.
- In `expr`: `@...` / `$...` paths, numbers, 'strings' / "strings", true, false, null, `== != < <= > >=`,
  `&& || !` and parentheses. A path alone is true when it selects something. A comparison with a missing
  side, or between a number and a string, is false.
- A rule matches when its selection is non-empty.

The cost of a JSONPath rule is linear in the size of the document: every step maps distinct nodes to distinct
nodes (a recursive descent walks each container at most once per step, even from nested starting nodes), a
filter's relative paths (`@`) walk disjoint subtrees, and a path from the root (`$`) inside a filter,
evaluated once per element, may only be a direct lookup (`.name` / `[n]`). Nesting is bounded (MAX_NESTING).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, NamedTuple

from mixers.jsonpath_eval import (
    MISSING,
    RuleError,
    Step,
    _attribute_keys,
    _compare,
    _is_number,
    _multi_getter,
    _singular,
    _singular_getter,
)


class Threshold(NamedTuple):
    """A number a rule compares an attribute's span score with, as the parser read it (`dolma report` draws it).

    `op` reads `score op value`: `$.attributes[?(@.k[0][2] < 200)]` gives ("k", "<", 200).
    """

    attribute: str
    op: str
    value: float


_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}


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


MAX_NESTING = 32
"""Deepest nesting of parentheses, filters and `!` in a JSONPath rule (the parser and the evaluator recurse)."""


class _Tokens:
    def __init__(self, rule: str):
        self.rule = rule
        self.items: list[tuple[str, str, int]] = []
        self.depth = 0  # current nesting of '(', '[?' and '!'
        self.filters = 0  # how many filters '[?(...)]' enclose the current position
        self.bases: list[list[Step] | None] = []  # the absolute path `@` stands for in each enclosing filter
        self.paths: dict[int, list[Step] | None] = {}  # id(path getter) -> its absolute steps, when known
        self.thresholds: list[Threshold] = []  # numeric comparisons with a span score (`Threshold`)
        end = len(rule.rstrip())
        pos = 0
        while pos < end:
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

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            self.fail(f"nested more than {MAX_NESTING} levels deep (parentheses, filters and '!')")

    def leave(self) -> None:
        self.depth -= 1


def _parse_steps(toks: _Tokens, prefix: list[Step] | None) -> list[Step]:
    """The steps of one path; `prefix` is the absolute path it starts from (None when unknown), for thresholds."""
    steps: list[Step] = []
    while True:
        kind, text, _ = toks.peek()
        if kind != "op" or text not in (".", "..", "["):
            return steps
        toks.take()
        if text == "..":
            kind, text, _ = toks.peek()
            if kind == "name":
                toks.take()
                steps.append(("descend", text))
            elif kind == "op" and text == "*":
                toks.take()
                steps.append(("descend", None))
            elif kind == "op" and text == "[" and toks.peek(1)[0] == "str" and toks.peek(2)[:2] == ("op", "]"):
                toks.take()
                steps.append(("descend", _unquote(toks.take()[1])))
                toks.take()
            else:
                toks.fail("after '..' the reference accepts a field name, ['name'] or '*' (not an index or a filter)")
            continue
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
        if (kind == "num" and toks.peek(1)[:2] == ("op", ":")) or (kind == "op" and text == ":"):
            steps.append(("slice", _parse_slice(toks)))
            continue
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
            toks.enter()
            toks.filters += 1
            toks.bases.append(None if prefix is None else prefix + steps)
            if toks.peek()[:2] == ("op", "("):
                toks.take()
                expr = _parse_or(toks)
                toks.expect(")")
            else:
                expr = _parse_or(toks)
            toks.bases.pop()
            toks.filters -= 1
            toks.leave()
            steps.append(("filter", _as_predicate(expr)))
        else:
            toks.fail("expected an index, a quoted name, '*' or a filter '?(...)'")
        toks.expect("]")


def _slice_bound(toks: _Tokens, what: str) -> int | None:
    kind, text, _ = toks.peek()
    if kind != "num":
        return None
    if not re.fullmatch(r"-?\d+", text):
        toks.fail(f"expected an integer slice {what}")
    toks.take()
    return int(text)


def _parse_slice(toks: _Tokens) -> tuple[int | None, int | None, int]:
    """`[start:end]` or `[start:end:step]` (each part optional), the opening '[' already taken; takes the ']'."""
    start = _slice_bound(toks, "start")
    toks.expect(":")
    end = _slice_bound(toks, "end")
    step = 1
    if toks.accept(":"):
        given = _slice_bound(toks, "step")
        if given is not None and given < 0:
            toks.fail("a negative slice step is refused (as the reference refuses it)")
        step = 1 if given is None else given
    toks.expect("]")
    return start, end, step


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
        prefix = (toks.bases[-1] if toks.bases else None) if text == "@" else []
        steps = _parse_steps(toks, prefix)
        if text != "@" and toks.filters and not _singular(steps):
            # evaluated once per filtered element, a scan from the root would make the cost grow with the
            # square (or a higher power) of the document size
            toks.fail("inside a filter, a path from the root ($) may only use .name and [n] steps (no '*' or filters)")
        getter = _path_value(text == "@", steps)
        toks.paths[id(getter)] = None if prefix is None else prefix + steps
        return ("path", getter)
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
        toks.enter()
        inner = _parse_or(toks)
        toks.expect(")")
        toks.leave()
        return inner
    toks.fail("expected a path (@ or $), a number, a string, true, false, null or '('")
    raise AssertionError  # unreachable: fail() raises


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
        toks.enter()
        inner = _as_predicate(_parse_cmp(toks))
        toks.leave()
        return ("bool", lambda root, cur: not inner(root, cur))
    left = _parse_operand(toks)
    kind, text, _ = toks.peek()
    if kind == "op" and text in _OPS:
        toks.take()
        right = _parse_operand(toks)
        op = text
        _note_threshold(toks, left, op, right)
        if left[0] == "path" and right[0] == "lit":
            get, const = left[1], right[1]
            if _is_number(const) and op in ("<", "<=", ">", ">="):
                return ("bool", _fast_numeric(op, get, const))
            return ("bool", lambda root, cur: _compare(op, get(root, cur), const))
        lf, rf = _value_fn(left), _value_fn(right)
        return ("bool", lambda root, cur: _compare(op, lf(root, cur), rf(root, cur)))
    return left


def _note_threshold(toks: _Tokens, left: Expr, op: str, right: Expr) -> None:
    """Record `<span score of an attribute> op <number>` (either side), the shape thresholds are written in."""
    if op not in _FLIPPED:
        return
    if left[0] == "lit" and right[0] == "path":
        left, right, op = right, left, _FLIPPED[op]
    if left[0] != "path" or right[0] != "lit" or not _is_number(right[1]) or not math.isfinite(right[1]):
        return
    steps = toks.paths.get(id(left[1]))
    # $.attributes.<key> then, for a span list, [n][2] (an object filter) or [2] (a filter over the spans)
    if not steps or len(steps) < 3 or steps[0] != ("key", "attributes") or steps[1][0] != "key":
        return
    rest = steps[2:]
    if rest[-1] == ("index", 2) and all(kind in ("index", "wild") for kind, _ in rest):
        toks.thresholds.append(Threshold(steps[1][1], op, right[1]))


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
        self.steps = _parse_steps(toks, [])
        if toks.peek()[0] != "end":
            toks.fail("unexpected text after the path")
        self._select = _multi_getter(self.steps)
        self._single = _singular_getter(self.steps) if _singular(self.steps) else None
        self._filtered = None
        if self.steps and self.steps[-1][0] == "filter" and _singular(self.steps[:-1]):
            # the common `$.attributes[?(...)]` shape: one lookup, then one predicate call
            self._filtered = (_singular_getter(self.steps[:-1]), self.steps[-1][1])
        self.attribute_keys = _attribute_keys(rule)
        self.thresholds = toks.thresholds

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
