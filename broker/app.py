"""Assemble one broker process: the aiohttp application, its store and its @context resolver."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from aiohttp import web

from broker import validation
from broker.http import (
    access,
    apidocs,
    audit,
    batch,
    contexts,
    discovery,
    entities,
    health,
    identity,
    privacy,
    query,
    subscriptions,
)
from broker.http.edge import edge_middleware
from broker.http.state import BROKER, Broker
from broker.ld.netpolicy import AddressPolicy
from broker.ld.resolver import ContextResolver
from broker.settings import Settings
from broker.store.open import open_store
from broker.store.protocol import Store, SubscriptionRow
from broker.subscriptions.notification import Outgoing
from broker.subscriptions.outbox import Draft, PendingNotification
from broker.subscriptions.sender import Outcome, Result
from broker.subscriptions.service import Notifications
from broker.subscriptions.subscription import Subscription
from security.audit.entry import AuditRecord
from security.audit.entry import Principal as AuditPrincipal

ROUTE_MODULES = (health, entities, query, batch, contexts, discovery, subscriptions, privacy,
                 apidocs)
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@web.middleware
async def wake_dispatcher(request: web.Request, handler: Any) -> web.StreamResponse:
    """After a write, claim the notifications it recorded at once rather than at the next
    poll of the dispatcher."""
    try:
        return cast(web.StreamResponse, await handler(request))
    finally:
        if request.method in WRITE_METHODS:
            notifications = request.app[BROKER].notifications
            if notifications is not None:
                notifications.written()


def _audit_notification(app: web.Application) -> Any:
    """The audit entry of each notification attempt: as its subscription's owner, for its
    purpose, of the entities it told of after the owner's filter, with what that masked."""
    def record(row: PendingNotification, result: Result, outgoing: Outgoing | None) -> None:
        status = result.status or (200 if result.outcome is Outcome.DELIVERED else 502)
        sent = outgoing.audit if outgoing is not None else None
        tenant = outgoing.tenant if outgoing is not None else (
            row.draft.tenant if row.draft else "")
        entry = AuditRecord(action=audit.NOTIFY, tenant=tenant)
        if sent is not None:
            if sent.owner is not None:
                entry.principal = AuditPrincipal(sent.owner, sent.roles)
            entry.purpose = sent.purpose
            if sent.rules:
                entry.rule = ",".join(sent.rules)
            entry.note(entity_ids=[row.subscription_id, *sent.entity_ids], types=sent.types,
                       masked=sent.masked)
        else:  # none rendered (it failed; a retry follows), or one prepared before drafts
            entry.note(entity_ids=[row.subscription_id])
        audit.record_event(app, entry, status=status)
    return record


def create_app(settings: Settings, store: Store | None = None) -> web.Application:
    """The application; the store opens on startup and closes on cleanup (after in-flight
    requests have finished, which aiohttp guarantees on a graceful shutdown)."""
    app = web.Application(middlewares=[edge_middleware, wake_dispatcher],
                          client_max_size=settings.max_body_bytes)
    store = store or open_store(settings.store, migrate=settings.migrate)
    policy = AddressPolicy(settings.allowed_networks)
    resolver = ContextResolver(
        store,
        policy,
        timeout=settings.context_timeout,
        max_bytes=settings.context_max_bytes,
        self_base_url=settings.base_url,
    )

    def screen(stored: SubscriptionRow, sub: Subscription, draft: Draft) -> Draft | None:
        # Notifications are filtered with their owner's principal at delivery (issue 8).
        return access.screen_notifications(app[access.ACCESS])(stored, sub, draft)

    notifications = Notifications(store, resolver, policy, base_url=settings.base_url,
                                  on_result=_audit_notification(app), screen=screen)
    app[BROKER] = Broker(settings=settings, store=store, contexts=resolver,
                         notifications=notifications)
    for module in ROUTE_MODULES:
        module.add_routes(app)
    audit.setup(app, settings)  # middleware after the edge's, /cetate/v1/audit routes
    # Identity inside the audit middleware, so refused credentials are audited too; then the
    # policy layer, enforced once identity is configured (CETATE_ACCESS_CONTROL).
    access.setup(app, identity.setup(app, settings))
    purge = privacy.purge_job(app)  # retention (CETATE_PURGE_INTERVAL), one replica at a time

    async def open_store_on_startup(_: web.Application) -> None:
        await store.open()
        # Load and compile the contracts now, not on the first write (about a second of work).
        await asyncio.get_running_loop().run_in_executor(None, validation.contracts)
        await notifications.start()
        purge.start()

    async def stop_purge(_: web.Application) -> None:
        await purge.stop()  # before the audit log closes (its cleanup runs before ours)

    async def close_store_on_cleanup(_: web.Application) -> None:
        await notifications.stop()
        await store.close()

    app.on_startup.append(open_store_on_startup)
    app.on_shutdown.append(stop_purge)
    app.on_cleanup.append(close_store_on_cleanup)
    return app
