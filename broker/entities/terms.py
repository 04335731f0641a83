"""What the entity core needs of a compiled @context (broker.ld.TermMap provides it)."""

from __future__ import annotations

from typing import Protocol


class Terms(Protocol):
    """Term expansion and compaction with @vocab semantics (docs/internals.md, "Terms")."""

    def expand(self, term: str) -> str:
        """The IRI of a term; unknown terms go to the default context's vocabulary."""
        ...

    def compact(self, iri: str) -> str:
        """The shortest term for an IRI (the IRI itself if no term names it)."""
        ...
