"""From request payloads to the internal entity form (docs/internals.md). Pure.

Accepts the normalized and concise representations (clause 4.5) and, where asked, keyValues.
Validation is strict: anything the broker could not render back faithfully is refused with a
BadRequestData naming the attribute and the fault, before anything is stored.

Deletions (the NGSI-LD Null, clause 5.2.1) are only read where the operation allows them:
- merge (`parse_fragment(allow_null=True)`, clause 5.5.12) and partial attribute update
  (`parse_attribute(partial=True)`, clause 5.5.8). Everywhere else a Null is BadRequestData.
- An instance to delete comes out as {"value": NULL} plus the datasetId it targets, if any
  (`kinds.is_deletion` tells). A sub-attribute or optional member to delete (unitCode,
  observedAt...) comes out as that key mapped to None.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, overload

from broker.entities.clock import normalize_datetime
from broker.entities.geometry import is_geometry
from broker.entities.kinds import (
    CORE,
    ENTITY_MEMBERS,
    GEO_ATTRIBUTES,
    GEOMETRY_TYPES,
    IGNORED,
    KIND_BY_MEMBER,
    NULL,
    RELATIONSHIPS,
    RESERVED_NAMES,
    UNITLESS,
    VALUE_MEMBER,
    VALUE_MEMBERS,
    is_deletion,
    is_null_member,
)
from broker.entities.terms import Terms
from broker.entities.values import (
    Check,
    check_dataset_id,
    check_name,
    check_scope,
    check_term,
    check_value,
    expand_terms,
    require_uri,
)
from broker.errors import BadRequestData

__all__ = [
    "MAX_DEPTH",
    "Fragment",
    "Instance",
    "infer_kind",
    "parse_attribute",
    "parse_attributes",
    "parse_entity",
    "parse_fragment",
    "reads_back_as_value",
    "require_uri",
]

Instance = dict[str, Any]
Entity = dict[str, Any]

MAX_DEPTH = 32  # JSON nesting of one payload; deeper is a mistake or an attack
_RESERVED_IRIS = frozenset(CORE + name for name in RESERVED_NAMES)
# Tuples, not sets: `in` on a tuple compares, so an unhashable "type" (a list) is just absent.
_KIND_NAMES = tuple(VALUE_MEMBER)
_GEOMETRY_NAMES = tuple(sorted(GEOMETRY_TYPES))


class Nulls(enum.Enum):
    """Where an operation allows the NGSI-LD Null."""

    FORBID = "forbid"  # create, append, update, replace (clause 5.2.1)
    PATCH = "patch"    # partial attribute update (clause 5.5.8): instances, members
    MERGE = "merge"    # merge (clause 5.5.12): also keys inside compound values


@dataclass(frozen=True)
class _Ctx:
    terms: Terms
    now: str
    nulls: Nulls = Nulls.FORBID

    def check(self, where: str) -> Check:
        return Check(where, self.terms, merge=self.nulls is Nulls.MERGE)


# -- helpers shared with render ----------------------------------------------------------------

def infer_kind(raw: dict[str, Any]) -> str | None:
    """The kind a concise attribute object without "type" stands for (clause 4.5.2.3 and the
    clauses of each kind), or None if it names none (then it is a Property's whole value)."""
    for member, kind in KIND_BY_MEMBER:
        if member in raw:
            # "An exception to this inference rule occurs for geospatial Property Values,
            # where the GeoProperty sub-type shall be inferred instead" (clause 4.5.2.3).
            return "GeoProperty" if kind == "Property" and is_geometry(raw[member]) else kind
    return None


def _is_instance(item: Any) -> bool:
    return isinstance(item, dict) and (item.get("type") in _KIND_NAMES
                                       or any(m in item for m in VALUE_MEMBERS))


def _is_instance_list(raw: Any) -> bool:
    """A list of attribute objects is several instances (clause 4.5.5); any other list is the
    value of one Property."""
    return isinstance(raw, list) and bool(raw) and all(_is_instance(i) for i in raw)


def reads_back_as_value(value: Any) -> bool:
    """Whether `value` written bare (concise) parses back as a Property with this value."""
    if value is None or value == NULL or _is_instance_list(value):
        return False
    return not (isinstance(value, dict) and ("type" in value or infer_kind(value) is not None))


def reads_back_as_geometry(value: Any) -> bool:
    """Whether `value` written bare (concise) parses back as a GeoProperty with this value."""
    return _is_bare_geometry(value)


def _is_bare_geometry(raw: Any) -> bool:
    return isinstance(raw, dict) and raw.get("type") in _GEOMETRY_NAMES and "value" not in raw


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


def _is_null(raw: Any) -> bool:
    """Whether an attribute as written is the NGSI-LD Null: bare, or in its value member."""
    if raw == NULL:
        return True
    if not isinstance(raw, dict):
        return False
    members = [m for m in VALUE_MEMBERS if m in raw]
    return len(members) == 1 and is_null_member(members[0], raw[members[0]])


def _deletion(raw: Any, where: str) -> Instance:
    """The canonical deletion of the instance `raw` targets."""
    out: Instance = {"value": NULL}
    if isinstance(raw, dict) and "datasetId" in raw:
        dataset_id = check_dataset_id(raw["datasetId"], where)
        if dataset_id is not None:
            out["datasetId"] = dataset_id
    return out


def _refuse_null(where: str) -> BadRequestData:
    return BadRequestData(f"{where}: urn:ngsi-ld:null is only allowed in a merge or a partial "
                          "attribute update (clause 5.2.1)")


# -- the optional members of an instance, one reader each --------------------------------------

def _dataset_id(value: Any, kind: str | None, where: str, ctx: _Ctx) -> Any:
    return check_dataset_id(value, where)


def _observed_at(value: Any, kind: str | None, where: str, ctx: _Ctx) -> Any:
    return normalize_datetime(value, f"{where}: observedAt")


def _unit_code(value: Any, kind: str | None, where: str, ctx: _Ctx) -> Any:
    if kind in UNITLESS:
        raise BadRequestData(f"{where}: a {kind} is unitless, it has no unitCode")
    if not isinstance(value, str) or not value:
        raise BadRequestData(f"{where}: unitCode must be a non-empty string (UN/CEFACT code)")
    return value


def _object_type(value: Any, kind: str | None, where: str, ctx: _Ctx) -> Any:
    if kind is not None and kind not in RELATIONSHIPS:
        raise BadRequestData(f"{where}: objectType belongs to relationships only")
    return expand_terms(value, f"{where}: objectType", ctx.terms)


def _value_type(value: Any, kind: str | None, where: str, ctx: _Ctx) -> Any:
    if kind == "LanguageProperty":  # table 5.2.32-1: always rdf:langString, kept literal
        if value != "langString":
            raise BadRequestData(f"{where}: the valueType of a LanguageProperty is langString")
        return value
    return ctx.terms.expand(check_term(value, f"{where}: valueType"))


_MEMBERS = {
    "datasetId": _dataset_id,
    "observedAt": _observed_at,
    "unitCode": _unit_code,
    "objectType": _object_type,
    "valueType": _value_type,
}


# -- instances ---------------------------------------------------------------------------------

def _kind_of(raw: dict[str, Any], where: str) -> str | None:
    """The kind of an attribute object: its "type", or inferred from its members; None if it
    is neither (then the whole object is a Property value)."""
    if "type" not in raw:
        return infer_kind(raw)
    kind = raw["type"]
    if isinstance(kind, str) and kind in VALUE_MEMBER:
        return kind
    raise BadRequestData(f"{where}: {kind!r} is not an attribute type (Property, Relationship, "
                         "GeoProperty, LanguageProperty, VocabProperty, JsonProperty, "
                         "ListProperty or ListRelationship)")


def _stamp(instance: Instance, ctx: _Ctx, created: bool = True) -> Instance:
    if created:
        instance["createdAt"] = ctx.now
    instance["modifiedAt"] = ctx.now
    return instance


def _members(name: str, raw: dict[str, Any], kind: str | None, out: Instance, ctx: _Ctx, *,
             sub: bool) -> Instance:
    """Every member of an attribute object but "type", read into `out`. With kind None (a
    partial update without "type") value members are kept for mutate to check."""
    where = f"Attribute {name}"
    own = VALUE_MEMBER.get(kind or "")
    deletable = ctx.nulls is not Nulls.FORBID
    for member, value in raw.items():
        if member == "type" or member in IGNORED:
            continue
        if member in VALUE_MEMBERS:
            if kind is not None and member != own:
                raise BadRequestData(f"{where}: {member} does not belong to a {kind}")
            if kind is None:
                if value is None:
                    raise BadRequestData(f"{where}: {member} cannot be null")
                out[member] = value
            else:
                out[member] = check_value(kind, value, ctx.check(where))
        elif member in _MEMBERS:
            if member == "datasetId" and sub:
                raise BadRequestData(f"{where}: a sub-attribute has no datasetId")
            if value == NULL and member != "datasetId":
                if not deletable:
                    raise _refuse_null(f"{where}: {member}")
                out[member] = None  # removes the member
                continue
            read = _MEMBERS[member](value, kind, where, ctx)
            if read is not None:
                out[member] = read
        else:
            _sub_attribute(name, member, value, out, ctx)
    return out


def _sub_attribute(name: str, member: str, value: Any, out: Instance, ctx: _Ctx) -> None:
    check_name(member, "sub-attribute")
    if member in RESERVED_NAMES:
        raise BadRequestData(f"Attribute {name}: {member!r} cannot be a sub-attribute name")
    iri = ctx.terms.expand(member)
    if iri in out:
        raise BadRequestData(f"Attribute {name}: two sub-attributes expand to {iri}")
    if ctx.nulls is not Nulls.FORBID and _is_null(value):
        out[iri] = None  # the merge or patch removes this sub-attribute
    else:
        out[iri] = _instance(f"{name}.{member}", value, ctx, sub=True)


def _instance(name: str, raw: Any, ctx: _Ctx, *, sub: bool = False) -> Instance:
    """One attribute instance, normalized or concise, in internal form and stamped."""
    where = f"Attribute {name}"
    if _is_null(raw):
        if ctx.nulls is Nulls.FORBID:
            raise _refuse_null(where)
        return _deletion(raw, where)
    if raw is None:
        raise BadRequestData(f"{where}: an attribute cannot be null")
    if not isinstance(raw, dict):  # concise: a bare value is a Property
        return _stamp({"type": "Property", "value": check_value("Property", raw,
                                                                ctx.check(where))}, ctx)
    if _is_bare_geometry(raw):  # concise: a bare geometry
        return _stamp({"type": "GeoProperty",
                       "value": check_value("GeoProperty", raw, ctx.check(where))}, ctx)
    kind = _kind_of(raw, where)
    if "@context" in raw:
        raise BadRequestData(f"{where}: an attribute cannot embed an @context (clause 4.5.1)")
    if kind is None:  # clause 4.5.2.3: an object naming no kind is a Property's whole value
        return _stamp({"type": "Property", "value": check_value("Property", raw,
                                                                ctx.check(where))}, ctx)
    out = _members(name, raw, kind, {"type": kind}, ctx, sub=sub)
    if VALUE_MEMBER[kind] not in out:
        raise BadRequestData(f"{where}: a {kind} needs its {VALUE_MEMBER[kind]} member")
    return _stamp(out, ctx)


def _patch(name: str, raw: Any, ctx: _Ctx) -> Instance:
    """The members of a partial attribute update (clause 5.6.4): "type" may be left out and
    no concise inference makes a Property of the whole object."""
    where = f"Attribute {name}"
    if not isinstance(raw, dict):
        raise BadRequestData(f"{where}: a partial update is a JSON object of members")
    if _is_null(raw):
        return _deletion(raw, where)
    given = "type" in raw
    kind = _kind_of(raw, where)
    # Without "type", a bare "value" may be a Property's or a GeoProperty's: mutate checks it
    # against the stored kind.
    if not given and kind in ("Property", "GeoProperty"):
        kind = None
    out = _members(name, raw, kind, {"type": kind} if given else {}, ctx, sub=False)
    if "value" in out and kind is None and _nulls_in_compound(out["value"]):
        raise BadRequestData(f"{where}: urn:ngsi-ld:null inside a value is only allowed in a "
                             "merge (clause 5.5.4)")
    return _stamp(out, ctx, created=False)


def _nulls_in_compound(value: Any) -> bool:
    if value == NULL:
        return True
    if isinstance(value, dict):
        return any(map(_nulls_in_compound, value.values()))
    if isinstance(value, list):
        return any(map(_nulls_in_compound, value))
    return False


def _key_value(name: str, raw: Any, ctx: _Ctx) -> Instance:
    """keyValues input (clause 4.5.3): a value, a Property's unless it is a geometry."""
    where = f"Attribute {name}"
    if raw == NULL:
        if ctx.nulls is Nulls.FORBID:
            raise _refuse_null(where)
        return _deletion(raw, where)
    kind = "GeoProperty" if is_geometry(raw) else "Property"
    return _stamp({"type": kind, "value": check_value(kind, raw, ctx.check(where))}, ctx)


def _instances(name: str, raw: Any, ctx: _Ctx, key_values: bool) -> list[Instance]:
    if key_values:
        return [_key_value(name, raw, ctx)]
    items = raw if _is_instance_list(raw) else [raw]
    instances = [_instance(name, item, ctx) for item in items]
    seen: set[str | None] = set()
    for inst in instances:
        # Clause 4.5.5: one instance per datasetId, and one default instance.
        key = inst.get("datasetId")
        if key in seen:
            which = f"datasetId {key}" if key else "no datasetId (the default instance)"
            raise BadRequestData(f"Attribute {name}: two instances with {which}")
        seen.add(key)
    return instances


def _check_geo_attribute(iri: str, name: str, instances: list[Instance]) -> None:
    if iri in GEO_ATTRIBUTES and any(i.get("type", "GeoProperty") != "GeoProperty"
                                     for i in instances if not is_deletion(i)):
        raise BadRequestData(f"Attribute {name} is always a GeoProperty (clause 4.7)")


def _attribute_iri(name: str, ctx: _Ctx) -> str:
    check_name(name)
    iri = ctx.terms.expand(name)
    if name in RESERVED_NAMES or iri in _RESERVED_IRIS:
        raise BadRequestData(f"{name!r} is an NGSI-LD core member, not an attribute name "
                             "(clause 4.5.1)")
    return iri


def _attributes(body: dict[str, Any], ctx: _Ctx, key_values: bool,
                skip: Iterable[str]) -> dict[str, list[Instance]]:
    attrs: dict[str, list[Instance]] = {}
    skipped = frozenset(skip)
    for name, raw in body.items():
        if name in skipped:
            continue
        iri = _attribute_iri(name, ctx)
        if iri in attrs:  # a term and its IRI side by side (clause 4.5.5.1)
            raise BadRequestData(f"Two members of the payload name the attribute {iri}")
        instances = _instances(name, raw, ctx, key_values)
        _check_geo_attribute(iri, name, instances)
        attrs[iri] = instances
    return attrs


# -- entity members ----------------------------------------------------------------------------

def _one_of(body: dict[str, Any], member: str) -> Any:
    if member in body and "@" + member in body:
        raise BadRequestData(f"Both {member} and @{member} given: use one")
    return body.get(member, body.get("@" + member))


def _types(value: Any, terms: Terms) -> list[str]:
    items = value if isinstance(value, list) else [value]
    if not items or any(t is None or t == "" or t == NULL for t in items):
        raise BadRequestData("Entity type must be a non-empty string or list of strings")
    expanded = expand_terms(value, "Entity type", terms)
    return list(dict.fromkeys(expanded if isinstance(expanded, list) else [expanded]))


def _scope(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise BadRequestData("scope must be a scope or a non-empty list of scopes")
    return list(dict.fromkeys(check_scope(s) for s in items))


def _object_body(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequestData(f"{what} must be a JSON object")
    _check_depth(body)
    return body


def parse_entity(body: Any, terms: Terms, now: str, *, key_values: bool = False) -> Entity:
    """A whole entity (create, replace, upsert) in internal form, stamped with `now`."""
    body = _object_body(body, "An entity")
    entity_id = require_uri(_one_of(body, "id"), "Entity id")
    kind = _one_of(body, "type")
    if kind is None:
        raise BadRequestData(f"Entity {entity_id} has no type")
    ctx = _Ctx(terms, now)
    entity: Entity = {"id": entity_id, "type": _types(kind, terms), "createdAt": now,
                      "modifiedAt": now,
                      "attrs": _attributes(body, ctx, key_values, ENTITY_MEMBERS)}
    if body.get("scope") is not None:
        entity["scope"] = _scope(body["scope"])
    return entity


@dataclass(frozen=True)
class Fragment:
    """Attributes to add or change on an existing entity (append, update, merge).

    `attrs` may hold deletions (see the module docstring) when parsed with allow_null; a
    `scope` of [] asks a merge to delete the entity's scope.
    """

    attrs: dict[str, list[Instance]]
    types: list[str] | None = None
    scope: list[str] | None = None


def parse_fragment(body: Any, terms: Terms, now: str, *, entity_id: str | None = None,
                   allow_null: bool = False, key_values: bool = False) -> Fragment:
    """An entity fragment: attributes plus, optionally, "type" (types to add), "scope" and an
    "id", which must be the entity's. allow_null reads NGSI-LD Nulls as a merge does."""
    body = _object_body(body, "The body")
    given_id = _one_of(body, "id")
    if given_id is not None:
        require_uri(given_id, "Entity id")
        if entity_id is not None and given_id != entity_id:
            raise BadRequestData(f"The body's id {given_id!r} is not the entity's ({entity_id})")
    ctx = _Ctx(terms, now, Nulls.MERGE if allow_null else Nulls.FORBID)
    kind = _one_of(body, "type")
    scope = body.get("scope")
    return Fragment(
        attrs=_attributes(body, ctx, key_values, ENTITY_MEMBERS),
        types=_types(kind, terms) if kind is not None else None,
        scope=None if scope is None else [] if scope == NULL and allow_null else _scope(scope),
    )


def parse_attributes(body: Any, terms: Terms, now: str, *, key_values: bool = False,
                     allow_null: bool = False) -> dict[str, list[Instance]]:
    """A JSON object of attributes only (no id, type or scope) in internal form."""
    body = _object_body(body, "The body")
    ctx = _Ctx(terms, now, Nulls.MERGE if allow_null else Nulls.FORBID)
    return _attributes(body, ctx, key_values, ())


@overload
def parse_attribute(attr_iri: str, body: Any, terms: Terms, now: str, *,
                    partial: Literal[True]) -> Instance: ...
@overload
def parse_attribute(attr_iri: str, body: Any, terms: Terms, now: str, *,
                    partial: Literal[False] = False) -> list[Instance]: ...
def parse_attribute(attr_iri: str, body: Any, terms: Terms, now: str, *,
                    partial: bool = False) -> Instance | list[Instance]:
    """One attribute from /attrs/{attrId}: the members to patch (partial=True, clause 5.6.4:
    one instance, "type" optional, Nulls delete) or the instances replacing it (5.6.19)."""
    name = terms.compact(attr_iri)
    if attr_iri in _RESERVED_IRIS or name in RESERVED_NAMES:
        raise BadRequestData(f"{name!r} is an NGSI-LD core member, not an attribute name")
    _check_depth(body)
    if partial:
        return _patch(name, body, _Ctx(terms, now, Nulls.PATCH))
    instances = _instances(name, body, _Ctx(terms, now), key_values=False)
    _check_geo_attribute(attr_iri, name, instances)
    return instances
