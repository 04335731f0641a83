"""The NGSI-LD query language, q (clause 4.9): a pure parser to an immutable AST.

    q = term *( (";" / "|") term )      ; ";" (and) binds tighter than "|" (or)
    term = "(" q ")" / ["!"] path / path op value
    op = "==" / "!=" / ">=" / "<=" / ">" / "<" / "~=" / "!~="
    path = attr ["." sub-attribute or member] *("[" key "]")
    value = number / '"' string '"' / true / false / date-time / uri / low ".." high / v1 "," v2 ...

Errors are QuerySyntaxError (a BadRequestData) with the position of the offending character.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from broker.errors import BadRequestData

MAX_Q_LENGTH = 4096  # longer queries are an abuse of the query string
MAX_DEPTH = 32  # parenthesis nesting
MAX_TERMS = 256
MAX_PATTERN = 256  # ~= patterns run inside the store: bound their size (ReDoS)
MEMBERS = frozenset({"observedAt", "createdAt", "modifiedAt", "unitCode", "datasetId"})
OPERATORS = ("!~=", "==", "!=", ">=", "<=", "~=", ">", "<")  # longest first
_NAME_RE = re.compile(r"[^\s;|()\[\]=!<>~\",.]+(?:\.[^\s;|()\[\]=!<>~\",.]+)*")
_BARE_FORBIDDEN_RE = re.compile(r"[\s\"<>=!~()\[\]]")
_NUMBER_RE = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")


class QuerySyntaxError(BadRequestData):
    def __init__(self, detail: str, position: int) -> None:
        super().__init__(f"q: {detail} at position {position}")
        self.position = position


@dataclass(frozen=True)
class DateTime:
    text: str


@dataclass(frozen=True)
class Range:
    low: Any
    high: Any


@dataclass(frozen=True)
class ValueList:
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Path:
    attr: str
    sub: str | None = None
    member: str | None = None
    keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class Compare:
    path: Path
    op: str
    value: Any


@dataclass(frozen=True)
class Exists:
    path: Path
    negated: bool = False


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


Node = Compare | Exists | And | Or


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.terms = 0

    def fail(self, what: str, pos: int | None = None) -> QuerySyntaxError:
        at = self.pos if pos is None else pos
        found = repr(self.text[at]) if at < len(self.text) else "end of query"
        return QuerySyntaxError(f"{what}, found {found}", at)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def query(self, depth: int) -> Node:
        items = [self.conjunction(depth)]
        while self.peek() == "|":
            self.pos += 1
            items.append(self.conjunction(depth))
        return items[0] if len(items) == 1 else Or(tuple(items))

    def conjunction(self, depth: int) -> Node:
        items = [self.term(depth)]
        while self.peek() == ";":
            self.pos += 1
            items.append(self.term(depth))
        return items[0] if len(items) == 1 else And(tuple(items))

    def term(self, depth: int) -> Node:
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise self.fail(f"more than {MAX_TERMS} terms")
        if self.peek() == "(":
            if depth >= MAX_DEPTH:
                raise self.fail(f"parentheses nested deeper than {MAX_DEPTH}")
            self.pos += 1
            inner = self.query(depth + 1)
            if self.peek() != ")":
                raise self.fail("expected ')'")
            self.pos += 1
            return inner
        negated = self.peek() == "!" and not self.text.startswith("!~=", self.pos)
        if negated:
            self.pos += 1
        path = self.path()
        op = next((o for o in OPERATORS if self.text.startswith(o, self.pos)), None)
        if op is None or negated:
            if self.peek() not in ("", ";", "|", ")"):
                raise self.fail("expected an operator, ';', '|' or ')'")
            return Exists(path, negated)
        start = self.pos + len(op)
        self.pos = start
        value = self.value(op)
        return Compare(path, op, value)

    def path(self) -> Path:
        start = self.pos
        match = _NAME_RE.match(self.text, self.pos)
        if not match:
            raise self.fail("expected an attribute name")
        self.pos = match.end()
        attr, sub, member = _split_name(match.group(0))
        keys = []
        while self.peek() == "[":
            close = self.text.find("]", self.pos)
            key = self.text[self.pos + 1:close] if close > 0 else ""
            if not key or any(c in key for c in "[;|()"):
                raise self.fail("expected a key and ']'")
            keys.append(key)
            self.pos = close + 1
        if member and keys:
            raise self.fail("a member has no keys", start)
        return Path(attr, sub, member, tuple(keys))

    def value(self, op: str) -> Any:
        start = self.pos
        end = _value_end(self.text, start)
        raw = self.text[start:end]
        self.pos = end
        if not raw:
            raise self.fail("expected a value", start)
        if op in ("~=", "!~="):
            pattern = _literal(raw[1:-1]) if raw.startswith('"') and raw.endswith('"') else raw
            if len(pattern) > MAX_PATTERN:
                raise QuerySyntaxError(f"pattern longer than {MAX_PATTERN}", start)
            try:
                re.compile(pattern)
            except re.error as exc:
                raise QuerySyntaxError(f"invalid pattern ({exc})", start) from None
            return pattern
        parts = _split_outside_quotes(raw, ",")
        if len(parts) > 1:
            if op not in ("==", "!="):
                raise QuerySyntaxError("a value list needs == or !=", start)
            return ValueList(tuple(_scalar(p, start) for p in parts))
        bounds = _split_outside_quotes(raw, "..")
        if len(bounds) == 2:
            if op not in ("==", "!="):
                raise QuerySyntaxError("a range needs == or !=", start)
            return Range(_scalar(bounds[0], start), _scalar(bounds[1], start))
        return _scalar(raw, start)


def _split_name(name: str) -> tuple[str, str | None, str | None]:
    """attr[.sub][.member]: IRIs keep their dots unless what follows is a member."""
    if ":" in name:  # an IRI: dots belong to it, but a trailing member is recognised
        head, _, last = name.rpartition(".")
        return (head, None, last) if head and last in MEMBERS else (name, None, None)
    parts = name.split(".")
    if len(parts) > 3:
        raise QuerySyntaxError(f"too many '.' in {name!r}", 0)
    attr, rest = parts[0], parts[1:]
    member = rest.pop() if rest and rest[-1] in MEMBERS else None
    return attr, (rest[0] if rest else None), member


def _value_end(text: str, start: int) -> int:
    pos, quoted = start, False
    while pos < len(text):
        c = text[pos]
        if c == '"' and (pos == start or text[pos - 1] != "\\" or not quoted):
            quoted = not quoted
        elif not quoted and c in ";|)":
            break
        pos += 1
    return pos


def _split_outside_quotes(raw: str, sep: str) -> list[str]:
    parts, quoted, start, i = [], False, 0, 0
    while i < len(raw):
        if raw[i] == '"' and (i == 0 or raw[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and raw.startswith(sep, i):
            parts.append(raw[start:i])
            i += len(sep)
            start = i
            continue
        i += 1
    parts.append(raw[start:])
    return parts


def _literal(text: str) -> str:
    return text.replace('\\"', '"').replace("\\\\", "\\")


def _scalar(raw: str, pos: int) -> Any:
    if len(raw) >= 2 and raw[0] == '"' and raw[-1] == '"':
        return _literal(raw[1:-1])
    if not raw or _BARE_FORBIDDEN_RE.search(raw):
        raise QuerySyntaxError(f"malformed value {raw!r} (quote strings with \")", pos)
    if raw in ("true", "false"):
        return raw == "true"
    if _NUMBER_RE.match(raw):
        return float(raw) if any(c in raw for c in ".eE") else int(raw)
    if _is_datetime(raw):
        return DateTime(raw)
    return raw  # an unquoted URI or word (relationship objects are written so)


def _is_datetime(raw: str) -> bool:
    try:
        datetime.fromisoformat(raw)
    except ValueError:
        return False
    return raw[:1].isdigit() and ("-" in raw or ":" in raw)


def parse_q(text: str) -> Node:
    if len(text) > MAX_Q_LENGTH:
        raise QuerySyntaxError(f"longer than {MAX_Q_LENGTH} characters", MAX_Q_LENGTH)
    parser = _Parser(text)
    node = parser.query(0)
    if parser.pos != len(text):
        raise parser.fail("unexpected character")
    return node


def expand_names(node: Node, expand: Callable[[str], str]) -> Node:
    if isinstance(node, (And, Or)):
        return type(node)(tuple(expand_names(i, expand) for i in node.items))
    path = replace(node.path, attr=expand(node.path.attr),
                   sub=expand(node.path.sub) if node.path.sub else None)
    return replace(node, path=path)


def attribute_names(node: Node) -> set[str]:
    if isinstance(node, (And, Or)):
        return set().union(*(attribute_names(i) for i in node.items))
    return {node.path.attr}
