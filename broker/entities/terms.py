"""What the entity core needs of a compiled @context (broker.ld.TermMap provides it)."""

from __future__ import annotations

from typing import Protocol


class Terms(Protocol):
    def expand(self, term: str) -> str:
        """The IRI of a term (vocabulary-relative)."""

    def compact(self, iri: str) -> str:
        """The shortest term for an IRI."""
