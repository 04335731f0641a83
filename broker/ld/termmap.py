"""A compiled JSON-LD @context: term expansion and compaction as dictionary lookups. Pure.

NGSI-LD needs only a sliver of JSON-LD processing: entity types, attribute names and
VocabProperty values are expanded relative to the vocabulary (JSON-LD 1.1 IRI expansion with
vocab=true), and compacted back on the way out. A full JSON-LD processor per request would cost
milliseconds; instead each distinct @context is compiled once into a TermMap.

The core context is applied last and wins: it is @protected (JSON-LD 1.1 §4.1.11), so a user
context cannot redefine `location` or `type`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from broker.ld.core import DEFAULT_VOCAB, core_document

# An absolute IRI has a scheme (RFC 3986 §3.1); "prefix:suffix" is absolute unless prefix is a term.
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")


class TermMap:
    """Term ↔ IRI mappings of one active context. Immutable once built; shared across requests."""

    __slots__ = ("_compact_cache", "_expand_cache", "_prefixes", "_reverse", "_terms", "_vocab")

    def __init__(self, terms: Mapping[str, str], vocab: str) -> None:
        self._terms = dict(terms)
        self._vocab = vocab
        reverse: dict[str, str] = {}
        for term, iri in self._terms.items():
            best = reverse.get(iri)
            if best is None or (len(term), term) < (len(best), best):
                reverse[iri] = term
        self._reverse = reverse
        # Terms whose IRI ends in a gen-delim can serve as compact-IRI prefixes (JSON-LD 1.1 §4.4).
        self._prefixes = [(iri, term) for iri, term in reverse.items()
                          if iri.endswith(("/", "#", ":")) and ":" not in term]
        self._expand_cache: dict[str, str] = {}
        self._compact_cache: dict[str, str] = {}

    def expand(self, term: str) -> str:
        """The IRI of a term, with @vocab semantics (unknown terms go to the vocabulary)."""
        hit = self._expand_cache.get(term)
        if hit is None:
            hit = self._expand(term)
            if len(self._expand_cache) < 100_000:
                self._expand_cache[term] = hit
        return hit

    def _expand(self, term: str) -> str:
        if term in self._terms:
            return self._terms[term]
        prefix, colon, suffix = term.partition(":")
        if colon and prefix in self._terms and not suffix.startswith("//"):
            return self._terms[prefix] + suffix
        if _SCHEME_RE.match(term):
            return term
        return self._vocab + term

    def compact(self, iri: str) -> str:
        """The shortest term for an IRI: a term, a compact IRI, a vocabulary-relative term."""
        hit = self._compact_cache.get(iri)
        if hit is None:
            hit = self._compact(iri)
            if len(self._compact_cache) < 100_000:
                self._compact_cache[iri] = hit
        return hit

    def _compact(self, iri: str) -> str:
        term = self._reverse.get(iri)
        if term is not None:
            return term
        if iri.startswith(self._vocab):
            rest = iri[len(self._vocab):]
            if rest and self.expand(rest) == iri:
                return rest
        best = iri
        for prefix_iri, prefix in self._prefixes:
            if iri.startswith(prefix_iri) and len(iri) > len(prefix_iri):
                candidate = f"{prefix}:{iri[len(prefix_iri):]}"
                if len(candidate) < len(best) and self.expand(candidate) == iri:
                    best = candidate
        return best

    def __len__(self) -> int:
        return len(self._terms)


def _definition_iri(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        iri = value.get("@id")
        return iri if isinstance(iri, str) else None
    return None


def compile_context(local_contexts: Sequence[Mapping[str, Any]]) -> TermMap:
    """Compile resolved context objects (user contexts in order, then the core one, which wins).

    Each item is the object of an "@context" (term definitions); URLs must already be resolved.
    """
    raw: dict[str, str] = {}
    vocab = DEFAULT_VOCAB
    for ctx in [*local_contexts, _core_object()]:
        protected = ctx is _core_object()
        if isinstance(ctx.get("@vocab"), str):
            vocab = ctx["@vocab"]
        for term, definition in ctx.items():
            if term.startswith("@"):
                continue
            iri = _definition_iri(definition)
            if iri is None or iri.startswith("@"):
                continue
            if protected or term not in _core_terms():
                raw[term] = iri
    # Resolve compact IRIs in definitions ("ngsi-ld:location") against the prefixes defined.
    resolved: dict[str, str] = {}
    for term, iri in raw.items():
        resolved[term] = _resolve(iri, raw, vocab)
    return TermMap(resolved, vocab)


def _resolve(iri: str, raw: Mapping[str, str], vocab: str, depth: int = 0) -> str:
    prefix, colon, suffix = iri.partition(":")
    if colon and prefix in raw and not suffix.startswith("//") and depth < 8:
        return _resolve(raw[prefix], raw, vocab, depth + 1) + suffix
    if colon:
        return iri
    return vocab + iri  # a relative term definition is vocab-relative


@cache
def _core_object() -> Mapping[str, Any]:
    ctx = core_document()["@context"]
    return ctx if isinstance(ctx, dict) else {}


@cache
def _core_terms() -> frozenset[str]:
    return frozenset(t for t in _core_object() if not t.startswith("@"))


CORE_TERMS = compile_context([])
