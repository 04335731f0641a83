"""Assemble one broker process: the aiohttp application, its store and its @context resolver."""

from __future__ import annotations

import asyncio

from aiohttp import web

from broker import validation
from broker.http import apidocs, audit, batch, contexts, discovery, entities, health, query
from broker.http.edge import edge_middleware
from broker.http.state import BROKER, Broker
from broker.ld.netpolicy import AddressPolicy
from broker.ld.resolver import ContextResolver
from broker.settings import Settings
from broker.store.open import open_store
from broker.store.protocol import Store

ROUTE_MODULES = (health, entities, query, batch, contexts, discovery, apidocs)


def create_app(settings: Settings, store: Store | None = None) -> web.Application:
    """The application; the store opens on startup and closes on cleanup (after in-flight
    requests have finished, which aiohttp guarantees on a graceful shutdown)."""
    app = web.Application(middlewares=[edge_middleware], client_max_size=settings.max_body_bytes)
    store = store or open_store(settings.store, migrate=settings.migrate)
    policy = AddressPolicy(settings.allowed_networks)
    resolver = ContextResolver(
        store,
        policy,
        timeout=settings.context_timeout,
        max_bytes=settings.context_max_bytes,
        self_base_url=settings.base_url,
    )
    app[BROKER] = Broker(settings=settings, store=store, contexts=resolver)
    for module in ROUTE_MODULES:
        module.add_routes(app)
    audit.setup(app, settings)  # middleware after the edge's, /cetate/v1/audit routes

    async def open_store_on_startup(_: web.Application) -> None:
        await store.open()
        # Load and compile the contracts now, not on the first write (about a second of work).
        await asyncio.get_running_loop().run_in_executor(None, validation.contracts)

    async def close_store_on_cleanup(_: web.Application) -> None:
        await store.close()

    app.on_startup.append(open_store_on_startup)
    app.on_cleanup.append(close_store_on_cleanup)
    return app
