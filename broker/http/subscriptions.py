"""Subscription endpoints (clauses 5.8.1-5.8.5; 6.10, 6.11): thin handlers over
broker/subscriptions (parse, patch, render) and the store's subscription methods.

A subscription is checked whole before it is stored: members (parse_subscription), the
endpoint's address against the operator's allow-list, literal and resolved (a receiver on
loopback or a private network needs --allow-network), and an inline @context is hosted by the
broker so that JSON notifications can name it in their Link header.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web
from multidict import CIMultiDict

from broker.entities.clock import now_iso
from broker.entities.parse import require_uri
from broker.errors import AlreadyExists, BadRequestData, ResourceNotFound, TooManyResults
from broker.http import access, params
from broker.http.edge import dumps, link_context, read_payload
from broker.http.identity import PurposeNotGranted, principal_of
from broker.http.media import JSON, JSON_LD, link_header, negotiate
from broker.http.state import (
    broker,
    existing_tenant,
    response_context,
    tenant_of,
    terms_for,
)
from broker.ld.core import CORE_CONTEXT_URL
from broker.ld.netpolicy import AddressPolicy
from broker.ld.termmap import TermMap
from broker.query.typeexpr import TypeExpr, TypeName, Within
from broker.store.protocol import SubscriptionRow
from broker.subscriptions.endpoint import check_endpoint_address
from broker.subscriptions.notification import context_url
from broker.subscriptions.resolve import check_endpoint_resolves
from broker.subscriptions.subscription import (
    Subscription,
    from_record,
    parse_subscription,
    patch_subscription,
    render_subscription,
    to_record,
)

SUBSCRIPTIONS = "/ngsi-ld/v1/subscriptions"
RESULTS_COUNT = "NGSILD-Results-Count"
DEFAULT_LIMIT = 20
MAX_LIMIT = 1000  # as for entity queries (broker/http/query.py)
MAX_OWNED = 100_000  # subscriptions of a tenant looked through for a principal's own


def _policy(request: web.Request) -> AddressPolicy:
    return AddressPolicy(broker(request).settings.allowed_networks)


def _path_id(request: web.Request) -> str:
    return require_uri(request.match_info["subscriptionId"], "subscription id")


def _not_found(sub_id: str) -> ResourceNotFound:
    return ResourceNotFound(f"Subscription {sub_id} not found")


async def _check_endpoint(request: web.Request, sub: Subscription) -> None:
    endpoint = sub.notification.endpoint
    check_endpoint_address(endpoint, _policy(request))
    await check_endpoint_resolves(endpoint, _policy(request))


async def _record(request: web.Request, sub: Subscription, previous: dict[str, Any] | None
                  ) -> dict[str, Any]:
    """What the store keeps: to_record, the id of the hosted copy of an inline @context, and
    the owner's principal (its creator's, kept on updates): notifications are filtered with
    it at delivery time."""
    record = to_record(sub)
    record[access.OWNER] = (previous[access.OWNER] if previous and access.OWNER in previous
                            else access.principal_record(principal_of(request)))
    if context_url(sub) is None:
        prev = previous or {}
        if "hostedContext" in prev and \
                from_record(prev).notification_context == sub.notification_context:
            record["hostedContext"] = prev["hostedContext"]
        else:
            hosted = await broker(request).contexts.add_hosted(
                {"@context": sub.notification_context}, now_iso())
            record["hostedContext"] = hosted.id
    return record


def _respond(request: web.Request, body: Any, context: Any, media: str,
             headers: CIMultiDict[str] | None = None) -> web.Response:
    headers = headers if headers is not None else CIMultiDict()
    if media == JSON_LD:
        ctx = response_context(context)
        body = ([{**b, "@context": ctx} for b in body] if isinstance(body, list)
                else {**body, "@context": ctx})
    else:
        headers.add("Link", link_header(context if isinstance(context, str)
                                        else CORE_CONTEXT_URL))
    return web.Response(body=dumps(body), status=200, content_type=media, headers=headers)


def _render(row: SubscriptionRow, terms: TermMap, sys_attrs: bool) -> dict[str, Any]:
    sub = from_record(row.record, row.tenant)
    return render_subscription(sub, terms, now=now_iso(), state=row.delivery,
                               sys_attrs=sys_attrs)


def _int(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit():
        raise BadRequestData(f"{name} must be a non-negative integer")
    return int(raw)


def _type_names(expr: TypeExpr) -> list[str]:
    if isinstance(expr, TypeName):
        return [expr.name]
    if isinstance(expr, Within):  # the access layer's only, never a subscription's
        return list(expr.names)
    return [n for item in expr.items for n in _type_names(item)]


def _check_subscribe(request: web.Request, sub: Subscription, tenant: str) -> None:
    """Creating a subscription is `subscribe` on its entity types, for its declared purpose,
    which the principal must be allowed to claim; refused → 403."""
    guard = access.guard_of(request, tenant)
    if not guard.enforcing:
        return
    if not guard.principal.may_claim(sub.purpose):
        raise PurposeNotGranted(f"Purpose {sub.purpose!r} is not granted to this principal")
    guard.purpose = sub.purpose
    types = [t for s in sub.entities for t in _type_names(s.types)]
    for type_iri in dict.fromkeys(types):
        decision = guard.decide("subscribe", [type_iri])
        if not decision.allowed:
            raise access.Forbidden(f"subscribe is not granted on this type ({decision.reason})")


def _owned(request: web.Request, row: SubscriptionRow | None) -> SubscriptionRow | None:
    """The row if the principal may see it (its owner, or admin) once access control is on:
    others' subscriptions are answered as missing."""
    if row is None or not access.access_of(request.app).enforcing:
        return row
    return row if access.may_manage(principal_of(request), row.record.get(access.OWNER)) \
        else None


# -- handlers ----------------------------------------------------------------------------------

async def create_subscription(request: web.Request) -> web.Response:
    body, context = await read_payload(request)
    terms = await terms_for(request, context)
    tenant = tenant_of(request)
    sub = parse_subscription(body, terms, now_iso(), context=context, tenant=tenant)
    _check_subscribe(request, sub, tenant)
    await _check_endpoint(request, sub)
    record = await _record(request, sub, None)
    if not await broker(request).store.create_subscription(tenant, sub.id, record):
        raise AlreadyExists(f"Subscription {sub.id} already exists")
    return web.Response(status=201,
                        headers={"Location": f"{SUBSCRIPTIONS}/{quote(sub.id, safe=':')}"})


async def list_subscriptions(request: web.Request) -> web.Response:
    media = negotiate(request.headers.get("Accept"), (JSON, JSON_LD))
    context = link_context(request)
    terms = await terms_for(request, context)
    limit = _int(request, "limit", DEFAULT_LIMIT)
    offset = _int(request, "offset", 0)
    count = params.flag(request.query, "count")
    if limit > MAX_LIMIT:
        raise TooManyResults(f"limit {limit} is over the maximum of {MAX_LIMIT}")
    if limit == 0 and not count:
        raise BadRequestData("limit=0 is only allowed with count=true")
    sys_attrs = "sysAttrs" in params.options(request.query)
    tenant = await existing_tenant(request)
    store = broker(request).store
    principal = principal_of(request)
    if access.access_of(request.app).enforcing and "admin" not in principal.roles:
        # Only the principal's own: filtered before paging, so pages and count are its own.
        every, _ = await store.list_subscriptions(tenant, MAX_OWNED, 0)
        own = [r for r in every if _owned(request, r) is not None]
        rows, total = own[offset:offset + limit], len(own)
    else:
        rows, total = await store.list_subscriptions(tenant, limit, offset)
    headers: CIMultiDict[str] = CIMultiDict()
    if count:
        headers[RESULTS_COUNT] = str(total)
    page = {k: v for k, v in request.query.items() if k not in ("offset", "limit")}
    pages = []
    if offset > 0 and limit > 0:
        pages.append(("prev", max(0, offset - limit)))
    if limit > 0 and offset + limit < total:
        pages.append(("next", offset + limit))
    for rel, at in pages:
        query = urlencode({**page, "offset": str(at), "limit": str(limit)})
        headers.add("Link", f'<{SUBSCRIPTIONS}?{query}>; rel="{rel}"')
    return _respond(request, [_render(r, terms, sys_attrs) for r in rows], context, media,
                    headers)


async def retrieve_subscription(request: web.Request) -> web.Response:
    sub_id = _path_id(request)
    media = negotiate(request.headers.get("Accept"), (JSON, JSON_LD))
    context = link_context(request)
    terms = await terms_for(request, context)
    sys_attrs = "sysAttrs" in params.options(request.query)
    tenant = await existing_tenant(request)
    row = _owned(request, await broker(request).store.get_subscription(tenant, sub_id))
    if row is None:
        raise _not_found(sub_id)
    return _respond(request, _render(row, terms, sys_attrs), context, media)


async def update_subscription(request: web.Request) -> web.Response:
    sub_id = _path_id(request)
    fragment, context = await read_payload(request)
    terms = await terms_for(request, context)
    tenant = await existing_tenant(request)
    store = broker(request).store
    row = _owned(request, await store.get_subscription(tenant, sub_id))
    if row is None:
        raise _not_found(sub_id)
    # Checked (and an inline @context hosted) before the transaction, which re-applies the
    # same fragment to the record it reads: a concurrent update is not lost.
    now = now_iso()
    patched = patch_subscription(from_record(row.record, tenant), fragment, terms, now)
    if patched.notification.endpoint != from_record(row.record, tenant).notification.endpoint:
        await _check_endpoint(request, patched)
    checked = await _record(request, patched, row.record)

    def edit(current: dict[str, Any]) -> dict[str, Any]:
        if current == row.record:
            return checked
        again = patch_subscription(from_record(current, tenant), fragment, terms, now)
        if again.notification.endpoint != patched.notification.endpoint:
            raise BadRequestData("The subscription changed meanwhile; send the update again")
        record = to_record(again)
        if access.OWNER in current:
            record[access.OWNER] = current[access.OWNER]
        if "hostedContext" in checked:
            record["hostedContext"] = checked["hostedContext"]
        return record

    if await store.update_subscription(tenant, sub_id, edit) is None:
        raise _not_found(sub_id)
    return web.Response(status=204)


async def delete_subscription(request: web.Request) -> web.Response:
    sub_id = _path_id(request)
    tenant = await existing_tenant(request)
    store = broker(request).store
    if access.access_of(request.app).enforcing and \
            _owned(request, await store.get_subscription(tenant, sub_id)) is None:
        raise _not_found(sub_id)
    if not await store.delete_subscription(tenant, sub_id):
        raise _not_found(sub_id)
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_post(SUBSCRIPTIONS, create_subscription)
    app.router.add_get(SUBSCRIPTIONS, list_subscriptions)
    app.router.add_get(SUBSCRIPTIONS + "/{subscriptionId}", retrieve_subscription)
    app.router.add_patch(SUBSCRIPTIONS + "/{subscriptionId}", update_subscription)
    app.router.add_delete(SUBSCRIPTIONS + "/{subscriptionId}", delete_subscription)
