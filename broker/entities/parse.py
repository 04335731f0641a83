"""From request payloads to the internal entity form (docs/internals.md). Pure.

Accepts the normalized and concise representations (clause 4.5) and, where asked, keyValues.
Validation is strict: anything the broker could not render back faithfully is refused with a
BadRequestData naming the attribute and the fault, before anything is stored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from broker.entities.clock import normalize_datetime
from broker.entities.geometry import check_geometry, is_geometry
from broker.entities.kinds import (
    GEOMETRY_TYPES,
    IGNORED,
    KIND_BY_MEMBER,
    NULL,
    RELATIONSHIPS,
    VALUE_MEMBER,
    VALUE_MEMBERS,
)
from broker.entities.terms import Terms
from broker.errors import BadRequestData

Instance = dict[str, Any]

MAX_DEPTH = 32  # JSON nesting of one entity; deeper is a mistake or an attack
MAX_NAME_LENGTH = 256
# RFC 3986 scheme, then no whitespace or characters that are never literal in a URI.
_URI_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"{}|\\^`]+$")
# Clause 4.6.2: these characters are forbidden in names (they break q and HTTP query strings).
_FORBIDDEN_NAME_RE = re.compile(r"[<>\"'=;()\s\x00-\x1f\x7f]")
_SCOPE_RE = re.compile(r"^/[^\s/#+]+(/[^\s/#+]+)*$")
_LANG_RE = re.compile(r"^(@none|[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*)$")
ENTITY_MEMBERS = frozenset({"id", "@id", "type", "@type", "scope", "createdAt", "modifiedAt",
                            "deletedAt"})
_GEOMETRY_TYPES = tuple(sorted(GEOMETRY_TYPES))  # a tuple: `in` compares, never hashes
_RESERVED_NAMES = frozenset({"id", "@id", "type", "@type", "@context", "scope"})


def require_uri(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _URI_RE.match(value):
        raise BadRequestData(f"{what} {value!r} is not a URI")
    return value


def _no_aliases(body: dict[str, Any]) -> None:
    for member in ("id", "type"):
        if member in body and "@" + member in body:
            raise BadRequestData(f"Both {member} and @{member} given: use one")


def _check_depth(body: Any) -> None:
    stack = [(body, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise BadRequestData(f"JSON nesting deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)


def _check_name(name: str, where: str = "attribute") -> None:
    if name in _RESERVED_NAMES or name.startswith("@"):
        raise BadRequestData(f"{name!r} cannot be used as an {where} name")
    if not name or len(name) > MAX_NAME_LENGTH or _FORBIDDEN_NAME_RE.search(name):
        raise BadRequestData(f"Invalid {where} name {name!r}")


def _types(value: Any, terms: Terms) -> list[str]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(t, str) and t for t in items):
        raise BadRequestData("Entity type must be a non-empty string or list of strings")
    for t in items:
        _check_name(t, "entity type") if ":" not in t else require_uri(t, "Entity type")
    return list(dict.fromkeys(terms.expand(t) for t in items))


def _scope(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(s, str) and _SCOPE_RE.match(s) for s in items):
        raise BadRequestData(f"Invalid scope {value!r}: scopes look like /Craiova/Centru")
    return list(dict.fromkeys(items))


# -- value members, one checker per kind (clause 4.5) ------------------------------------------

def _uri_list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list):
        raise BadRequestData(f"{where}: objectList must be a list of URIs")
    out = []
    for item in value:
        if isinstance(item, dict) and set(item) == {"object"}:
            item = item["object"]
        out.append(require_uri(item, f"{where}: object"))
    return out


def _object(value: Any, where: str) -> Any:
    if isinstance(value, list):
        if not value:
            raise BadRequestData(f"{where}: object must not be empty")
        return [require_uri(v, f"{where}: object") for v in value]
    return require_uri(value, f"{where}: object")


def _language_map(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not value:
        raise BadRequestData(f"{where}: languageMap must be an object of language tags")
    for tag, text in value.items():
        ok = isinstance(text, str) or (isinstance(text, list) and all(isinstance(t, str)
                                                                      for t in text))
        if not _LANG_RE.match(tag) or not ok:
            raise BadRequestData(f"{where}: languageMap maps language tags to strings")
    return value


def _not_null(value: Any, where: str) -> Any:
    if value is None:
        raise BadRequestData(f"{where}: value must not be null")
    return value


def _geo(value: Any, where: str) -> Any:
    check_geometry(value, where)
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise BadRequestData(f"{where}: valueList must be a list")
    return value


def _any(value: Any, where: str) -> Any:
    return value


def _vocab(value: Any, where: str) -> Any:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, str) and v for v in items):
        raise BadRequestData(f"{where}: vocab must be a string or a list of strings")
    return value


_VALUE_CHECKS = {
    "Property": _not_null,
    "GeoProperty": _geo,
    "Relationship": _object,
    "LanguageProperty": _language_map,
    "VocabProperty": _vocab,
    "JsonProperty": _any,
    "ListProperty": _list,
    "ListRelationship": _uri_list,
}


def check_value(kind: str, value: Any, where: str) -> Any:
    """The value member of a `kind` attribute, checked (clause 4.5); BadRequestData if wrong."""
    return _VALUE_CHECKS[kind](value, where)


# -- instances ---------------------------------------------------------------------------------

def _is_null(raw: Any) -> bool:
    if raw == NULL or raw is None:
        return True
    if isinstance(raw, dict):
        members = [raw[m] for m in VALUE_MEMBERS if m in raw]
        return len(members) == 1 and members[0] == NULL
    return False


def _kind_of(raw: dict[str, Any], where: str, partial: bool) -> str | None:
    kind = raw.get("type")
    if kind is not None:
        if isinstance(kind, str) and kind in VALUE_MEMBER:
            return kind
        raise BadRequestData(f"{where}: {kind!r} is not an attribute type")
    for member, inferred in KIND_BY_MEMBER:
        if member in raw:
            if inferred == "Property" and is_geometry(raw["value"]):
                return "GeoProperty"
            return inferred
    if partial:
        return None
    raise BadRequestData(f"{where}: an attribute needs a value (value, object, languageMap, "
                         "vocab, json, valueList or objectList)")


@dataclass(frozen=True)
class _Ctx:
    terms: Terms
    now: str
    allow_null: bool = False


def _instance(name: str, raw: Any, ctx: _Ctx, *, partial: bool = False,
              sub: bool = False) -> Instance:
    where = f"Attribute {name}"
    if not isinstance(raw, dict) or raw.get("type") in _GEOMETRY_TYPES:
        if isinstance(raw, dict):  # a bare geometry, concise GeoProperty
            return _stamp({"type": "GeoProperty", "value": _geo(raw, where)}, ctx, partial)
        if partial:
            raise BadRequestData(f"{where}: the body must be a JSON object")
        return _stamp({"type": "Property", "value": _not_null(raw, where)}, ctx, partial)
    given = "type" in raw
    kind = _kind_of(raw, where, partial)
    # A partial update may leave "type" out (clause 5.6.4): the members are still checked
    # against the kind they imply, except a bare "value" (Property or GeoProperty), which
    # mutate.partial_update checks against the stored kind.
    out: Instance = {"type": kind} if kind is not None and (given or not partial) else {}
    if partial and not given and kind in ("Property", "GeoProperty"):
        kind = None
    own = VALUE_MEMBER.get(kind or "", "")
    for member, value in raw.items():
        if member == "type" or member in IGNORED:
            continue
        if member in VALUE_MEMBERS:
            if kind is None:
                out[member] = value
                continue
            if member != own:
                raise BadRequestData(f"{where}: {member} does not belong to a {kind}")
            value = check_value(kind, value, where)
            if kind == "VocabProperty":
                value = ([ctx.terms.expand(v) for v in value] if isinstance(value, list)
                         else ctx.terms.expand(value))
            out[member] = value
        elif member == "datasetId":
            if sub:
                raise BadRequestData(f"{where}: a sub-attribute has no datasetId")
            out[member] = require_uri(value, f"{where}: datasetId")
        elif member == "observedAt":
            out[member] = normalize_datetime(value, f"{where}: observedAt")
        elif member == "unitCode":
            if not isinstance(value, str) or not value:
                raise BadRequestData(f"{where}: unitCode must be a string")
            out[member] = value
        elif member == "objectType":
            if kind not in RELATIONSHIPS:
                raise BadRequestData(f"{where}: objectType belongs to relationships only")
            out[member] = _types(value, ctx.terms)
        else:
            _check_name(member, "sub-attribute")
            iri = ctx.terms.expand(member)
            if ctx.allow_null and _is_null(value):
                out[iri] = None  # merge-patch deletes this sub-attribute
            else:
                out[iri] = _instance(f"{name}.{member}", value, ctx, sub=True)
    if kind is not None and (given or not partial) and own not in out:
        raise BadRequestData(f"{where}: a {kind} needs its {own} member")
    return _stamp(out, ctx, partial)


def _stamp(instance: Instance, ctx: _Ctx, partial: bool) -> Instance:
    if not partial:
        instance["createdAt"] = ctx.now
    instance["modifiedAt"] = ctx.now
    return instance


def _is_instance_list(raw: Any) -> bool:
    return isinstance(raw, list) and bool(raw) and all(
        isinstance(i, dict) and ("type" in i or any(m in i for m in VALUE_MEMBERS)) for i in raw
    )


def _instances(name: str, raw: Any, ctx: _Ctx, key_values: bool) -> list[Instance]:
    if key_values:
        kind = "GeoProperty" if is_geometry(raw) else "Property"
        return [_stamp({"type": kind, "value": _VALUE_CHECKS[kind](raw, f"Attribute {name}")},
                       ctx, False)]
    items = raw if _is_instance_list(raw) else [raw]
    instances = [_instance(name, item, ctx) for item in items]
    seen: set[str | None] = set()
    for inst in instances:
        key = inst.get("datasetId")
        if key in seen:
            raise BadRequestData(f"Attribute {name}: two instances with datasetId {key}")
        seen.add(key)
    return instances


def _attributes(body: dict[str, Any], ctx: _Ctx, key_values: bool,
                skip: Iterable[str]) -> tuple[dict[str, list[Instance]], set[str]]:
    attrs: dict[str, list[Instance]] = {}
    deletions: set[str] = set()
    skipped = frozenset(skip)
    for name, raw in body.items():
        if name in skipped:
            continue
        _check_name(name)
        iri = ctx.terms.expand(name)
        if ctx.allow_null and _is_null(raw):
            deletions.add(iri)
        else:
            attrs[iri] = _instances(name, raw, ctx, key_values)
    return attrs, deletions


def parse_entity(body: Any, terms: Terms, now: str, *, key_values: bool = False) -> dict[str, Any]:
    """A whole entity (create, replace, upsert) in internal form."""
    if not isinstance(body, dict):
        raise BadRequestData("An entity must be a JSON object")
    _check_depth(body)
    _no_aliases(body)
    entity_id = require_uri(body.get("id", body.get("@id")), "Entity id")
    if "type" not in body and "@type" not in body:
        raise BadRequestData(f"Entity {entity_id} has no type")
    ctx = _Ctx(terms, now)
    attrs, _ = _attributes(body, ctx, key_values, ENTITY_MEMBERS)
    entity: dict[str, Any] = {
        "id": entity_id,
        "type": _types(body.get("type", body.get("@type")), terms),
        "createdAt": now,
        "modifiedAt": now,
        "attrs": attrs,
    }
    if body.get("scope") is not None:
        entity["scope"] = _scope(body["scope"])
    return entity


@dataclass(frozen=True)
class Fragment:
    """Attributes to add or change on an existing entity (append, update, merge)."""

    attrs: dict[str, list[Instance]]
    types: list[str] | None = None
    scope: list[str] | None = None
    deletions: frozenset[str] = field(default_factory=frozenset)


def parse_fragment(body: Any, terms: Terms, now: str, *, entity_id: str,
                   allow_null: bool = False, key_values: bool = False) -> Fragment:
    if not isinstance(body, dict):
        raise BadRequestData("The body must be a JSON object of attributes")
    _check_depth(body)
    _no_aliases(body)
    given_id = body.get("id", body.get("@id"))
    if given_id is not None and given_id != entity_id:
        raise BadRequestData(f"The body's id {given_id!r} is not the entity's ({entity_id})")
    ctx = _Ctx(terms, now, allow_null)
    attrs, deletions = _attributes(body, ctx, key_values, ENTITY_MEMBERS)
    kind = body.get("type", body.get("@type"))
    return Fragment(
        attrs=attrs,
        types=_types(kind, terms) if kind is not None else None,
        scope=_scope(body["scope"]) if body.get("scope") is not None else None,
        deletions=frozenset(deletions),
    )


def parse_attribute(attr_iri: str, body: Any, terms: Terms, now: str, *,
                    partial: bool = False) -> Any:
    """One attribute from /attrs/{attrId}: the members to patch (partial=True, clause 5.6.4:
    one instance, type optional) or the instances replacing it (clause 5.6.19)."""
    name = terms.compact(attr_iri)
    _check_depth(body)
    ctx = _Ctx(terms, now)
    if partial:
        if not isinstance(body, dict):
            raise BadRequestData(f"Attribute {name}: the body must be a JSON object")
        return _instance(name, body, ctx, partial=True)
    return _instances(name, body, ctx, key_values=False)
