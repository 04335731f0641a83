"""Random q and scopeQ strings over HTTP never give a 500: only 200 or 400 BadRequestData."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.app import create_app
from broker.query.qlang import unparse
from broker.settings import Settings
from tests.broker.http.test_http_q import FIXTURES
from tests.broker.query.test_q_sql_agreement import QUERIES

ERR = "https://uri.etsi.org/ngsi-ld/errors/"
Q_TOKENS = [*'ab.:/[]()!=<>~;|,"\\-0129TZ #+%&', "..", "==", "!~=", "urn:x:1", "2026-11-23",
            "10:00:00", "T10:00:00Z", "observedAt", "createdAt", "unitCode", "datasetId", "true",
            "powerState", "address", "[streetAddress]", "refGroup", "1e999", "\u0219", "\x00"]
SCOPE_TOKENS = [*"/#+;|() a", "/Craiova", "/Centru", "\u0218"]


@pytest.fixture(scope="module")
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real broker in a thread of its own (hypothesis drives it with a sync client)."""
    path: Path = tmp_path_factory.mktemp("fuzz")
    app = create_app(Settings(store=f"sqlite:///{path}/cetate.db", log_level="WARNING",
                              max_body_bytes=1_000_000))
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    created = httpx.post(url + "/ngsi-ld/v1/entityOperations/create", json=FIXTURES)
    assert created.status_code == 201, created.text
    yield url
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=30)
    loop.close()


def _check(response: httpx.Response) -> None:
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        assert response.json()["type"] == ERR + "BadRequestData", response.text


TEXTS = st.one_of(st.lists(st.sampled_from(Q_TOKENS), max_size=20).map("".join),
                  QUERIES.map(unparse))


@settings(max_examples=250, deadline=None)
@given(q=TEXTS)
def test_random_q_gives_results_or_bad_request(client: httpx.Client, q: str) -> None:
    _check(client.get("/ngsi-ld/v1/entities", params={"type": "Streetlight", "q": q}))


@settings(max_examples=80, deadline=None)
@given(q=TEXTS, scope_q=st.lists(st.sampled_from(SCOPE_TOKENS), max_size=10).map("".join))
def test_random_query_bodies_give_results_or_bad_request(client: httpx.Client, q: str,
                                                         scope_q: str) -> None:
    _check(client.post("/ngsi-ld/v1/entityOperations/query",
                       json={"type": "Query", "q": q, "scopeQ": scope_q,
                             "entities": [{"type": "Streetlight"}]}))
