"""Media types, the JSON-LD Link header and Accept negotiation (clause 6.3.4-6.3.6). Pure."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from broker.entities.rdf import N_QUADS, TURTLE
from broker.errors import BadRequestData, HttpError

JSON = "application/json"
JSON_LD = "application/ld+json"
GEO_JSON = "application/geo+json"
MERGE_PATCH = "application/merge-patch+json"
CONTEXT_REL = "http://www.w3.org/ns/json-ld#context"
# Linked-data representations of entities (RDF 1.1 Turtle and N-Quads), after the JSON ones.
RDF_TYPES = (TURTLE, N_QUADS)

# Media types a request body may carry (clause 6.3.4); merge-patch is allowed on PATCH (5.6.17).
BODY_TYPES = frozenset({JSON, JSON_LD, MERGE_PATCH})

_LINK_RE = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]+)*)")
_PARAM_RE = re.compile(r';\s*([A-Za-z0-9_*-]+)\s*=\s*("([^"]*)"|[^;,\s]+)')


def media_type(header: str | None) -> str:
    """The bare, lower-cased media type of a Content-Type or Accept item ("" if absent)."""
    return (header or "").split(";", 1)[0].strip().lower()


def context_from_link(headers: Iterable[str]) -> str | None:
    """The @context URL of the JSON-LD Link header, if any.

    Links with another rel are ignored (real clients send them). JSON-LD allows only one context
    link (JSON-LD 1.1 API §9.4.2 / spec annex C.7): two of them are a BadRequestData.
    """
    found: list[str] = []
    for header in headers:
        for match in _LINK_RE.finditer(header):
            params = {
                m.group(1).lower(): (m.group(3) if m.group(3) is not None else m.group(2))
                for m in _PARAM_RE.finditer(match.group(2))
            }
            if params.get("rel") == CONTEXT_REL:
                found.append(match.group(1).strip())
    if len(found) > 1:
        raise BadRequestData("More than one JSON-LD context Link header")
    if found and not found[0]:
        raise BadRequestData("Empty JSON-LD context Link header")
    return found[0] if found else None


def link_header(context_url: str) -> str:
    return f'<{context_url}>; rel="{CONTEXT_REL}"; type="{JSON_LD}"'


def _accept_items(header: str) -> list[tuple[str, float, int]]:
    items = []
    for index, part in enumerate(header.split(",")):
        kind = media_type(part)
        if not kind:
            continue
        quality = 1.0
        for param in part.split(";")[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = 0.0
        items.append((kind, quality, index))
    return items


def negotiate(accept: str | None, offered: Sequence[str]) -> str:
    """The response media type for an Accept header among `offered` (first = preferred default).

    Wildcards pick the first offered type they cover (*/* the first of all, text/* the first
    text one), so a client that accepts anything still gets JSON. Nothing acceptable: 406.
    """
    if not accept or not accept.strip():
        return offered[0]
    best: tuple[float, int, int] | None = None
    chosen = ""
    for kind, quality, index in _accept_items(accept):
        if quality <= 0:
            continue
        if kind.endswith("/*"):
            major = kind[:-1]
            candidate = next((o for o in offered if kind == "*/*" or o.startswith(major)), "")
            if not candidate:
                continue
            rank = 1
        elif kind in offered:
            candidate, rank = kind, 2
        else:
            continue
        key = (quality, rank, -index)
        if best is None or key > best:
            best, chosen = key, candidate
    if not chosen:
        raise HttpError(406, f"None of the accepted media types ({accept}) can be served; "
                        f"offered: {', '.join(offered)}")
    return chosen
