"""The resolver against a real HTTP server on loopback, with an in-memory context store."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from broker.errors import BadRequestData, LdContextNotAvailable, ResourceNotFound
from broker.ld.netpolicy import AddressPolicy
from broker.ld.resolver import HOSTED_PREFIX, MAX_DEPTH, MAX_DOCUMENTS, ContextResolver
from broker.ld.termmap import CORE_TERMS
from broker.store.protocol import StoredContext

CORE_UNVERSIONED = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"
LAMP = {"@context": {"Lamp": "https://ex.org/Lamp"}}
NOW = "2026-11-23T10:00:00.000Z"


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
        ctx = self.items[context_id]
        self.items[context_id] = replace(ctx, last_used_at=when,
                                         number_of_hits=ctx.number_of_hits + 1)


@dataclass
class Remote:
    base: str = ""
    hits: Counter[str] = field(default_factory=Counter)
    mutable: Any = field(default_factory=lambda: LAMP)


@pytest.fixture
async def remote() -> AsyncIterator[Remote]:
    seen = Remote()
    release = asyncio.Event()

    async def serve(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        seen.hits[request.path_qs] += 1
        documents: dict[str, Any] = {
            "lamp.jsonld": LAMP,
            "nested.jsonld": {"@context": ["lamp.jsonld", {"Pole": "https://ex.org/Pole"}]},
            "loop.jsonld": {"@context": str(request.url)},
            "a.jsonld": {"@context": "/b.jsonld"},
            "b.jsonld": {"@context": ["/lamp.jsonld", "/a.jsonld"]},
            "import.jsonld": {"@context": {"@import": "lamp.jsonld", "Pole": "ex2:Pole",
                                           "ex2": "https://ex2.org/"}},
            "fan.jsonld": {"@context": [f"/lamp.jsonld?n={n}" for n in range(MAX_DOCUMENTS)]},
            "nocontext.jsonld": {"lamp": 1},
            "mutable.jsonld": seen.mutable,
        }
        if name == "chain":
            n, stop = int(request.query["n"]), int(request.query["stop"])
            if n == stop:
                return web.json_response({"@context": {"Deep": "https://ex.org/Deep"}})
            return web.json_response({"@context": f"/chain?n={n + 1}&stop={stop}"})
        if name == "slow.jsonld":
            await release.wait()
        if name == "redirect":
            raise web.HTTPFound("/lamp.jsonld")
        if name in documents and documents[name] is not None:
            return web.json_response(documents[name])
        if name == "html":
            return web.Response(text="<html>", content_type="text/html")
        return web.Response(status=404)

    async def other_broker(request: web.Request) -> web.Response:
        seen.hits[request.path] += 1
        return web.json_response(LAMP)

    app = web.Application()
    app.router.add_get("/ngsi-ld/v1/jsonldContexts/{id}", other_broker)
    app.router.add_get("/{name}", serve)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    seen.base = f"http://127.0.0.1:{server.port}"
    yield seen
    release.set()
    await server.close()


def resolver(store: MemoryContexts | None = None, allowed: str = "127.0.0.0/8",
             timeout: float = 0.5, **options: Any) -> ContextResolver:
    return ContextResolver(store or MemoryContexts(), AddressPolicy(allowed), timeout=timeout,
                           max_bytes=100_000, **options)


# -- remote contexts -----------------------------------------------------------------------------
async def test_remote_context_fetched_once_and_cached(remote: Remote) -> None:
    store = MemoryContexts()
    r = resolver(store)
    url = remote.base + "/lamp.jsonld"
    first = await r.term_map(url)
    assert first.expand("Lamp") == "https://ex.org/Lamp"
    assert first.expand("location") == "https://uri.etsi.org/ngsi-ld/location"
    assert await r.term_map(url) is first
    assert await r.term_map([url, CORE_UNVERSIONED]) is not None
    assert remote.hits["/lamp.jsonld"] == 1
    cached = await store.list_contexts("Cached")
    assert [(c.url, c.body) for c in cached] == [(url, LAMP)]
    assert cached[0].id.startswith(HOSTED_PREFIX)
    # Another process (or one that lost its caches) finds it in the store without a fetch.
    again = await resolver(store).term_map(url)
    assert again.expand("Lamp") == "https://ex.org/Lamp" and remote.hits["/lamp.jsonld"] == 1
    used = await store.get_context(url)
    assert used is not None and used.number_of_hits == 1 and used.last_used_at


async def test_concurrent_requests_share_one_fetch(remote: Remote) -> None:
    r = resolver()
    maps = await asyncio.gather(*(r.term_map(remote.base + "/lamp.jsonld") for _ in range(8)))
    assert all(m is maps[0] for m in maps)
    assert remote.hits["/lamp.jsonld"] == 1


async def test_nested_relative_redirect_and_import(remote: Remote) -> None:
    nested = await resolver().term_map(remote.base + "/nested.jsonld")
    assert nested.expand("Lamp") == "https://ex.org/Lamp"  # "lamp.jsonld", relative to it
    assert nested.expand("Pole") == "https://ex.org/Pole"
    redirected = await resolver().term_map(remote.base + "/redirect")
    assert redirected.expand("Lamp") == "https://ex.org/Lamp"
    imported = await resolver().term_map(remote.base + "/import.jsonld")
    assert imported.expand("Lamp") == "https://ex.org/Lamp"
    assert imported.expand("Pole") == "https://ex2.org/Pole"


async def test_cycles_are_refused(remote: Remote) -> None:
    for name in ("loop.jsonld", "a.jsonld"):
        with pytest.raises(LdContextNotAvailable, match="includes itself"):
            await resolver().term_map(f"{remote.base}/{name}")


async def test_depth_limit(remote: Remote) -> None:
    deepest = await resolver().term_map(f"{remote.base}/chain?n=0&stop={MAX_DEPTH - 1}")
    assert deepest.expand("Deep") == "https://ex.org/Deep"
    with pytest.raises(LdContextNotAvailable, match="deeper than"):
        await resolver().term_map(f"{remote.base}/chain?n=0&stop={MAX_DEPTH}")


async def test_fan_out_limit(remote: Remote) -> None:
    with pytest.raises(LdContextNotAvailable, match="more than"):
        await resolver().term_map(remote.base + "/fan.jsonld")


@pytest.mark.parametrize(("name", "reason"), [
    ("html", "not JSON"), ("missing", "HTTP 404"), ("nocontext.jsonld", "no @context"),
    ("slow.jsonld", "Timed out"),
])
async def test_unavailable(remote: Remote, name: str, reason: str) -> None:
    store = MemoryContexts()
    with pytest.raises(LdContextNotAvailable, match=reason):
        await resolver(store).term_map(f"{remote.base}/{name}")
    assert store.items == {}  # nothing unusable is cached


async def test_loopback_refused_without_allowance(remote: Remote) -> None:
    with pytest.raises(LdContextNotAvailable, match="refused"):
        await resolver(allowed="").term_map(remote.base + "/lamp.jsonld")
    with pytest.raises(LdContextNotAvailable):
        await resolver(allowed="").term_map("http://localhost:1/x.jsonld")
    with pytest.raises(LdContextNotAvailable, match="not http"):
        await resolver().term_map("file:///etc/passwd")
    assert remote.hits == Counter()


# -- caching of compiled contexts ----------------------------------------------------------------
async def test_equal_contexts_share_one_term_map() -> None:
    r = resolver()
    one = await r.term_map({"Lamp": "https://ex.org/Lamp", "Pole": "https://ex.org/Pole"})
    assert await r.term_map({"Pole": "https://ex.org/Pole", "Lamp": "https://ex.org/Lamp"}) is one
    assert await r.term_map([{"Lamp": "https://ex.org/Lamp", "Pole": "https://ex.org/Pole"},
                             CORE_UNVERSIONED]) is not one  # a list is another context value
    other = await r.term_map({"Lamp": "https://ex.org/Other"})
    assert other is not one and other.expand("Lamp") == "https://ex.org/Other"
    for core_only in (None, CORE_UNVERSIONED, [CORE_UNVERSIONED], []):
        assert await r.term_map(core_only) is CORE_TERMS


async def test_lru_evicts_the_least_recently_used() -> None:
    r = resolver(cache_size=2)
    a = await r.term_map({"A": "https://ex.org/A"})
    b = await r.term_map({"B": "https://ex.org/B"})
    assert await r.term_map({"A": "https://ex.org/A"}) is a  # a is now the most recent
    await r.term_map({"C": "https://ex.org/C"})  # evicts b
    assert await r.term_map({"A": "https://ex.org/A"}) is a
    b_again = await r.term_map({"B": "https://ex.org/B"})
    assert b_again is not b and b_again.expand("B") == "https://ex.org/B"


async def test_bad_context_values() -> None:
    r = resolver()
    for bad in (42, [42], {"a": 5}, {"a": "b", "b": "a"}):
        with pytest.raises(BadRequestData):
            await r.term_map(bad)


# -- implicitly created contexts -----------------------------------------------------------------
async def test_inline_contexts_are_remembered_once() -> None:
    store = MemoryContexts()
    r = resolver(store)
    inline = [{"Lamp": "https://ex.org/Lamp", "Pole": "https://ex.org/Pole"}, CORE_UNVERSIONED]
    terms = await r.term_map(inline)
    assert terms.expand("Lamp") == "https://ex.org/Lamp"
    await resolver(store).term_map([{"Pole": "https://ex.org/Pole",
                                     "Lamp": "https://ex.org/Lamp"}, CORE_UNVERSIONED])
    implicit = await store.list_contexts("ImplicitlyCreated")
    assert len(implicit) == 1 and implicit[0].body == {"@context": inline}
    assert implicit[0].id.startswith(HOSTED_PREFIX)
    # It can be referred to by its id afterwards.
    assert (await resolver(store).term_map(implicit[0].id)).expand("Pole") == \
        "https://ex.org/Pole"


async def test_remember_inline_off(remote: Remote) -> None:
    store = MemoryContexts()
    await resolver(store, remember_inline=False).term_map({"Lamp": "https://ex.org/Lamp"})
    await resolver(store).term_map([remote.base + "/lamp.jsonld"])  # URLs only: not inline
    assert await store.list_contexts("ImplicitlyCreated") == []


# -- hosted contexts (/jsonldContexts) ---------------------------------------------------------
async def test_hosted_contexts() -> None:
    store = MemoryContexts()
    r = resolver(store, self_base_url="http://broker.example/")
    ctx = await r.add_hosted(LAMP, NOW)
    assert ctx.kind == "Hosted" and ctx.id.startswith(HOSTED_PREFIX) and ctx.url == ctx.id
    assert ctx.created_at == NOW
    for ref in (f"http://broker.example/ngsi-ld/v1/jsonldContexts/{ctx.id}",
                f"https://any.host:8443/ngsi-ld/v1/jsonldContexts/{quote(ctx.id, safe='')}",
                ctx.id):
        assert (await resolver(store).term_map(ref)).expand("Lamp") == "https://ex.org/Lamp"
    assert (await r.get(ctx.id)).body == LAMP
    assert [c.id for c in await r.list("Hosted")] == [ctx.id]
    assert await r.list("Cached") == []
    with pytest.raises(BadRequestData):
        await r.list("Weird")
    await r.delete(ctx.id)
    with pytest.raises(ResourceNotFound):
        await r.get(ctx.id)
    with pytest.raises(ResourceNotFound):
        await r.delete(ctx.id)
    with pytest.raises(LdContextNotAvailable, match="held by this broker"):
        await r.term_map(f"http://broker.example/ngsi-ld/v1/jsonldContexts/{ctx.id}")


async def test_context_hosted_by_another_broker_is_fetched(remote: Remote) -> None:
    r = resolver(self_base_url="http://broker.example")
    url = f"{remote.base}/ngsi-ld/v1/jsonldContexts/{HOSTED_PREFIX}elsewhere"
    assert (await r.term_map(url)).expand("Lamp") == "https://ex.org/Lamp"
    assert remote.hits[f"/ngsi-ld/v1/jsonldContexts/{HOSTED_PREFIX}elsewhere"] == 1


@pytest.mark.parametrize("body", [
    {"no": "context"}, {"@context": 5}, [LAMP], "x", {"@context": {"a": "b", "b": "a"}},
])
async def test_bad_hosted_bodies(body: Any) -> None:
    store = MemoryContexts()
    with pytest.raises(BadRequestData):
        await resolver(store).add_hosted(body, NOW)
    assert store.items == {}


async def test_hosting_a_context_that_cannot_be_fetched_fails() -> None:
    with pytest.raises(LdContextNotAvailable):
        await resolver(allowed="").add_hosted({"@context": "http://127.0.0.1:1/x"}, NOW)


async def test_core_context_cannot_be_deleted() -> None:
    for core_url in (CORE_UNVERSIONED,
                     "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld"):
        with pytest.raises(BadRequestData, match="core"):
            await resolver().delete(core_url)
        with pytest.raises(BadRequestData, match="core"):
            await resolver().delete(core_url, reload=True)


async def test_reload_a_cached_context(remote: Remote) -> None:
    store = MemoryContexts()
    r = resolver(store)
    url = remote.base + "/mutable.jsonld"
    assert (await r.term_map(url)).expand("Lamp") == "https://ex.org/Lamp"
    (cached,) = await store.list_contexts("Cached")
    remote.mutable = {"@context": {"Lamp": "https://ex.org/NewLamp"}}
    assert (await r.term_map(url)).expand("Lamp") == "https://ex.org/Lamp"  # still cached
    await r.delete(cached.id, reload=True)
    assert (await r.term_map(url)).expand("Lamp") == "https://ex.org/NewLamp"
    assert (await r.get(cached.id)).body == remote.mutable
    # A failed reload keeps the copy held so far.
    remote.mutable = None
    with pytest.raises(LdContextNotAvailable, match="404"):
        await r.delete(cached.id, reload=True)
    assert (await r.get(cached.id)).body == {"@context": {"Lamp": "https://ex.org/NewLamp"}}
    # Without reload the cached copy goes, and the next use fetches it again.
    await r.delete(cached.id)
    assert await store.list_contexts("Cached") == []


async def test_only_cached_contexts_reload() -> None:
    r = resolver()
    hosted = await r.add_hosted(LAMP, NOW)
    with pytest.raises(BadRequestData, match="Cached"):
        await r.delete(hosted.id, reload=True)
    assert (await r.get(hosted.id)).kind == "Hosted"


async def test_cached_documents_expire(remote: Remote) -> None:
    """Another replica may reload a context: a process looks again once its copy is old."""
    store = MemoryContexts()
    stale = resolver(store, cache_ttl=0.0)  # every copy is stale at once
    await stale.term_map(remote.base + "/lamp.jsonld")
    store.items.clear()  # as if another replica had deleted the cached context
    await stale.term_map([remote.base + "/lamp.jsonld", {"extra": "urn:x:extra"}])
    assert remote.hits["/lamp.jsonld"] == 2
    kept = resolver(MemoryContexts())
    await kept.term_map(remote.base + "/lamp.jsonld")
    await kept.term_map([remote.base + "/lamp.jsonld", {"extra": "urn:x:extra"}])
    assert remote.hits["/lamp.jsonld"] == 3  # within the TTL the copy is used
