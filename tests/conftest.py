"""Fixtures shared by every test: a real broker on a loopback port, with a fresh SQLite store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiohttp.test_utils import TestServer

from broker.app import create_app
from broker.settings import Settings

CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        store=f"sqlite:///{tmp_path}/cetate.db",
        allowed_networks=("127.0.0.0/8",),
        max_body_bytes=1_000_000,
        log_level="WARNING",
    )


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[TestServer]:
    server = TestServer(create_app(settings), host="127.0.0.1")
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def client(server: TestServer) -> AsyncIterator[httpx.AsyncClient]:
    base = f"http://127.0.0.1:{server.port}"
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        yield http
