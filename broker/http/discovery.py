"""Discovery of entity types and attributes (clauses 5.7.5-5.7.10, 6.25-6.28).

GET /types, /types/{type}, /attributes and /attributes/{attrId}; the store answers from its
derived rows, and names are compacted with the requester's @context on the way out.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from aiohttp import web

from broker.errors import ResourceNotFound
from broker.http import access, params
from broker.http.edge import json_response, link_context
from broker.http.media import JSON, JSON_LD, link_header, negotiate
from broker.http.state import broker, existing_tenant, response_context, terms_for
from broker.ld.core import CORE_CONTEXT_URL
from broker.ld.termmap import TermMap
from broker.store.protocol import AttributeSummary, TypeSummary

BASE = "/ngsi-ld/v1"


def _list_id(kind: str) -> str:
    # Clause 5.2.24 / 5.2.27: the list has an id of its own; nothing refers to it later.
    return f"urn:ngsi-ld:{kind}:{uuid.uuid4().hex}"


def entity_type(summary: TypeSummary, terms: TermMap) -> dict[str, Any]:
    """EntityType (clause 5.2.25)."""
    return {"id": summary.type, "type": "EntityType", "typeName": terms.compact(summary.type),
            "attributeNames": [terms.compact(a.name) for a in summary.attributes]}


def entity_type_info(summary: TypeSummary, terms: TermMap) -> dict[str, Any]:
    """EntityTypeInfo (clause 5.2.26): attributeDetails hold the kinds seen in this type."""
    return {"id": summary.type, "type": "EntityTypeInfo",
            "typeName": terms.compact(summary.type), "entityCount": summary.entity_count,
            "attributeDetails": [{"id": a.name, "type": "Attribute",
                                  "attributeName": terms.compact(a.name),
                                  "attributeTypes": list(a.kinds)}
                                 for a in summary.attributes]}


def attribute(summary: AttributeSummary, terms: TermMap) -> dict[str, Any]:
    """Attribute (clause 5.2.28)."""
    return {"id": summary.name, "type": "Attribute",
            "attributeName": terms.compact(summary.name), "attributeCount": summary.count,
            "attributeTypes": list(summary.kinds),
            "typeNames": [terms.compact(t) for t in summary.types]}


def _types_seen(guard: access.Guard, summaries: list[TypeSummary]) -> list[TypeSummary]:
    """The types the principal may read, each with only the attributes it may learn of (no
    names of hidden types or masked attributes)."""
    if not guard.enforcing:
        return summaries
    out = []
    for summary in summaries:
        decision = guard.read_decision(summary.type)
        if decision.allowed:
            attrs = tuple(a for a in summary.attributes if decision.effect(a.name) != "mask")
            out.append(replace(summary, attributes=attrs))
    return out


def _attributes_seen(guard: access.Guard, summaries: list[AttributeSummary]
                     ) -> list[AttributeSummary]:
    """The attributes the principal may learn of, named only with the readable types that
    show them; a count that would include hidden entities is left out."""
    if not guard.enforcing:
        return summaries
    out = []
    for summary in summaries:
        types = tuple(t for t in summary.types if guard.may_read(t)
                      and guard.read_decision(t).effect(summary.name) != "mask")
        if types:
            out.append(replace(summary, types=types,
                               count=summary.count if types == summary.types else None))
    return out


async def _prepare(request: web.Request) -> tuple[str, Any, TermMap, str]:
    media = negotiate(request.headers.get("Accept"), (JSON, JSON_LD))
    context = link_context(request)
    terms = await terms_for(request, context)
    tenant = await existing_tenant(request)
    return media, context, terms, tenant


def _respond(body: dict[str, Any] | list[dict[str, Any]], context: Any,
             media: str) -> web.Response:
    """JSON with the @context in a Link header, or JSON-LD with it in each object."""
    if media == JSON_LD:
        ctx = response_context(context)
        body = ([{**item, "@context": ctx} for item in body] if isinstance(body, list)
                else {**body, "@context": ctx})
        return json_response(body, 200, JSON_LD)
    link = context if isinstance(context, str) else CORE_CONTEXT_URL
    return json_response(body, 200, media, headers={"Link": link_header(link)})


async def list_types(request: web.Request) -> web.Response:
    media, context, terms, tenant = await _prepare(request)
    store = broker(request).store
    guard = access.guard_of(request, tenant)
    if params.flag(request.query, "details"):
        items = [entity_type(s, terms)
                 for s in _types_seen(guard, await store.describe_types(tenant))]
        return _respond(items, context, media)
    names = [terms.compact(t) for t in await store.entity_types(tenant)
             if not guard.enforcing or guard.may_read(t)]
    body = {"id": _list_id("EntityTypeList"), "type": "EntityTypeList", "typeList": names}
    return _respond(body, context, media)


async def type_info(request: web.Request) -> web.Response:
    media, context, terms, tenant = await _prepare(request)
    name = request.match_info["type"]
    found = _types_seen(access.guard_of(request, tenant),
                        await broker(request).store.describe_types(tenant, [terms.expand(name)]))
    if not found:
        raise ResourceNotFound(f"No entity of type {name} exists")
    return _respond(entity_type_info(found[0], terms), context, media)


async def list_attributes(request: web.Request) -> web.Response:
    media, context, terms, tenant = await _prepare(request)
    store = broker(request).store
    guard = access.guard_of(request, tenant)
    if params.flag(request.query, "details"):
        items = [attribute(s, terms)
                 for s in _attributes_seen(guard, await store.describe_attributes(tenant))]
        return _respond(items, context, media)
    if guard.enforcing:  # which types hold each name decides whether it may be named
        names = [terms.compact(s.name) for s in
                 _attributes_seen(guard, await store.describe_attributes(tenant))]
    else:
        names = [terms.compact(a) for a in await store.attribute_names(tenant)]
    body = {"id": _list_id("AttributeList"), "type": "AttributeList", "attributeList": names}
    return _respond(body, context, media)


async def attribute_info(request: web.Request) -> web.Response:
    media, context, terms, tenant = await _prepare(request)
    name = request.match_info["attrId"]
    found = _attributes_seen(
        access.guard_of(request, tenant),
        await broker(request).store.describe_attributes(tenant, [terms.expand(name)]))
    if not found:
        raise ResourceNotFound(f"No entity has an attribute {name}")
    return _respond(attribute(found[0], terms), context, media)


def add_routes(app: web.Application) -> None:
    app.router.add_get(BASE + "/types{slash:/?}", list_types, allow_head=False)
    app.router.add_get(BASE + "/types/{type}", type_info, allow_head=False)
    app.router.add_get(BASE + "/attributes{slash:/?}", list_attributes, allow_head=False)
    app.router.add_get(BASE + "/attributes/{attrId}", attribute_info, allow_head=False)
