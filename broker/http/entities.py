"""Entity endpoints (clauses 5.6.1-5.6.6, 5.6.17-5.6.19, 5.7.1): thin handlers over the pure core.

Each handler: resolve the tenant and @context, parse with broker.entities, hand a pure mutation
to the store (one transaction, committed before the response), render the answer.
"""

from __future__ import annotations

from typing import Any, TypeVar
from urllib.parse import quote

from aiohttp import web

from broker.entities import mutate
from broker.entities.clock import now_iso
from broker.entities.parse import parse_attribute, parse_entity, parse_fragment, require_uri
from broker.entities.rdf import entities_graph, serialize
from broker.entities.render import RenderOptions, render_entity, render_geojson
from broker.errors import AlreadyExists, BadRequestData, ResourceNotFound
from broker.http import access, audit, params
from broker.http.edge import json_response, link_context, read_payload
from broker.http.media import GEO_JSON, JSON, JSON_LD, RDF_TYPES, link_header, negotiate
from broker.http.state import (
    broker,
    existing_tenant,
    response_context,
    tenant_of,
    terms_for,
)
from broker.ld.core import CORE_CONTEXT_URL
from broker.ld.termmap import TermMap
from broker.store.protocol import Entity, Mutation
from broker.validation import for_settings

ENTITIES = "/ngsi-ld/v1/entities"
T = TypeVar("T")


def _path_id(request: web.Request) -> str:
    return require_uri(request.match_info["entityId"], "entity id")


def _not_found(entity_id: str) -> ResourceNotFound:
    return ResourceNotFound(f"Entity {entity_id} not found")


def _check_type(entity: Entity, request: web.Request, terms: TermMap) -> None:
    wanted = request.query.get("type")
    if wanted is not None and terms.expand(wanted) not in entity["type"]:
        raise _not_found(entity["id"])


def _names(request: web.Request, name: str, terms: TermMap) -> frozenset[str] | None:
    items = params.csv(request.query, name)
    if items is None:
        return None
    # id and type are entity members, not attributes: pick/omit name them as they are.
    return frozenset(i if i in ("id", "type") else terms.expand(i) for i in items)


def render_options(request: web.Request, terms: TermMap) -> RenderOptions:
    rep = params.representation(request.query)
    attrs = _names(request, "attrs", terms)
    pick = _names(request, "pick", terms)
    omit = _names(request, "omit", terms)
    if pick is not None and (omit is not None or attrs is not None):
        raise BadRequestData("pick cannot be combined with omit or attrs")
    if attrs is not None:
        pick = attrs | {"id", "type"}
    return RenderOptions(
        format=rep.format,
        sys_attrs=rep.sys_attrs,
        pick=pick,
        omit=omit,
        lang=request.query.get("lang"),
    )


def respond_entity(
    request: web.Request, body: dict[str, Any], context: Any, media: str, status: int = 200
) -> web.Response:
    """An entity (or GeoJSON Feature) in the negotiated media type, with its @context."""
    if media == JSON_LD:
        return json_response({**body, "@context": response_context(context)}, status, JSON_LD)
    link = context if isinstance(context, str) else CORE_CONTEXT_URL
    return json_response(body, status, media, headers={"Link": link_header(link)})


def validated(request: web.Request, tenant: str, mutation: Mutation[T]) -> Mutation[T]:
    """`mutation`, with the entity it produces checked against its types' contracts
    (contracts/types/, the tenant's validation mode): in strict mode an invalid result raises
    BadRequestData inside the transaction, so nothing is stored."""
    check = for_settings(broker(request).settings).checker(tenant)

    def run(current: Entity | None) -> tuple[Entity | None, T]:
        entity, result = mutation(current)
        if entity is not None:
            check(entity)
        return entity, result
    # The policy decides on the change the mutation makes, inside the same transaction.
    return access.guard_of(request, tenant).guard(run)


# -- create, read, delete ----------------------------------------------------------------------

async def create_entity(request: web.Request) -> web.Response:
    body, context = await read_payload(request)
    terms = await terms_for(request, context)
    now = now_iso()
    entity = parse_entity(body, terms, now)

    def create(current: Entity | None) -> tuple[Entity, None]:
        if current is not None:
            raise AlreadyExists(f"Entity {entity['id']} already exists")
        return entity, None

    tenant = tenant_of(request)
    audit.note(request, entity_ids=[entity["id"]], types=entity["type"])
    await broker(request).store.apply(tenant, entity["id"], validated(request, tenant, create))
    location = f"{ENTITIES}/{quote(entity['id'], safe=':')}"
    return web.Response(status=201, headers={"Location": location})


async def retrieve_entity(request: web.Request) -> web.Response:
    entity_id = _path_id(request)
    media = negotiate(request.headers.get("Accept"), (JSON, JSON_LD, GEO_JSON, *RDF_TYPES))
    context = link_context(request)
    terms = await terms_for(request, context)
    opts = render_options(request, terms)
    tenant = await existing_tenant(request)
    entity = await broker(request).store.get_entity(tenant, entity_id)
    if entity is None:
        raise _not_found(entity_id)
    _check_type(entity, request, terms)
    audit.note(request, types=entity["type"])
    entity = access.guard_of(request, tenant).read(entity)  # masks applied before rendering
    if media in RDF_TYPES:  # linked data: the RDF of the expanded normalized form
        body = serialize(entities_graph([entity], terms, opts), media)
        return web.Response(body=body, content_type=media, charset="utf-8")
    if media == GEO_JSON:
        geometry = terms.expand(request.query.get("geometryProperty", "location"))
        feature = render_geojson(entity, terms, opts, geometry)
        return respond_entity(request, feature, context, GEO_JSON)
    return respond_entity(request, render_entity(entity, terms, opts), context, media)


async def delete_entity(request: web.Request) -> web.Response:
    entity_id = _path_id(request)
    terms = await terms_for(request, link_context(request))
    tenant = await existing_tenant(request)

    def delete(current: Entity | None) -> tuple[None, None]:
        if current is None:
            raise _not_found(entity_id)
        _check_type(current, request, terms)
        return None, None

    await broker(request).store.apply(tenant, entity_id,
                                      access.guard_of(request, tenant).guard(delete))
    return web.Response(status=204)


# -- attribute operations ----------------------------------------------------------------------

def _update_response(result: mutate.UpdateResult, terms: TermMap) -> web.Response:
    """204 if everything was updated, else 207 with the UpdateResult (clause 5.2.18)."""
    if not result.not_updated:
        return web.Response(status=204)
    body = {
        "updated": [terms.compact(a) for a in result.updated],
        "notUpdated": [
            {"attributeName": terms.compact(n.attr), "reason": n.reason}
            for n in result.not_updated
        ],
    }
    return json_response(body, 207)


async def _existing(request: web.Request) -> tuple[str, str]:
    return await existing_tenant(request), _path_id(request)


async def append_attrs(request: web.Request) -> web.Response:
    tenant, entity_id = await _existing(request)
    no_overwrite = "noOverwrite" in params.options(request.query)
    body, context = await read_payload(request)
    terms = await terms_for(request, context)
    now = now_iso()
    fragment = parse_fragment(body, terms, now, entity_id=entity_id)

    def append(current: Entity | None) -> tuple[Entity, mutate.UpdateResult]:
        if current is None:
            raise _not_found(entity_id)
        return mutate.append(current, fragment, now, no_overwrite=no_overwrite)

    result = await broker(request).store.apply(tenant, entity_id,
                                               validated(request, tenant, append))
    return _update_response(result, terms)


async def update_attrs(request: web.Request) -> web.Response:
    tenant, entity_id = await _existing(request)
    body, context = await read_payload(request)
    terms = await terms_for(request, context)
    now = now_iso()
    fragment = parse_fragment(body, terms, now, entity_id=entity_id)

    def update(current: Entity | None) -> tuple[Entity, mutate.UpdateResult]:
        if current is None:
            raise _not_found(entity_id)
        return mutate.update(current, fragment, now)

    result = await broker(request).store.apply(tenant, entity_id,
                                               validated(request, tenant, update))
    return _update_response(result, terms)


async def _attr_target(request: web.Request, context: Any) -> tuple[TermMap, str]:
    terms = await terms_for(request, context)
    return terms, terms.expand(request.match_info["attrId"])


async def partial_attr_update(request: web.Request) -> web.Response:
    tenant, entity_id = await _existing(request)
    body, context = await read_payload(request)
    terms, attr = await _attr_target(request, context)
    now = now_iso()
    instance = parse_attribute(attr, body, terms, now, partial=True)

    def patch(current: Entity | None) -> tuple[Entity, None]:
        if current is None:
            raise _not_found(entity_id)
        return mutate.partial_update(current, attr, instance, now), None

    await broker(request).store.apply(tenant, entity_id, validated(request, tenant, patch))
    return web.Response(status=204)


async def replace_attr(request: web.Request) -> web.Response:
    tenant, entity_id = await _existing(request)
    body, context = await read_payload(request)
    terms, attr = await _attr_target(request, context)
    now = now_iso()
    instances = parse_attribute(attr, body, terms, now)

    def put(current: Entity | None) -> tuple[Entity, None]:
        if current is None:
            raise _not_found(entity_id)
        return mutate.replace_attribute(current, attr, instances, now), None

    await broker(request).store.apply(tenant, entity_id, validated(request, tenant, put))
    return web.Response(status=204)


async def delete_attr(request: web.Request) -> web.Response:
    tenant, entity_id = await _existing(request)
    _terms, attr = await _attr_target(request, link_context(request))
    dataset_id = request.query.get("datasetId")
    if dataset_id is not None:
        require_uri(dataset_id, "datasetId")
    delete_all = params.flag(request.query, "deleteAll")
    now = now_iso()

    def delete(current: Entity | None) -> tuple[Entity, None]:
        if current is None:
            raise _not_found(entity_id)
        return mutate.delete_attribute(
            current, attr, dataset_id=dataset_id, delete_all=delete_all, now=now
        ), None

    await broker(request).store.apply(tenant, entity_id, validated(request, tenant, delete))
    return web.Response(status=204)


# -- whole-entity replace and merge ------------------------------------------------------------

async def replace_entity(request: web.Request) -> web.Response:
    tenant, entity_id = await _existing(request)
    body, context = await read_payload(request)
    terms = await terms_for(request, context)
    now = now_iso()
    if isinstance(body, dict):
        body = {"id": entity_id, **body}
    new = parse_entity(body, terms, now)
    if new["id"] != entity_id:
        raise BadRequestData("The body's id differs from the entity id in the path")

    def put(current: Entity | None) -> tuple[Entity, None]:
        if current is None:
            raise _not_found(entity_id)
        return mutate.replace(current, new, now), None

    await broker(request).store.apply(tenant, entity_id, validated(request, tenant, put))
    return web.Response(status=204)


async def merge_entity(request: web.Request) -> web.Response:
    tenant, entity_id = await _existing(request)
    body, context = await read_payload(request)
    terms = await terms_for(request, context)
    now = now_iso()
    fragment = parse_fragment(body, terms, now, entity_id=entity_id, allow_null=True)

    def merge(current: Entity | None) -> tuple[Entity, None]:
        if current is None:
            raise _not_found(entity_id)
        return mutate.merge(current, fragment, now), None

    await broker(request).store.apply(tenant, entity_id, validated(request, tenant, merge))
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    # Collection paths also answer with a trailing slash, as real clients send them.
    app.router.add_post(ENTITIES + "{slash:/?}", create_entity)
    item = ENTITIES + "/{entityId}"
    app.router.add_get(item, retrieve_entity, allow_head=False)
    app.router.add_delete(item, delete_entity)
    app.router.add_put(item, replace_entity)
    app.router.add_patch(item, merge_entity)
    app.router.add_post(item + "/attrs{slash:/?}", append_attrs)
    app.router.add_patch(item + "/attrs{slash:/?}", update_attrs)
    attr = item + "/attrs/{attrId}"
    app.router.add_patch(attr, partial_attr_update)
    app.router.add_put(attr, replace_attr)
    app.router.add_delete(attr, delete_attr)
