"""The scope query language, scopeQ (ETSI GS CIM 009 v1.9.1 clauses 4.19 and 4.9), as pure
functions.

    scopeQ   = term *( (";" / "|") term )   ; ";" (and) binds tighter than "|" (or)
    term     = "(" scopeQ ")" / pattern
    pattern  = "/#" / 1*( "/" level ) [ "/#" ]
    level    = name / "+"                   ; "+" is any one level

`/a/b` matches the scope /a/b only; `/a/+` a scope one level below /a (/a/x, not /a nor
/a/x/y); `/a/#` /a itself and every scope below it; `/#` any scope, i.e. every entity that has
one. A pattern matches an entity when one of the entity's scopes matches it; `;` and `|`
combine patterns, each of which may be matched by a different scope of the entity.

Errors are ScopeQuerySyntaxError (a BadRequestData) with the 0-based offending position; the
`;`/`|`/parentheses layer is broker/query/grammar.py's.
Engines compile a `Pattern` with `literal_prefix` (an index range) and `regex` (the exact test
where a `+` remains); `matches` is the reference evaluator.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from broker.query.grammar import BooleanParser, PositionedSyntaxError

MAX_SCOPEQ_LENGTH = 4096  # as for q: a URL parameter beyond this is abuse
MAX_DEPTH = 32  # parenthesis nesting: bounds the parser's recursion
MAX_TERMS = 64  # patterns per query: each is one indexed subquery
ANY_LEVEL = "+"
SUBTREE = "#"

# A scope level (broker/entities/values.py _SCOPE_RE) without the scopeQ operators.
_LEVEL_RE = re.compile(r"[^/#+;|()<>\"'=\s\x00-\x1f\x7f]+")


class ScopeQuerySyntaxError(PositionedSyntaxError):
    """A scopeQ that does not parse; `position` is the 0-based offending index."""

    language = "scopeQ"


@dataclass(frozen=True)
class Pattern:
    """A scope pattern: its levels ("+" for any one level) and whether it ends in "/#"."""

    levels: tuple[str, ...]
    subtree: bool = False


@dataclass(frozen=True)
class ScopeAnd:
    items: tuple[ScopeNode, ...]


@dataclass(frozen=True)
class ScopeOr:
    items: tuple[ScopeNode, ...]


ScopeNode = Pattern | ScopeAnd | ScopeOr


class _Parser(BooleanParser[ScopeNode]):
    syntax_error = ScopeQuerySyntaxError
    max_depth = MAX_DEPTH
    max_terms = MAX_TERMS
    terms_name = "scope patterns"

    def all_of(self, items: Sequence[ScopeNode]) -> ScopeNode:
        return ScopeAnd(tuple(items))

    def any_of(self, items: Sequence[ScopeNode]) -> ScopeNode:
        return ScopeOr(tuple(items))

    def atom(self) -> ScopeNode:
        return self.pattern()

    def pattern(self) -> Pattern:
        if self.peek() != "/":
            raise self.expected("a scope starting with '/'")
        levels: list[str] = []
        while self.peek() == "/":
            self.pos += 1
            char = self.peek()
            if char == SUBTREE:
                self.pos += 1
                if self.peek() == "/":
                    raise self.error("'#' must be the last level")
                return Pattern(tuple(levels), subtree=True)
            if char == ANY_LEVEL:
                self.pos += 1
                levels.append(ANY_LEVEL)
                continue
            match = _LEVEL_RE.match(self.text, self.pos)
            if match is None:
                raise self.expected("a scope level, '+' or '#'")
            levels.append(match.group())
            self.pos = match.end()
        if self.peek() in ("+", "#"):
            raise self.error(f"{self.peek()!r} must be a whole level")
        return Pattern(tuple(levels))


def parse_scopeq(text: str) -> ScopeNode:
    """The AST of a scopeQ, or ScopeQuerySyntaxError."""
    return _Parser.parse(text, MAX_SCOPEQ_LENGTH)


# --- compiling helpers for engines -----------------------------------------------------------


def literal_prefix(pattern: Pattern) -> str:
    """The scope path before the first wildcard: "/a/b" for /a/b/+/c, "" for /+ or /#."""
    literal: list[str] = []
    for level in pattern.levels:
        if level == ANY_LEVEL:
            break
        literal.append(level)
    return "".join("/" + level for level in literal)


def is_exact(pattern: Pattern) -> bool:
    """Whether the pattern names one scope (an equality on the index)."""
    return not pattern.subtree and ANY_LEVEL not in pattern.levels


def regex(pattern: Pattern) -> str:
    """A regular expression (Python `re`, for `search`) matching exactly the pattern's scopes."""
    body = "".join("/[^/]+" if level == ANY_LEVEL else "/" + re.escape(level)
                   for level in pattern.levels)
    return "^" + body + ("(?:/.*)?" if pattern.subtree else "") + r"\Z"


# --- reference evaluation --------------------------------------------------------------------


def pattern_matches(pattern: Pattern, scope: str) -> bool:
    """Whether one scope (such as /Craiova/Centru) matches a pattern."""
    levels = scope.split("/")[1:]
    if len(levels) < len(pattern.levels) or (
            len(levels) > len(pattern.levels) and not pattern.subtree):
        return False
    return all(want in (ANY_LEVEL, have) for want, have in zip(pattern.levels, levels,
                                                               strict=False))


def matches(node: ScopeNode, scopes: list[str] | tuple[str, ...]) -> bool:
    """Whether an entity with these scopes satisfies the scopeQ."""
    if isinstance(node, ScopeAnd):
        return all(matches(item, scopes) for item in node.items)
    if isinstance(node, ScopeOr):
        return any(matches(item, scopes) for item in node.items)
    return any(pattern_matches(node, scope) for scope in scopes)


def unparse(node: ScopeNode) -> str:
    """The scopeQ text of a tree; parse_scopeq(unparse(t)) == t."""
    if isinstance(node, Pattern):
        text = "".join("/" + level for level in node.levels)
        return text + "/#" if node.subtree else text
    joiner = ";" if isinstance(node, ScopeAnd) else "|"
    parts = []
    for item in node.items:
        text = unparse(item)
        grouped = isinstance(item, ScopeOr) or (isinstance(item, ScopeAnd)
                                                and isinstance(node, ScopeAnd))
        parts.append(f"({text})" if grouped else text)
    return joiner.join(parts)
