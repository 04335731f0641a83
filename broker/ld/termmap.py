"""A compiled JSON-LD @context: term expansion and compaction as dictionary lookups. Pure.

NGSI-LD needs only a sliver of JSON-LD processing: entity types, attribute names and the values
of vocabulary-typed members (VocabProperty's "vocab", "objectType", ...) are expanded relative
to the vocabulary (JSON-LD 1.1 API §5.2 IRI expansion with vocab=true) and compacted back on the
way out (§6.2 IRI compaction, vocab=true). A JSON-LD processor per request would cost
milliseconds; instead each distinct @context is compiled once into a TermMap, whose `expand` and
`compact` are a dict lookup in the common case.

The core context is applied last and wins (NGSI-LD clause 5.5.7: it is appended to every
@context and is @protected), so a user context cannot redefine `location` or `type`, and the
vocabulary in force is always the core one (the NGSI-LD default context).

Supported: simple and expanded term definitions, compact IRIs (only terms with the JSON-LD 1.1
prefix flag act as prefixes), terms defined through other terms in any order, @vocab, keyword
aliases (id -> @id), null definitions, "@type": "@vocab". Ignored: scoped contexts, @base,
@language, @container and the like, which never change how NGSI-LD names expand.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from broker.errors import BadRequestData
from broker.ld.core import DEFAULT_VOCAB, core_document

# Per-TermMap memo of computed (non-term) expansions and compactions. Bounded because the names
# come from clients: 512 cached maps x this many short strings stays a few tens of MB at worst.
MEMO_LIMIT = 1024

# Terms defined through terms ("a": "b", "b": "c", ...): real contexts chain two or three; the
# bound keeps a hostile inline @context from exhausting the stack.
MAX_CHAIN = 64

# An absolute IRI has a scheme (RFC 3986 §3.1).
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
# JSON-LD 1.1 §1.7 keywords (the "@" forms aliases may point at).
_KEYWORDS = frozenset({
    "@base", "@container", "@context", "@direction", "@graph", "@id", "@import", "@included",
    "@index", "@json", "@language", "@list", "@nest", "@none", "@prefix", "@propagate",
    "@protected", "@reverse", "@set", "@type", "@value", "@version", "@vocab",
})
# RFC 3986 gen-delims: a simple term whose IRI ends in one of these may act as a prefix
# (JSON-LD 1.1 API §4.2.2 step 14.2.5, the "prefix flag").
_GEN_DELIMS = (":", "/", "?", "#", "[", "]", "@")


class TermMap:
    """Term <-> IRI mappings of one active context. Immutable once built; share it freely across
    requests and tasks (the memo dicts only ever gain entries that are pure functions of it)."""

    __slots__ = ("_compact_memo", "_expand_memo", "_keywords", "_prefixes", "_reverse",
                 "_terms", "_vocab", "_vocab_valued")
    _terms: dict[str, str]
    _vocab: str
    _keywords: dict[str, str]
    _vocab_valued: frozenset[str]
    _reverse: dict[str, str]
    _prefixes: tuple[tuple[str, str], ...]  # (IRI, prefix term), shortest term first
    _expand_memo: dict[str, str]
    _compact_memo: dict[str, str]

    def __init__(
        self,
        terms: Mapping[str, str],
        *,
        vocab: str = DEFAULT_VOCAB,
        prefixes: Iterable[str] = (),
        vocab_valued: Iterable[str] = (),
        keywords: Mapping[str, str] | None = None,
    ) -> None:
        """`terms`: term -> absolute IRI; `prefixes`: the terms usable in compact IRIs;
        `vocab_valued`: IRIs whose string values are expanded as vocabulary ("@type": "@vocab");
        `keywords`: keyword aliases, term -> "@id" / "@type"."""
        init = object.__setattr__
        init(self, "_terms", dict(terms))
        init(self, "_vocab", vocab)
        init(self, "_keywords", dict(keywords or {}))
        init(self, "_vocab_valued", frozenset(vocab_valued))
        # JSON-LD term selection: the shortest term, then the lexicographically least one.
        reverse: dict[str, str] = {}
        for term, iri in [*self._terms.items(), *((t, k) for t, k in self._keywords.items())]:
            best = reverse.get(iri)
            if best is None or (len(term), term) < (len(best), best):
                reverse[iri] = term
        init(self, "_reverse", reverse)
        init(self, "_prefixes", tuple(sorted(
            ((self._terms[p], p) for p in set(prefixes) if p in self._terms),
            key=lambda item: (len(item[1]), item[1]))))
        init(self, "_expand_memo", {})
        init(self, "_compact_memo", {})

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("TermMap is immutable")

    def __len__(self) -> int:
        return len(self._terms)

    def __repr__(self) -> str:
        return f"<TermMap {len(self._terms)} terms, vocab {self._vocab}>"

    @property
    def vocab(self) -> str:
        return self._vocab

    @property
    def terms(self) -> Mapping[str, str]:
        """Every defined term and its IRI (read-only)."""
        return MappingProxyType(self._terms)

    @property
    def vocab_valued(self) -> frozenset[str]:
        """IRIs of the members whose values are vocabulary terms ("@type": "@vocab")."""
        return self._vocab_valued

    def expands_values(self, iri: str) -> bool:
        """Whether string values of this (expanded) member are expanded like terms."""
        return iri in self._vocab_valued

    # -- expansion ----------------------------------------------------------------------------
    def expand(self, term: str) -> str:
        """The IRI of a term, with vocabulary semantics: a defined term gives its IRI, a compact
        IRI its expansion, an absolute IRI itself, anything else the vocabulary IRI + term."""
        iri = self._terms.get(term)
        if iri is not None:
            return iri
        iri = self._expand_memo.get(term)
        if iri is None:
            iri = self._expand(term)
            if len(self._expand_memo) < MEMO_LIMIT:
                self._expand_memo[term] = iri
        return iri

    def _expand(self, term: str) -> str:
        keyword = self._keywords.get(term)
        if keyword is not None:
            return keyword
        if term in _KEYWORDS:
            return term
        prefix, colon, suffix = term.partition(":")
        if colon and prefix:
            if prefix == "_" or suffix.startswith("//"):
                return term  # a blank node or an absolute IRI with an authority
            for prefix_iri, name in self._prefixes:
                if name == prefix:
                    return prefix_iri + suffix
        if _SCHEME_RE.match(term):
            return term
        return self._vocab + term

    # -- compaction ---------------------------------------------------------------------------
    def compact(self, iri: str) -> str:
        """The shortest name for an IRI: a term mapped to it, else the vocabulary-relative name,
        else the shortest compact IRI, else the IRI itself. Always expands back to `iri`."""
        term = self._reverse.get(iri)
        if term is not None:
            return term
        term = self._compact_memo.get(iri)
        if term is None:
            term = self._compact(iri)
            if len(self._compact_memo) < MEMO_LIMIT:
                self._compact_memo[iri] = term
        return term

    def _compact(self, iri: str) -> str:
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


# -- compilation -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Definition:
    iri: str
    prefix: bool  # usable as the prefix of a compact IRI
    vocab_values: bool  # "@type": "@vocab"


class _Active:
    """The active context while compiling: what the contexts processed so far define."""

    def __init__(self) -> None:
        self.terms: dict[str, _Definition] = {}
        self.keywords: dict[str, str] = {}
        self.vocab: str | None = DEFAULT_VOCAB

    def forget(self, term: str) -> None:
        self.terms.pop(term, None)
        self.keywords.pop(term, None)


class _LocalContext:
    """One context object applied to the active context (JSON-LD 1.1 API §4.1 and §4.2, the
    parts that matter here). Terms may refer to each other in any order; cycles are errors."""

    def __init__(self, active: _Active, local: Mapping[str, Any]) -> None:
        self.active = active
        self.local = local
        self.defined: dict[str, bool] = {}  # False while a term's definition is in progress
        self.depth = 0  # definitions in progress

    def apply(self) -> None:
        if "@vocab" in self.local:
            vocab = self.local["@vocab"]
            if vocab is not None and not isinstance(vocab, str):
                raise BadRequestData("@vocab in an @context must be a string or null")
            self.active.vocab = None if vocab is None else self.expand(vocab)
        for term in self.local:
            if not term.startswith("@"):
                self.define(term)

    def define(self, term: str) -> None:
        state = self.defined.get(term)
        if state is True:
            return
        if state is False:
            raise BadRequestData(f"@context term {term!r} is defined in terms of itself")
        if self.depth >= MAX_CHAIN:
            raise BadRequestData(f"@context term {term!r} is defined through too many terms")
        self.defined[term] = False
        self.depth += 1
        self._define(term, self.local[term])
        self.depth -= 1
        self.defined[term] = True

    def _define(self, term: str, value: Any) -> None:
        self.active.forget(term)
        if value is None:
            return  # a null definition decouples the term from @vocab: left undefined here
        if isinstance(value, str):
            id_value: Any = value
            simple, type_, prefix_flag = True, None, None
        elif isinstance(value, dict):
            id_value = value.get("@id", term)
            simple, type_, prefix_flag = False, value.get("@type"), value.get("@prefix")
        else:
            raise BadRequestData(f"@context term {term!r}: a definition is a string or an object")
        if id_value is None or not isinstance(id_value, str):
            return
        if id_value.startswith("@"):
            if id_value in _KEYWORDS:
                self.active.keywords[term] = id_value
            return  # "@"-forms that are not keywords are ignored (JSON-LD 1.1 §4.2.2 14.2.1)
        iri = self.expand(id_value, defining=term)
        if ":" not in iri:
            raise BadRequestData(f"@context term {term!r} does not map to an IRI")
        if simple:
            prefix = ":" not in term and "/" not in term and iri.endswith(_GEN_DELIMS)
        else:
            prefix = prefix_flag is True and ":" not in term and "/" not in term
        self.active.terms[term] = _Definition(iri, prefix, type_ == "@vocab")

    def expand(self, value: str, defining: str | None = None) -> str:
        """IRI expansion with vocab=true against the active context, defining the terms of this
        local context that `value` depends on first."""
        if value != defining and value in self.local and not value.startswith("@"):
            self.define(value)
        found = self.active.terms.get(value)
        if found is not None:
            return found.iri
        prefix, colon, suffix = value.partition(":")
        if colon and prefix:
            if prefix == "_" or suffix.startswith("//"):
                return value
            if prefix != defining and prefix in self.local:
                self.define(prefix)
            base = self.active.terms.get(prefix)
            if base is not None and base.prefix:
                return base.iri + suffix
            return value
        return value if self.active.vocab is None else self.active.vocab + value


def compile_context(
    local_contexts: Sequence[Mapping[str, Any]], *, core: Mapping[str, Any] | None = None
) -> TermMap:
    """Compile resolved context objects, in order, followed by the core one, which wins.

    Each item is the object of an "@context" (term definitions); URLs must already be resolved
    (broker.ld.resolver). `core` defaults to the built-in NGSI-LD core context.
    """
    active = _Active()
    for local in [*local_contexts, core if core is not None else core_object()]:
        _LocalContext(active, local).apply()
    definitions = active.terms
    return TermMap(
        {term: d.iri for term, d in definitions.items()},
        vocab=active.vocab or DEFAULT_VOCAB,
        prefixes=[term for term, d in definitions.items() if d.prefix],
        vocab_valued={d.iri for d in definitions.values() if d.vocab_values},
        keywords=active.keywords,
    )


def core_object() -> Mapping[str, Any]:
    """The object of the built-in core context's "@context"."""
    ctx: Mapping[str, Any] = core_document()["@context"]
    return ctx


CORE_TERMS: TermMap = compile_context([])
"""The core context alone: what a request without a user @context uses."""
