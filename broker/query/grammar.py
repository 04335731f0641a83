"""The boolean layer that the q and scopeQ languages share (ETSI GS CIM 009 v1.9.1 clauses 4.9
and 4.19), as a recursive-descent parser over a character cursor:

    query       = conjunction *( "|" conjunction )   ; ";" (and) binds tighter than "|" (or)
    conjunction = term *( ";" term )
    term        = "(" query ")" / atom              ; atom: the language's own

A language subclasses `BooleanParser`, names its error class, limits and node constructors,
and parses one atom. Errors carry the 0-based position of the offending character. Pure.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import ClassVar, Generic, TypeVar

from broker.errors import BadRequestData

N = TypeVar("N")


class PositionedSyntaxError(BadRequestData):
    """A query that does not parse; `position` is the 0-based offending index."""

    language: ClassVar[str]  # the parameter's name, which starts the detail: "q: ..."

    def __init__(self, detail: str, position: int) -> None:
        super().__init__(f"{self.language}: {detail} at position {position}")
        self.position = position


class BooleanParser(ABC, Generic[N]):
    """`;`/`|`/parentheses over a language's atoms, with bounded nesting and term count."""

    syntax_error: ClassVar[type[PositionedSyntaxError]]
    max_depth: ClassVar[int]  # parenthesis nesting: bounds the parser's recursion
    max_terms: ClassVar[int]  # atoms per query: bounds evaluation and SQL size
    terms_name: ClassVar[str]  # what an atom is called in "more than N <terms_name>"
    names_whitespace: ClassVar[bool] = False  # "found whitespace" rather than "found ' '"

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.terms = 0

    @classmethod
    def parse(cls, text: str, max_length: int) -> N:
        """The AST of the whole text, or the language's syntax error."""
        if len(text) > max_length:
            raise cls.syntax_error(f"longer than {max_length} characters", max_length)
        parser = cls(text)
        node = parser.query(0)
        if parser.pos != len(text):
            raise parser.error()
        return node

    # --- the cursor ----------------------------------------------------------------------

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def describe(self, pos: int | None = None) -> str:
        """The character at pos (default: the cursor) as an error message names it."""
        at = self.pos if pos is None else pos
        if at >= len(self.text):
            return "end of query"
        char = self.text[at]
        return "whitespace" if self.names_whitespace and char.isspace() else repr(char)

    def error(self, what: str | None = None, pos: int | None = None) -> PositionedSyntaxError:
        at = self.pos if pos is None else pos
        return self.syntax_error(what or f"unexpected {self.describe(at)}", at)

    def expected(self, what: str) -> PositionedSyntaxError:
        return self.error(f"expected {what}, found {self.describe()}")

    # --- the boolean layer ---------------------------------------------------------------

    def query(self, depth: int) -> N:
        return self._joined("|", self.conjunction, self.any_of, depth)

    def conjunction(self, depth: int) -> N:
        return self._joined(";", self.term, self.all_of, depth)

    def _joined(self, joiner: str, operand: Callable[[int], N],
                combine: Callable[[Sequence[N]], N], depth: int) -> N:
        items = [operand(depth)]
        while self.peek() == joiner:
            self.pos += 1
            items.append(operand(depth))
        return items[0] if len(items) == 1 else combine(items)

    def term(self, depth: int) -> N:
        if self.peek() == "(":
            if depth >= self.max_depth:
                raise self.error(f"parentheses nested deeper than {self.max_depth}")
            self.pos += 1
            inner = self.query(depth + 1)
            if self.peek() != ")":
                raise self.expected("')'")
            self.pos += 1
            return inner
        self.terms += 1
        if self.terms > self.max_terms:
            raise self.error(f"more than {self.max_terms} {self.terms_name}")
        return self.atom()

    # --- what a language provides ----------------------------------------------------------

    @abstractmethod
    def atom(self) -> N:
        """One atom at the cursor, the cursor moved past it."""

    @abstractmethod
    def all_of(self, items: Sequence[N]) -> N:
        """The node for items joined by ';'."""

    @abstractmethod
    def any_of(self, items: Sequence[N]) -> N:
        """The node for items joined by '|'."""
