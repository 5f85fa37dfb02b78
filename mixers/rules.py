"""Mixer rules compiled once per stream: a JSONPath subset, jq programs and plain typed rules.

Every rule form compiles into a plain Python callable `doc -> bool` (or `doc -> selected value` for span
selectors); `StreamRules` holds a stream's rules and decides documents. Nothing a user writes is ever executed
as Python: JSONPath is parsed by the small recursive descent parser below into closures over constants, jq
programs run inside libjq (the `jq` package) and only in the rule sandbox (`mixers/sandbox.py`), with the
builtins that reach outside the document shadowed, and typed rules are msgspec structs.

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

from dolma.errors import ConfigError
from mixers.mix_config import Rule, Stream

MISSING: Any = object()
"""Marker for "the path selects nothing" (distinct from a JSON null)."""

Predicate = Callable[[dict[str, Any]], bool]
Selector = Callable[[dict[str, Any]], Any]


class RuleError(ConfigError):
    """A rule cannot be parsed; the message shows the rule and where parsing stopped."""


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


# ----------------------------------------------------------------------------------------------------------
# JSONPath: steps and paths
# ----------------------------------------------------------------------------------------------------------

Step = tuple[str, Any]
"""('key', name) | ('index', n) | ('wild', None) | ('filter', predicate) | ('slice', (start, end, step))
| ('descend', name) | ('descend', None) (`..*`)."""


def _slice(node: list[Any], start: int | None, end: int | None, step: int) -> list[Any]:
    """The reference's slice (jsonpath-rust 0.3), probed black-box; see the module docstring."""
    n = len(node)
    lo = 0 if start is None else (start + n if start < 0 else start)
    hi = n if end is None else (end + n if end < 0 else end)
    if hi == 0:
        hi = n
    if step == 0 or lo < 0 or hi < 0 or hi > n:
        return []
    return node[lo:hi:step]


def _descend(nodes: list[Any], name: str | None) -> list[Any]:
    """`..name` (name given) or `..*`: every node below the given ones, each container walked once."""
    out: list[Any] = []
    seen: set[int] = set()
    stack = list(reversed(nodes))
    while stack:  # iterative pre-order walk: no recursion limit on deeply nested documents
        node = stack.pop()
        if type(node) is dict:
            children = list(node.values())
        elif type(node) is list:
            children = node
        else:
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        if name is None:
            out.extend(children)
        elif type(node) is dict and name in node:
            out.append(node[name])
        stack.extend(reversed(children))
    return out


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
    elif kind == "slice":
        for node in nodes:
            if isinstance(node, list):
                out.extend(_slice(node, *arg))
    elif kind == "descend":
        out = _descend(nodes, arg)
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

BLOCKED_JQ: dict[str, tuple[tuple[int, ...], str]] = {
    "env": ((0,), "reads the environment"),
    "input": ((0,), "reads input beyond the document"),
    "inputs": ((0,), "reads input beyond the document"),
    "input_filename": ((0,), "names the input file"),
    "input_line_number": ((0,), "reads the input position"),
    "get_search_list": ((0,), "lists module search directories of this machine"),
    "get_prog_origin": ((0,), "names directories of this machine"),
    "get_jq_origin": ((0,), "names directories of this machine"),
    "modulemeta": ((0,), "reads module files"),
    "halt": ((0,), "ends the program, so the document would silently produce nothing"),
    "halt_error": ((0, 1), "ends the program, so the document would silently produce nothing"),
    "debug": ((0, 1), "writes to stderr"),
    "stderr": ((0,), "writes to stderr"),
    "now": ((0,), "reads the clock, so the mix would not be reproducible"),
    "localtime": ((0,), "reads the time zone of this machine (TZ, /etc/localtime)"),
    "strflocaltime": ((1,), "reads the time zone of this machine (TZ, /etc/localtime)"),
}
"""jq 1.8 builtins a mixer rule may not call, with the reason (see the sandbox notes in docs/mix.md).

Everything else is pure: it only sees the document. `$ENV` and the module directives (`import`, `include`,
`module`) are refused too, and `$HOME/.jq` (which libjq includes by itself) is never read: jq only runs in the
rule sandbox (mixers/sandbox.py), a process with an empty environment whose HOME is an empty directory.
"""

_BLOCKED_MARK = "__dolma_sandbox_blocked__"


def _shadow_prefix() -> str:
    """Definitions that replace the blocked builtins, then `$ENV` bound to {}; one line, before the user program.

    A call to a shadowed builtin compiles into a call to an undefined name, so the rule fails at compile time
    (translated into a message naming the builtin); unused definitions are dropped by jq and cost nothing.
    Because the program no longer starts with the user's text, `import`, `include` and `module` (which jq only
    accepts first) become syntax errors before any module file is looked up.
    """
    defs = []
    for name, (arities, _) in BLOCKED_JQ.items():
        for arity in arities:
            params = "(" + "; ".join(f"a{i}" for i in range(arity)) + ")" if arity else ""
            defs.append(f"def {name}{params}: {_BLOCKED_MARK}{name};")
    return " ".join(defs) + " {} as $ENV | ("


SANDBOX_PREFIX = _shadow_prefix()
_ENV_VAR = re.compile(r"\$ENV(?![A-Za-z0-9_])")
_JQ_ERROR = re.compile(r"error: (?P<what>.*?) at <top-level>, line (?P<line>\d+), column (?P<col>\d+)")
_JQ_BLOCKED = re.compile(re.escape(_BLOCKED_MARK) + r"(?P<name>\w+)/0 is not defined")
_JQ_MODULE = re.compile(r"unexpected (?P<kw>import|include|module)\b")


def check_jq_source(program: str) -> None:
    """What can be refused without compiling: `$ENV` (also bound to {} by the sandbox prefix, so never read)."""
    if _ENV_VAR.search(program):
        raise RuleError(f"jq rule {program!r} uses $ENV: the environment is not available in mixer rules")


def sandboxed_program(program: str) -> str:
    """The text libjq compiles: the shadowing prefix on line 1, the user's program from line 2."""
    return f"{SANDBOX_PREFIX}\n{program}\n\n)"


def _compile_error(program: str, message: str) -> RuleError:
    blocked = _JQ_BLOCKED.search(message)
    if blocked:
        name = blocked.group("name")
        why = BLOCKED_JQ.get(name, ((), "is not available"))[1]
        return RuleError(f"jq rule {program!r} uses `{name}`, which mixer rules may not call: it {why}")
    module = _JQ_MODULE.search(message)
    if module:
        return RuleError(
            f"jq rule {program!r} uses `{module.group('kw')}`: modules are not available in mixer rules "
            "(no module search paths, no file access)"
        )
    found = _JQ_ERROR.search(message)
    if found:
        line = max(1, int(found.group("line")) - 1)  # line 1 is the sandbox prefix
        what = found.group("what")
        if line > program.count("\n") + 1:  # on the lines closing the prefix: the program ended too early
            what = what.replace("unexpected ')'", "unexpected end of the program")
            return RuleError(f"jq rule {program!r} does not compile: {what}")
        return RuleError(f"jq rule {program!r} does not compile: {what} (line {line})")
    first = message.strip().splitlines()[0] if message.strip() else "invalid program"
    return RuleError(f"jq rule {program!r} does not compile: {first.removeprefix('jq: error: ')}")


class JqRuntimeError(Exception):
    """A jq program raised an error on a document (inside the sandbox; reported with the file and line)."""


def _truthy(value: Any) -> bool:
    return value is not None and value is not False


class JqProgram:
    """A jq program. It matches when any output is truthy (not false or null).

    Outside the sandbox (`compile=False`) only the checks that need no libjq run: the mixer process never
    compiles or evaluates jq. Inside it, documents arrive as JSON text, which libjq parses itself.
    """

    def __init__(self, program: str, compile: bool):
        self.rule = program
        self.attribute_keys = _attribute_keys(program)
        check_jq_source(program)
        self._program = self._compile() if compile else None

    def _compile(self) -> Any:
        try:
            import jq
        except ImportError as exc:  # pragma: no cover - jq is a declared dependency
            raise ConfigError("jq rules need the 'jq' package (pip install jq)") from exc
        try:
            return jq.compile(sandboxed_program(self.rule))
        except ValueError as exc:
            raise _compile_error(self.rule, str(exc)) from None

    def outputs(self, text: str) -> list[Any]:
        if self._program is None:
            raise RuntimeError("jq programs only run inside the rule sandbox")
        try:
            return self._program.input_text(text).all()
        except ValueError as exc:
            raise JqRuntimeError(str(exc)) from None

    def matches(self, text: str) -> bool:
        return any(_truthy(v) for v in self.outputs(text))

    def first(self, text: str) -> Any:
        out = self.outputs(text)
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


def typed_thresholds(rule: Rule) -> list[Threshold]:
    """The numeric comparisons of attribute scores in a typed rule and its sub-rules (a `count` is no score)."""
    found: list[Threshold] = []
    for sub in [*(rule.all or []), *(rule.any or []), *([rule.not_] if rule.not_ is not None else [])]:
        found.extend(typed_thresholds(sub))
    number = _is_number(rule.value) and math.isfinite(rule.value)
    if rule.attribute is not None and rule.op in _FLIPPED and number and rule.reduce != "count":
        found.append(Threshold(rule.attribute, rule.op, rule.value))
    return found


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
