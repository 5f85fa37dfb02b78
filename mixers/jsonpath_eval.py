"""The rules' shared types (RuleError, MISSING, Predicate) and the JSONPath evaluator.

Parsed steps (`mixers/jsonpath.py`) applied to a document, and the attribute keys a rule reads.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from dolma.errors import ConfigError

MISSING: Any = object()
"""Marker for "the path selects nothing" (distinct from a JSON null)."""

Predicate = Callable[[dict[str, Any]], bool]
Selector = Callable[[dict[str, Any]], Any]


class RuleError(ConfigError):
    """A rule cannot be parsed; the message shows the rule and where parsing stopped."""


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
