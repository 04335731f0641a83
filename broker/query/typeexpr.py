"""Entity type selection (clause 4.17): "A,B" or "A|B" (either), "A;B" (both), parentheses.

Parsed into a tiny AST; AND binds tighter than OR, as in the q language. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from broker.errors import BadRequestData

MAX_LENGTH = 4096


@dataclass(frozen=True)
class TypeName:
    name: str


@dataclass(frozen=True)
class AllOf:
    items: tuple[TypeExpr, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[TypeExpr, ...]


@dataclass(frozen=True)
class NoneOf:
    """An entity with none of these types. Not in the query language: the access layer adds
    it so a query never matches (nor counts) an entity with a type the principal may not read
    (broker/http/access.py restrict)."""

    items: tuple[TypeExpr, ...]


@dataclass(frozen=True)
class Within:
    """An entity each of whose types is one of these (not in the query language either: the
    access layer's, like NoneOf)."""

    names: tuple[str, ...]


TypeExpr = TypeName | AllOf | AnyOf | NoneOf | Within

_TOKEN_RE = re.compile(r"\s*([(),|;]|[^(),|;\s]+)")


def parse_types(text: str) -> TypeExpr:
    if not text or len(text) > MAX_LENGTH:
        raise BadRequestData("type must be a non-empty type expression")
    tokens = _TOKEN_RE.findall(text)
    if "".join(tokens) != re.sub(r"\s+", "", text):
        raise BadRequestData(f"Invalid type expression {text!r}")
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def either() -> TypeExpr:
        items = [both()]
        while peek() in (",", "|"):
            take()
            items.append(both())
        return items[0] if len(items) == 1 else AnyOf(tuple(items))

    def both() -> TypeExpr:
        items = [atom()]
        while peek() == ";":
            take()
            items.append(atom())
        return items[0] if len(items) == 1 else AllOf(tuple(items))

    def atom() -> TypeExpr:
        token = peek()
        if token == "(":
            take()
            inner = either()
            if peek() != ")":
                raise BadRequestData(f"Unbalanced parentheses in type expression {text!r}")
            take()
            return inner
        if token is None or token in "),|;":
            raise BadRequestData(f"Type expected in {text!r} at token {pos + 1}")
        return TypeName(take())

    expr = either()
    if pos != len(tokens):
        raise BadRequestData(f"Unexpected {tokens[pos]!r} in type expression {text!r}")
    return expr


def expand_types(expr: TypeExpr, expand: Callable[[str], str]) -> TypeExpr:
    if isinstance(expr, TypeName):
        return TypeName(expand(expr.name))
    if isinstance(expr, Within):
        return Within(tuple(expand(n) for n in expr.names))
    items = tuple(expand_types(i, expand) for i in expr.items)
    return type(expr)(items)


def type_matches(expr: TypeExpr, types: list[str]) -> bool:
    """The reference evaluation, against an entity's (expanded) types."""
    if isinstance(expr, TypeName):
        return expr.name in types
    if isinstance(expr, Within):
        return all(t in expr.names for t in types)
    results = (type_matches(i, types) for i in expr.items)
    if isinstance(expr, NoneOf):
        return not any(results)
    return all(results) if isinstance(expr, AllOf) else any(results)
