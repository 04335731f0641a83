"""The @context endpoints, /ngsi-ld/v1/jsonldContexts (clauses 5.13.2-5.13.5)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from broker.entities.clock import now_iso
from broker.errors import BadRequestData
from broker.http import access, params
from broker.http.edge import json_response, read_json
from broker.http.media import JSON_LD
from broker.http.state import broker
from broker.store.protocol import StoredContext

CONTEXTS = "/ngsi-ld/v1/jsonldContexts"
KINDS = {"hosted": "Hosted", "cached": "Cached", "implicitlycreated": "ImplicitlyCreated"}


def _details(ctx: StoredContext, base_url: str) -> dict[str, Any]:
    """The metadata of a context (clause 5.2.43? "ContextInfo" in the OpenAPI)."""
    info: dict[str, Any] = {
        "URL": _public_url(ctx, base_url),
        "localId": ctx.id,
        "kind": ctx.kind,
        "createdAt": ctx.created_at,
    }
    if ctx.kind != "Hosted":
        info["lastUsage"] = ctx.last_used_at
        info["numberOfHits"] = ctx.number_of_hits
    return info


def _public_url(ctx: StoredContext, base_url: str) -> str:
    return ctx.url if ctx.kind == "Cached" else f"{base_url}{CONTEXTS}/{ctx.id}"


async def list_contexts(request: web.Request) -> web.Response:
    raw_kind = request.query.get("kind")
    kind = None
    if raw_kind is not None:
        kind = KINDS.get(raw_kind.lower())
        if kind is None:
            raise BadRequestData("kind must be one of Hosted, Cached, ImplicitlyCreated")
    b = broker(request)
    found = await b.contexts.list(kind)
    base = b.settings.base_url
    if params.flag(request.query, "details"):
        return json_response([_details(c, base) for c in found])
    return json_response([_public_url(c, base) for c in found])


def _may_change_contexts(request: web.Request) -> None:
    """With access control on, adding or deleting a hosted @context is granted by the
    policies (resource `contexts`): a context changes how every later request reads."""
    guard = access.guard_of(request, "")
    if guard.enforcing and not guard.decide_api("administer", "contexts").allowed:
        raise access.Forbidden("Adding or deleting @contexts is not granted to this principal")


async def add_context(request: web.Request) -> web.Response:
    _may_change_contexts(request)
    body = await read_json(request)
    b = broker(request)
    ctx = await b.contexts.add_hosted(body, now_iso())
    return web.Response(status=201, headers={"Location": f"{CONTEXTS}/{ctx.id}"})


async def serve_context(request: web.Request) -> web.Response:
    b = broker(request)
    ctx = await b.contexts.get(request.match_info["contextId"])
    if params.flag(request.query, "details"):
        return json_response(_details(ctx, b.settings.base_url))
    return json_response(ctx.body, content_type=JSON_LD)


async def delete_context(request: web.Request) -> web.Response:
    _may_change_contexts(request)
    reload = params.flag(request.query, "reload")
    await broker(request).contexts.delete(request.match_info["contextId"], reload=reload)
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_get(CONTEXTS + "{slash:/?}", list_contexts, allow_head=False)
    app.router.add_post(CONTEXTS + "{slash:/?}", add_context)
    app.router.add_get(CONTEXTS + "/{contextId}", serve_context, allow_head=False)
    app.router.add_delete(CONTEXTS + "/{contextId}", delete_context)
