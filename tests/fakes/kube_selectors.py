"""Label and field selectors as the API server parses them, and a LabelSelector object rendered as a string.

Label selectors: ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k`` and ``!k``, joined
by commas. Field selectors: ``metadata.name`` and ``metadata.namespace`` with ``=``, ``==`` or ``!=`` (the
only fields every resource supports); anything else is rejected as the real server rejects an unknown field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Predicate = Callable[[Mapping[str, Any]], bool]

_SET_TERM = re.compile(r"^\s*([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ_TERM = re.compile(r"^\s*([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)\s*$")
_EXISTS_TERM = re.compile(r"^\s*(!?)([\w./-]+)\s*$")
_FIELDS = {"metadata.name": ("metadata", "name"), "metadata.namespace": ("metadata", "namespace")}


class SelectorError(ValueError):
    """The selector does not parse (the server answers 400 BadRequest)."""


def label_predicate(selector: str) -> Predicate:
    """A test on an object's ``metadata.labels``; the empty selector matches everything."""
    tests = [_label_term(term) for term in _split_terms(selector)]

    def matches(obj: Mapping[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(test(labels) for test in tests)

    return matches


def field_predicate(selector: str) -> Predicate:
    tests: list[Predicate] = []
    for term in _split_terms(selector):
        found = _EQ_TERM.match(term)
        if found is None or found.group(1) not in _FIELDS:
            raise SelectorError(
                f'"{term}" is not a known field selector: only metadata.name, metadata.namespace'
            )
        tests.append(_field_term(_FIELDS[found.group(1)], found.group(3), negate=found.group(2) == "!="))
    return lambda obj: all(test(obj) for test in tests)


def _field_term(path: tuple[str, str], wanted: str, *, negate: bool) -> Predicate:
    section, key = path
    return lambda obj: (obj.get(section, {}).get(key) == wanted) != negate


def format_label_selector(selector: Mapping[str, Any]) -> str:
    """A ``LabelSelector`` object as the selector string that ``Scale.status.selector`` shows."""
    terms = [f"{key}={value}" for key, value in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], sorted(expr.get("values") or [])
        if op == "In":
            terms.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            terms.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            terms.append(key)
        else:
            terms.append(f"!{key}")
    return ",".join(terms)


def _split_terms(selector: str) -> list[str]:
    """Commas separate terms except inside the parentheses of a set term."""
    terms, depth, start = [], 0, 0
    for i, char in enumerate(selector):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(selector[start:i])
            start = i + 1
    terms.append(selector[start:])
    return [term for term in terms if term.strip()]


def _label_term(term: str) -> Callable[[Mapping[str, str]], bool]:
    if found := _SET_TERM.match(term):
        key, op = found.group(1), found.group(2)
        values = {v.strip() for v in found.group(3).split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if found := _EQ_TERM.match(term):
        key, op, value = found.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if found := _EXISTS_TERM.match(term):
        absent, key = found.groups()
        return lambda labels: (key in labels) != bool(absent)
    raise SelectorError(f"unable to parse requirement: {term!r}")
