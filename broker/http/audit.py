"""The audit edge: a middleware that records every NGSI-LD and audit API access, and the API
under /cetate/v1/audit/ that auditors read, query and verify the log with (docs/auditors.md).

Each audited request gets a request-scoped AuditRecord; handlers add what only they know with
`note(request, entity_ids=..., types=...)`, and the policy decision point (a later layer) sets
the principal, decision, rule and masked attributes the same way. Until then the principal is
the anonymous `public` one, the decision "allow" by rule "open-default", and the purpose the
Cetate-Purpose header's. A write's entry is durable before the response leaves: its facts
commit with the write itself and the entry is sealed after (security/audit/pending.py); a
write that committed nothing appends its entry and waits for it. Reads are queued and land no
later than the next tree head.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any
from urllib.parse import unquote

from aiohttp import web
from aiohttp.typedefs import Middleware

from broker.errors import BadRequestData, InternalError, NgsiError
from broker.http.edge import json_response
from broker.http.state import BROKER, TENANT_HEADER
from broker.logs import request_id
from broker.settings import Settings
from security.audit.entry import (
    DEFAULT_DECISION,
    DEFAULT_RULE,
    PUBLIC,
    AuditRecord,
    Deferred,
    entry_text,
    now,
)
from security.audit.log import (
    MAX_QUERY_LIMIT,
    PENDING_ENTRY,
    AuditLog,
    EntryQuery,
    config_for,
)
from security.audit.merkle import ProofError

log = logging.getLogger("cetate.audit")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

AUDIT = web.AppKey("audit", AuditLog)
# web.RequestKey exists from aiohttp 3.11 on; a plain string key before that. (A request key,
# not a context variable: policy decisions are noted from the store's threads too.)
RECORD: Any = (web.RequestKey("audit_record", AuditRecord) if hasattr(web, "RequestKey")
               else "cetate.audit.record")
API = "/cetate/v1/audit"
AUDITED_PREFIXES = ("/ngsi-ld/", API + "/")
PURPOSE_HEADER = "Cetate-Purpose"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_HEADER_VALUE = 256  # a tenant or purpose header longer than this is cut in the entry
MAX_ENTRIES_PAGE = 1000  # entries per /entries answer; the rest via its "next"
MAX_EXPORT_ENTRIES = 100_000  # one HTTP export; larger ranges with `cetate audit export`

_V1 = "/ngsi-ld/v1"
# (method, route template) -> action; templates without the optional trailing {slash}.
ACTIONS: dict[tuple[str, str], str] = {
    ("POST", f"{_V1}/entities"): "entity.create",
    ("GET", f"{_V1}/entities"): "entity.query",
    ("GET", f"{_V1}/entities/{{entityId}}"): "entity.retrieve",
    ("PUT", f"{_V1}/entities/{{entityId}}"): "entity.replace",
    ("PATCH", f"{_V1}/entities/{{entityId}}"): "entity.merge",
    ("DELETE", f"{_V1}/entities/{{entityId}}"): "entity.delete",
    ("POST", f"{_V1}/entities/{{entityId}}/attrs"): "entity.attrs.append",
    ("PATCH", f"{_V1}/entities/{{entityId}}/attrs"): "entity.attrs.update",
    ("PATCH", f"{_V1}/entities/{{entityId}}/attrs/{{attrId}}"): "entity.attr.update",
    ("PUT", f"{_V1}/entities/{{entityId}}/attrs/{{attrId}}"): "entity.attr.replace",
    ("DELETE", f"{_V1}/entities/{{entityId}}/attrs/{{attrId}}"): "entity.attr.delete",
    ("POST", f"{_V1}/entityOperations/create"): "batch.create",
    ("POST", f"{_V1}/entityOperations/upsert"): "batch.upsert",
    ("POST", f"{_V1}/entityOperations/update"): "batch.update",
    ("POST", f"{_V1}/entityOperations/merge"): "batch.merge",
    ("POST", f"{_V1}/entityOperations/delete"): "batch.delete",
    ("POST", f"{_V1}/entityOperations/query"): "entity.query",
    ("GET", f"{_V1}/jsonldContexts"): "context.list",
    ("POST", f"{_V1}/jsonldContexts"): "context.add",
    ("GET", f"{_V1}/jsonldContexts/{{contextId}}"): "context.retrieve",
    ("DELETE", f"{_V1}/jsonldContexts/{{contextId}}"): "context.delete",
    ("POST", f"{_V1}/subscriptions"): "subscription.create",
    ("GET", f"{_V1}/subscriptions"): "subscription.list",
    ("GET", f"{_V1}/subscriptions/{{subscriptionId}}"): "subscription.retrieve",
    ("PATCH", f"{_V1}/subscriptions/{{subscriptionId}}"): "subscription.update",
    ("DELETE", f"{_V1}/subscriptions/{{subscriptionId}}"): "subscription.delete",
}
NOTIFY = "notification.send"  # a notification delivered (or given up), recorded by the app
_ENTITY_PREFIX = f"{_V1}/entities/"
_SLASH_RE = re.compile(r"\{slash[^}]*\}")


# (method, route resource) -> its action, "" when not audited: routes are few, and one lookup
# per request (rather than a check of its decoded path) keeps the middleware lean on reads.
_ACTION_CACHE: dict[tuple[str, object], str] = {}


def _audited_action(request: web.Request) -> str:
    """The action of an audited request, "" for one on a path not audited."""
    resource = request.match_info.route.resource
    if resource is None:  # no route matched (a 404 or 405): decided by its path
        return _action(request.method, None) if request.path.startswith(AUDITED_PREFIXES) \
            else ""
    key = (request.method, resource)
    action = _ACTION_CACHE.get(key)
    if action is None:
        audited = resource.canonical.startswith(AUDITED_PREFIXES)
        action = _ACTION_CACHE[key] = _action(request.method, resource) if audited else ""
    return action


def _action(method: str, resource: web.AbstractResource | None) -> str:
    template = _SLASH_RE.sub("", resource.canonical) if resource is not None else ""
    if not template:
        return "unknown-route"
    action = ACTIONS.get((method, template))
    if action is not None:
        return action
    if template.startswith(API + "/"):
        return "audit." + template[len(API) + 1:].replace("/", ".")
    return f"{method.lower()} {template.removeprefix(_V1)}"


def note(request: web.Request, **fields: Any) -> None:
    """Add to the request's audit record (entity_ids=, types=, masked=, principal=, decision=,
    rule=, purpose=...). A no-op when the audit log is off or the path is not audited."""
    record = request.get(RECORD)
    if record is not None:
        record.note(**fields)


def audit_middleware(audit: AuditLog) -> Middleware:
    """The middleware recording every audited request's access in `audit`."""

    @web.middleware
    async def audited(request: web.Request, handler: Handler) -> web.StreamResponse:
        action = _audited_action(request)
        if not action:
            return await handler(request)
        headers = request.headers
        tenant = headers.get(TENANT_HEADER)
        purpose = headers.get(PURPOSE_HEADER)
        entity = request.match_info.get("entityId")
        remote = request.remote
        record = AuditRecord(
            action, entry_text(tenant.strip()[:MAX_HEADER_VALUE]) if tenant else "", PUBLIC,
            entry_text(purpose.strip()[:MAX_HEADER_VALUE]) or None if purpose else None,
            DEFAULT_DECISION, DEFAULT_RULE, [entity] if entity else [], [], [],
            {"client": remote} if remote else {})
        request[RECORD] = record
        status = 500
        write = request.method not in READ_METHODS
        rid = request_id.get()
        # A write's store may keep the record's facts in its own transaction (Announced.row).
        announced, token = audit.expect_entry(record, rid) if write else (None, None)
        try:
            response = await handler(request)
            status = response.status
            if status == 201:
                created = response.headers.get("Location", "")
                if created.startswith(_ENTITY_PREFIX):  # a created entity's id (clause 6.4.3.1)
                    record.note(entity_ids=[unquote(created[len(_ENTITY_PREFIX):])])
            return response
        except NgsiError as error:
            status = error.status
            raise
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            # Sealed later, with its batch (AuditLog.record): off the request path. A write's facts
            # committed with it are its durable entry until then (security/audit/pending.py).
            if announced is None or announced.row is not None:
                audit.record(record, time.time(), rid, status,
                             announced.row if announced is not None else None)
                if token is not None:
                    PENDING_ENTRY.reset(token)
            else:  # a write none of whose jobs committed its facts: its entry, durable, first
                try:
                    await audit.append_record(record, time=now(), request_id=rid, status=status)
                except Exception as exc:
                    # Not answered 2xx as if all were well: the change may be committed, but its
                    # access is not in the log (docs/auditors.md).
                    log.exception("audit entry of %s %s not recorded", request.method, request.path)
                    raise InternalError("The access could not be recorded in the audit log; the "
                                        "change may have been applied") from exc
                finally:
                    if token is not None:
                        PENDING_ENTRY.reset(token)

    return audited


def record_event(app: web.Application, record: AuditRecord, *, status: int,
                 request_id: str = "-", durable: bool = False) -> asyncio.Future[int] | None:
    """Record an access made outside an HTTP request (a notification sent, a purge). Queued
    like a read's entry unless `durable` (then committed at once, like a write's); the future
    gives its index once committed. None when the log is off."""
    audit = app.get(AUDIT)
    if audit is None:
        return None
    return audit.submit(Deferred(record, now(), request_id, status, audit.pseudonyms),
                        urgent=durable)


# -- the auditors' API ---------------------------------------------------------------------------


def _int_param(request: web.Request, name: str, default: int | None = None) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        if default is None:
            raise BadRequestData(f"Query parameter {name!r} is required")
        return default
    if not raw.isdigit() or len(raw) > 18:
        raise BadRequestData(f"Query parameter {name!r} must be a non-negative integer")
    return int(raw)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _entries_body(rows: list[tuple[int, bytes]]) -> list[dict[str, Any]]:
    return [{"index": idx, "entry": _b64(entry)} for idx, entry in rows]


def _text(body: str) -> web.Response:
    return web.Response(text=body, content_type="text/plain", charset="utf-8")


async def checkpoint(request: web.Request) -> web.Response:
    """The latest signed checkpoint, covering every entry committed so far (signed now if the
    tree grew since the last one)."""
    return _text(await request.app[AUDIT].checkpoint())


async def public_key(request: web.Request) -> web.Response:
    """Every verifier key of the log, the current one first, one per line."""
    keys = request.app[AUDIT].verifier_keys()
    return _text("".join(k.text() + "\n" for k in keys))


async def entries(request: web.Request) -> web.Response:
    audit = request.app[AUDIT]
    await audit.flush()  # queued reads' entries first, so the answer is current
    size = (await audit.head()).size
    start = _int_param(request, "from", 0)
    end = min(_int_param(request, "to", size), size)
    if start > end:
        raise BadRequestData(f"from={start} is past to={end} (the tree holds {size} entries)")
    stop = min(end, start + MAX_ENTRIES_PAGE)
    body: dict[str, Any] = {"size": size, "from": start, "to": stop,
                            "entries": _entries_body(await audit.entries(start, stop))}
    if stop < end:
        body["next"] = f"{API}/entries?from={stop}&to={end}"
    return json_response(body)


async def inclusion(request: web.Request) -> web.Response:
    audit = request.app[AUDIT]
    head = (await audit.head()).size
    index = _int_param(request, "index")
    size = _int_param(request, "size", head)
    if not index < size <= head:
        raise BadRequestData(f"Need index < size <= {head} (the tree's size), got index={index} "
                             f"size={size}")
    proof = [_b64(h) for h in await audit.inclusion_proof(index, size)]
    return json_response({"index": index, "size": size, "proof": proof,
                          "leaf_index": index, "tree_size": size, "audit_path": proof})


async def consistency(request: web.Request) -> web.Response:
    audit = request.app[AUDIT]
    head = (await audit.head()).size
    first = _int_param(request, "first")
    second = _int_param(request, "second", head)
    if not first <= second <= head:
        raise BadRequestData(f"Need first <= second <= {head} (the tree's size), got "
                             f"first={first} second={second}")
    try:
        proof = [_b64(h) for h in await audit.consistency_proof(first, second)]
    except ProofError as exc:
        raise BadRequestData(str(exc)) from None
    return json_response({"first": first, "second": second, "proof": proof,
                          "consistency": proof})


_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?Z?)?$")


def _time_param(request: web.Request, name: str) -> str | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    if not _TIME_RE.match(raw):
        raise BadRequestData(f"Query parameter {name!r} must be a UTC time like "
                             f"2026-12-01T18:00:00Z")
    return raw.removesuffix("Z")


async def query(request: web.Request) -> web.Response:
    """Entries by time range (since <= time < until), principal (pseudonym) or subject (in
    clear, pseudonymised here), tenant, entity, action, purpose, decision; paged by index."""
    audit = request.app[AUDIT]
    await audit.flush()
    subject = request.query.get("principal")
    if subject is None and "subject" in request.query:
        subject = audit.pseudonyms(request.query["subject"])
    limit = _int_param(request, "limit", 100)
    if not 1 <= limit <= MAX_QUERY_LIMIT:
        raise BadRequestData(f"limit must be between 1 and {MAX_QUERY_LIMIT}")
    q = EntryQuery(since=_time_param(request, "since"), until=_time_param(request, "until"),
                   subject=subject, tenant=request.query.get("tenant"),
                   entity=request.query.get("entity"), action=request.query.get("action"),
                   purpose=request.query.get("purpose"),
                   decision=request.query.get("decision"), after=_int_param(request, "after", 0),
                   limit=limit)
    rows = await audit.query(q)
    body: dict[str, Any] = {"entries": _entries_body(rows)}
    if len(rows) == limit:
        body["next_after"] = rows[-1][0] + 1
    return json_response(body)


async def export(request: web.Request) -> web.Response:
    """A range with the left compact range, consistency proof and signed checkpoint, for
    `cetate audit verify` (docs/auditors.md)."""
    audit = request.app[AUDIT]
    size = (await audit.head()).size
    start = _int_param(request, "from", 0)
    end = min(_int_param(request, "to", size), size)
    if start > end:
        raise BadRequestData(f"from={start} is past to={end}")
    if end - start > MAX_EXPORT_ENTRIES:
        raise BadRequestData(f"An HTTP export holds at most {MAX_EXPORT_ENTRIES} entries; "
                             f"use smaller ranges or `cetate audit export`")
    older = [_int_param(request, "consistency_from")] if "consistency_from" in request.query \
        else []
    return web.Response(body=await audit.export(start, end, older),
                        content_type="application/json")


def auditors_only(handler: Handler) -> Handler:
    """`handler`, once access control is on, only for principals granted `administer` (or
    `read`, as the DPO is) on the API resource `audit` (contracts/policies/60-oversight.yaml);
    others get 403, itself audited as a denied access."""
    async def guarded(request: web.Request) -> web.StreamResponse:
        from broker.http import access  # access imports this module

        guard = access.guard_of(request, "")
        if guard.enforcing:
            for action in ("administer", "read"):
                decision = guard.decide_api(action, access.AUDIT_RESOURCE)
                if decision.allowed:
                    break
            else:
                raise access.Forbidden("The audit API is for auditors")
        return await handler(request)
    return guarded


def add_routes(app: web.Application) -> None:
    for path, handler in (("checkpoint", checkpoint), ("public-key", public_key),
                          ("entries", entries), ("proof/inclusion", inclusion),
                          ("proof/consistency", consistency), ("query", query),
                          ("export", export)):
        app.router.add_get(f"{API}/{path}", auditors_only(handler), allow_head=False)


def setup(app: web.Application, settings: Settings) -> None:
    """Install the audit log on the application unless CETATE_AUDIT=off (in the store's own
    database, sharing its commits; apart with CETATE_AUDIT_STORE): its middleware (after
    the edge's, so it sees handler errors before they become ProblemDetails), routes, and
    opening on startup / flushing and closing on cleanup."""
    if not settings.audit:
        return
    config = config_for(settings.store, settings.audit_store, settings.audit_key_dir,
                        settings.audit_origin, settings.pseudonym_key_file)
    # The log's tables are in the store's database and its entries ride in the store's own
    # transactions, unless CETATE_AUDIT_STORE keeps it apart (or the engine cannot hold it).
    in_store = None if config.store else getattr(app[BROKER].store, "audit", None)
    if in_store is not None:
        audit = AuditLog(config, in_store.storage, committer=in_store)
    else:
        audit = AuditLog(replace(config, store=config.store or str(config.key_dir.with_name(
            "audit.db"))))
    app[AUDIT] = audit
    app.middlewares.append(audit_middleware(audit))
    add_routes(app)

    async def open_log(_: web.Application) -> None:
        await audit.open()

    async def close_log(_: web.Application) -> None:
        await audit.close()

    app.on_startup.append(open_log)
    app.on_cleanup.append(close_log)
