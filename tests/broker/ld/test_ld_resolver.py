"""The resolver against a real HTTP server on loopback, with an in-memory context store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from broker.errors import BadRequestData, LdContextNotAvailable, ResourceNotFound
from broker.ld.netpolicy import AddressPolicy
from broker.ld.resolver import ContextResolver
from broker.store.protocol import StoredContext

LAMP = {"@context": {"Lamp": "https://ex.org/Lamp"}}


class MemoryContexts:
    """The context half of the Store protocol, in memory."""

    def __init__(self) -> None:
        self.items: dict[str, StoredContext] = {}

    async def put_context(self, ctx: StoredContext) -> None:
        self.items[ctx.id] = ctx

    async def get_context(self, context_id: str) -> StoredContext | None:
        return self.items.get(context_id) or next(
            (c for c in self.items.values() if c.url == context_id), None)

    async def list_contexts(self, kind: str | None = None) -> list[StoredContext]:
        return [c for c in self.items.values() if kind is None or c.kind == kind]

    async def delete_context(self, context_id: str) -> bool:
        return self.items.pop(context_id, None) is not None

    async def touch_context(self, context_id: str, when: str) -> None:
        self.items[context_id] = replace(self.items[context_id], last_used_at=when,
                                         number_of_hits=self.items[context_id].number_of_hits + 1)


@pytest.fixture
async def remote() -> AsyncIterator[tuple[str, dict[str, int]]]:
    hits: dict[str, int] = {}

    async def serve(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        hits[name] = hits.get(name, 0) + 1
        if name == "lamp.jsonld":
            return web.json_response(LAMP)
        if name == "nested.jsonld":
            return web.json_response({"@context": [str(request.url.with_name("lamp.jsonld")),
                                                   {"Pole": "https://ex.org/Pole"}]})
        if name == "loop.jsonld":
            return web.json_response({"@context": str(request.url)})
        if name == "big.jsonld":
            return web.json_response({"@context": {f"t{i}": f"https://ex.org/{i}"
                                                   for i in range(50_000)}})
        if name == "slow.jsonld":
            await asyncio.sleep(5)
        if name == "html":
            return web.Response(text="<html>", content_type="text/html")
        if name == "redirect":
            raise web.HTTPFound("/lamp.jsonld")
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/{name}", serve)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield f"http://127.0.0.1:{server.port}", hits
    await server.close()


def resolver(store: Any = None, allowed: str = "127.0.0.0/8") -> ContextResolver:
    return ContextResolver(store or MemoryContexts(), AddressPolicy(allowed), timeout=1.0,
                           max_bytes=100_000)


async def test_remote_context_fetched_once_and_cached(remote: tuple[str, dict[str, int]]) -> None:
    base, hits = remote
    store = MemoryContexts()
    r = resolver(store)
    first = await r.term_map(base + "/lamp.jsonld")
    assert first.expand("Lamp") == "https://ex.org/Lamp"
    assert await r.term_map(base + "/lamp.jsonld") is first
    assert hits["lamp.jsonld"] == 1
    cached = await store.list_contexts("Cached")
    assert [c.url for c in cached] == [base + "/lamp.jsonld"]
    # A new process finds it in the store without fetching again.
    again = await resolver(store).term_map(base + "/lamp.jsonld")
    assert again.expand("Lamp") == "https://ex.org/Lamp" and hits["lamp.jsonld"] == 1
    used = await store.get_context(base + "/lamp.jsonld")
    assert used is not None and used.number_of_hits == 1 and used.last_used_at


async def test_nested_and_redirect(remote: tuple[str, dict[str, int]]) -> None:
    base, _ = remote
    terms = await resolver().term_map(base + "/nested.jsonld")
    assert terms.expand("Lamp") == "https://ex.org/Lamp"
    assert terms.expand("Pole") == "https://ex.org/Pole"
    assert (await resolver().term_map(base + "/redirect")).expand("Lamp") == "https://ex.org/Lamp"


@pytest.mark.parametrize("name", ["loop.jsonld", "big.jsonld", "slow.jsonld", "html", "missing"])
async def test_unavailable(remote: tuple[str, dict[str, int]], name: str) -> None:
    base, _ = remote
    with pytest.raises(LdContextNotAvailable):
        await resolver().term_map(base + "/" + name)


async def test_loopback_refused_without_allowance(remote: tuple[str, dict[str, int]]) -> None:
    base, hits = remote
    with pytest.raises(LdContextNotAvailable, match="refused"):
        await resolver(allowed="").term_map(base + "/lamp.jsonld")
    assert hits == {}
    with pytest.raises(LdContextNotAvailable):
        await resolver(allowed="").term_map("http://localhost:1/x.jsonld")


async def test_inline_and_core_contexts() -> None:
    r = resolver()
    inline = await r.term_map([{"Lamp": "https://ex.org/Lamp"},
                               "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"])
    assert inline.expand("Lamp") == "https://ex.org/Lamp"
    with pytest.raises(BadRequestData):
        await r.term_map(42)


async def test_hosted_contexts() -> None:
    store = MemoryContexts()
    r = resolver(store)
    ctx = await r.add_hosted(LAMP, "2026-11-23T10:00:00.000Z")
    assert ctx.kind == "Hosted"
    url = f"http://broker.example/ngsi-ld/v1/jsonldContexts/{ctx.id}"
    assert (await r.term_map(url)).expand("Lamp") == "https://ex.org/Lamp"
    assert (await r.get(ctx.id)).body == LAMP
    await r.delete(ctx.id)
    with pytest.raises(ResourceNotFound):
        await r.get(ctx.id)
    with pytest.raises(LdContextNotAvailable):
        await r.term_map(url)
    with pytest.raises(BadRequestData):
        await r.add_hosted({"no": "context"}, "2026-11-23T10:00:00.000Z")
    with pytest.raises(BadRequestData):
        await r.delete("https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld")
