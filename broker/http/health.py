"""Liveness and readiness: /health answers 200 while the store can serve a read, else 503."""

from __future__ import annotations

from aiohttp import web

from broker import __version__
from broker.http.edge import json_response
from broker.http.state import broker


async def health(request: web.Request) -> web.Response:
    store_ok = await broker(request).store.healthy()
    body = {"status": "ok" if store_ok else "unavailable", "version": __version__,
            "store": "ok" if store_ok else "unavailable"}
    return json_response(body, 200 if store_ok else 503)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/health", health)
