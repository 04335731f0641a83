"""Batch operations, /ngsi-ld/v1/entityOperations/* (clauses 5.6.7-5.6.10, 5.6.20).

Each entity is atomic on its own (one store transaction each, committed together by the engine's
group commit); a failure on one is reported in the BatchOperationResult (clause 5.2.16) and
leaves the others. Parse errors are per entity too, so one bad entity never sinks the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from broker.entities import mutate
from broker.entities.clock import now_iso
from broker.entities.parse import Fragment, parse_entity, parse_fragment, require_uri
from broker.errors import AlreadyExists, BadRequestData, NgsiError, ResourceNotFound
from broker.http import audit, params
from broker.http.edge import json_response, link_context, read_json
from broker.http.entities import validated
from broker.http.media import JSON_LD, media_type
from broker.http.state import broker, existing_tenant, tenant_of, terms_for
from broker.ld.termmap import TermMap
from broker.store.protocol import Entity, Mutation

OPERATIONS = "/ngsi-ld/v1/entityOperations"
# Clause 5.6.7 leaves the limit to the implementation; 1,000 entities is an ordinary batch and
# the body size limit (settings.max_body_bytes) bounds memory before this does.
MAX_BATCH = 10_000


@dataclass
class _Item:
    raw: Any
    terms: TermMap | None = None
    error: NgsiError | None = None

    @property
    def entity_id(self) -> str:
        if isinstance(self.raw, str):
            return self.raw
        if isinstance(self.raw, dict):
            value = self.raw.get("id", self.raw.get("@id", ""))
            return value if isinstance(value, str) else ""
        return ""


async def _items(request: web.Request, *, ids_allowed: bool = False) -> list[_Item]:
    """The batch's members, each with the @context that applies to it (clause 6.3.5)."""
    body = await read_json(request)
    if not isinstance(body, list):
        raise BadRequestData("A batch operation body must be a JSON array")
    if not body:
        raise BadRequestData("A batch operation needs at least one entity")
    if len(body) > MAX_BATCH:
        raise BadRequestData(f"A batch holds at most {MAX_BATCH} entities")
    linked = link_context(request)
    ld = media_type(request.headers.get("Content-Type")) == JSON_LD
    if ld and linked is not None:
        raise BadRequestData("application/ld+json requests carry their @context in the body")
    items = []
    for raw in body:
        item = _Item(raw)
        try:
            context = linked
            if isinstance(raw, dict) and "@context" in raw:
                if not ld:
                    raise BadRequestData("An application/json body must not carry an @context")
                item.raw = {k: v for k, v in raw.items() if k != "@context"}
                context = raw["@context"]
            elif ld and not (ids_allowed and isinstance(raw, str)):
                raise BadRequestData("Each entity of an application/ld+json batch needs an "
                                     "@context")
            item.terms = await terms_for(request, context)
        except NgsiError as error:
            item.error = error
        items.append(item)
    return items


async def _run(request: web.Request, tenant: str, items: list[_Item],
               plan: Callable[[_Item, str], tuple[str, Mutation[Any]]]) -> list[Any]:
    """Plan a mutation for each item (parse errors become the item's result), apply them all."""
    now = now_iso()
    audit.note(request, entity_ids=[i.entity_id for i in items if i.entity_id])
    outcomes: list[Any] = [item.error for item in items]
    planned: list[tuple[int, tuple[str, Mutation[Any]]]] = []
    for index, item in enumerate(items):
        if item.error is None:
            try:
                entity_id, mutation = plan(item, now)
                planned.append((index, (entity_id, validated(request, tenant, mutation))))
            except NgsiError as error:
                outcomes[index] = error
    results = await broker(request).store.apply_many(tenant, [p for _, p in planned])
    for (index, _), result in zip(planned, results, strict=True):
        outcomes[index] = result
    return outcomes


def _report(items: list[_Item], outcomes: list[Any]) -> tuple[list[str], list[dict[str, Any]]]:
    success, errors = [], []
    for item, outcome in zip(items, outcomes, strict=True):
        if isinstance(outcome, NgsiError):
            errors.append({"entityId": item.entity_id, "error": outcome.problem()})
        elif isinstance(outcome, BaseException):
            raise outcome  # not an NGSI-LD error: the edge logs it and answers 500
        else:
            success.append(item.entity_id)
    return success, errors


def _partial(success: list[str], errors: list[dict[str, Any]]) -> web.Response:
    return json_response({"success": success, "errors": errors}, 207)


def _create_mutation(entity: Entity) -> Mutation[str]:
    def create(current: Entity | None) -> tuple[Entity, str]:
        if current is not None:
            raise AlreadyExists(f"Entity {entity['id']} already exists")
        return entity, "created"
    return create


async def batch_create(request: web.Request) -> web.Response:
    items = await _items(request)

    def plan(item: _Item, now: str) -> tuple[str, Mutation[Any]]:
        assert item.terms is not None
        entity = parse_entity(item.raw, item.terms, now)
        return entity["id"], _create_mutation(entity)

    success, errors = _report(items, await _run(request, tenant_of(request), items, plan))
    return _partial(success, errors) if errors else json_response(success, 201)


async def batch_upsert(request: web.Request) -> web.Response:
    opts = params.options(request.query)
    if {"update", "replace"} <= opts:
        raise BadRequestData("options update and replace exclude each other")
    update = "update" in opts
    items = await _items(request)

    def plan(item: _Item, now: str) -> tuple[str, Mutation[Any]]:
        assert item.terms is not None
        entity = parse_entity(item.raw, item.terms, now)

        def upsert(current: Entity | None) -> tuple[Entity, str]:
            if current is None:
                return entity, "created"
            if update:
                fragment = Fragment(attrs=entity["attrs"], types=entity["type"],
                                    scope=entity.get("scope"))
                return mutate.append(current, fragment, now, no_overwrite=False)[0], "updated"
            return mutate.replace(current, entity, now), "updated"
        return entity["id"], upsert

    outcomes = await _run(request, tenant_of(request), items, plan)
    success, errors = _report(items, outcomes)
    if errors:
        return _partial(success, errors)
    created = [i.entity_id for i, o in zip(items, outcomes, strict=True) if o == "created"]
    return json_response(created, 201) if created else web.Response(status=204)


def _fragment_plan(
    apply: Callable[[Entity, Fragment, str], Entity], *, allow_null: bool = False
) -> Callable[[_Item, str], tuple[str, Mutation[Any]]]:
    def plan(item: _Item, now: str) -> tuple[str, Mutation[Any]]:
        assert item.terms is not None
        if not isinstance(item.raw, dict):
            raise BadRequestData("Each member of the batch must be an entity object")
        entity_id = require_uri(item.raw.get("id", item.raw.get("@id")), "Entity id")
        fragment = parse_fragment(item.raw, item.terms, now, entity_id=entity_id,
                                  allow_null=allow_null)

        def change(current: Entity | None) -> tuple[Entity, None]:
            if current is None:
                raise ResourceNotFound(f"Entity {entity_id} not found")
            return apply(current, fragment, now), None
        return entity_id, change
    return plan


async def batch_update(request: web.Request) -> web.Response:
    # Clause 5.6.9: each entity's attributes are appended, overwriting unless noOverwrite.
    no_overwrite = "noOverwrite" in params.options(request.query)
    tenant = await existing_tenant(request)
    items = await _items(request)
    plan = _fragment_plan(
        lambda e, f, now: mutate.append(e, f, now, no_overwrite=no_overwrite)[0])
    success, errors = _report(items, await _run(request, tenant, items, plan))
    return _partial(success, errors) if errors else web.Response(status=204)


async def batch_merge(request: web.Request) -> web.Response:
    tenant = await existing_tenant(request)
    items = await _items(request)
    plan = _fragment_plan(mutate.merge, allow_null=True)
    success, errors = _report(items, await _run(request, tenant, items, plan))
    return _partial(success, errors) if errors else web.Response(status=204)


async def batch_delete(request: web.Request) -> web.Response:
    tenant = await existing_tenant(request)
    items = await _items(request, ids_allowed=True)

    def plan(item: _Item, now: str) -> tuple[str, Mutation[Any]]:
        entity_id = require_uri(item.raw, "Entity id")

        def delete(current: Entity | None) -> tuple[None, None]:
            if current is None:
                raise ResourceNotFound(f"Entity {entity_id} not found")
            return None, None
        return entity_id, delete

    success, errors = _report(items, await _run(request, tenant, items, plan))
    return _partial(success, errors) if errors else web.Response(status=204)


def add_routes(app: web.Application) -> None:
    for name, handler in (("create", batch_create), ("upsert", batch_upsert),
                          ("update", batch_update), ("delete", batch_delete),
                          ("merge", batch_merge)):
        app.router.add_post(f"{OPERATIONS}/{name}{{slash:/?}}", handler)
