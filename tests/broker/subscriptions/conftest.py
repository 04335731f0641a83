"""Real receivers for the delivery tests: an aiohttp server on a loopback port, and the local
Mosquitto (127.0.0.1:1883; skipped with the reason when it is down, failed when CI=true)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web

from broker.ld.netpolicy import AddressPolicy

MOSQUITTO = ("127.0.0.1", int(os.environ.get("CETATE_TEST_MQTT_PORT", "1883")))
LOOPBACK = AddressPolicy(["127.0.0.0/8", "::1/128"])  # what the tests' receivers need

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Receiver:
    """An HTTP receiver; `behave` decides each answer (default 200)."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    behave: Handler | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.behave is not None:
            return await self.behave(request)
        await self.record(request)
        return web.Response(status=200)

    async def record(self, request: web.Request) -> None:
        body = await request.read()
        self.received.append(Received(request.path, dict(request.headers), orjson.loads(body)))
        self.arrived.set()

    async def wait_for(self, count: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()


@contextlib.asynccontextmanager
async def serving_receiver() -> AsyncIterator[Receiver]:
    """A Receiver behind a real aiohttp server on its own loopback port."""
    rec = Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", rec.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    rec.url = f"http://127.0.0.1:{port}"
    try:
        yield rec
    finally:
        await runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with serving_receiver() as rec:
        yield rec


def _mosquitto_up() -> bool:
    try:
        with socket.create_connection(MOSQUITTO, timeout=1.0):
            return True
    except OSError:
        return False


@pytest.fixture
def mosquitto() -> str:
    """The MQTT broker's host:port, or a skip (a failure in CI)."""
    if not _mosquitto_up():
        reason = (f"Mosquitto is not listening on {MOSQUITTO[0]}:{MOSQUITTO[1]}; start it with "
                  "'mosquitto -d -c /etc/mosquitto/mosquitto.conf' (apt-get install mosquitto)")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return f"{MOSQUITTO[0]}:{MOSQUITTO[1]}"
