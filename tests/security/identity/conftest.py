"""Fixtures of the identity tests: a real JWKS endpoint on a loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestServer

from tests.security.identity.kit import JwksServer


@pytest.fixture
async def jwks_server() -> AsyncIterator[JwksServer]:
    served = JwksServer()
    server = TestServer(served.app(), host="127.0.0.1")
    await server.start_server()
    served.base = f"http://127.0.0.1:{server.port}"
    try:
        yield served
    finally:
        await server.close()
