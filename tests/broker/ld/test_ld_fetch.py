"""fetch_json against a real HTTP server on loopback: limits, redirects, refusals, pinning."""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from broker.errors import LdContextNotAvailable
from broker.ld.fetch import MAX_REDIRECTS, fetch_json
from broker.ld.netpolicy import AddressPolicy

LOOPBACK = AddressPolicy("127.0.0.0/8")
LIMIT = 10_000


@dataclass
class Remote:
    base: str
    port: int
    hits: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)


@pytest.fixture
async def remote() -> AsyncIterator[Remote]:
    release = asyncio.Event()
    seen = Remote("", 0)

    async def serve(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        seen.hits.append(name)
        seen.hosts.append(request.headers.get("Host", ""))
        if name == "json":
            return web.json_response({"@context": {"a": "https://ex.org/a"}})
        if name.startswith("redirect"):
            left = int(name.removeprefix("redirect"))
            raise web.HTTPFound(f"/redirect{left - 1}" if left > 0 else "/json")
        if name == "to-private":
            raise web.HTTPFound("http://10.0.0.1/x")
        if name == "to-file":
            raise web.HTTPFound("file:///etc/passwd")
        if name == "big-declared":
            return web.json_response({"x": "y" * LIMIT})
        if name == "big-chunked":
            response = web.StreamResponse()
            response.enable_chunked_encoding()
            await response.prepare(request)
            for _ in range(20):
                await response.write(b" " * 1000)
            await response.write_eof()
            return response
        if name == "slow":
            await release.wait()
        if name == "html":
            return web.Response(text="<html>", content_type="text/html")
        if name == "gzip":
            return web.Response(body=gzip.compress(b'{"a": 1}'),
                                headers={"Content-Encoding": "gzip"},
                                content_type="application/json")
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/{name}", serve)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    assert server.port is not None
    seen.base, seen.port = f"http://127.0.0.1:{server.port}", server.port
    yield seen
    release.set()
    await server.close()


async def fetch(url: str, policy: AddressPolicy = LOOPBACK, timeout: float = 2.0) -> object:
    return await fetch_json(url, policy, timeout=timeout, max_bytes=LIMIT)


async def test_fetches_json(remote: Remote) -> None:
    assert await fetch(remote.base + "/json") == {"@context": {"a": "https://ex.org/a"}}


async def test_host_name_is_resolved_checked_and_kept_in_host_header(remote: Remote) -> None:
    first = socket.getaddrinfo("localhost", remote.port, type=socket.SOCK_STREAM)[0][4][0]
    if not str(first).startswith("127."):
        pytest.skip("localhost does not resolve to 127.0.0.1 first here")
    url = f"http://localhost:{remote.port}/json"
    assert await fetch(url) == {"@context": {"a": "https://ex.org/a"}}
    assert remote.hosts == [f"localhost:{remote.port}"]
    # The name passes the URL check, but the address it resolves to is refused.
    with pytest.raises(LdContextNotAvailable, match="refused address"):
        await fetch(url, AddressPolicy())
    assert len(remote.hits) == 1


async def test_loopback_refused_without_allowance(remote: Remote) -> None:
    for url in (remote.base + "/json", f"http://0x7f.1:{remote.port}/json",
                f"http://2130706433:{remote.port}/json", f"http://[::1]:{remote.port}/json"):
        with pytest.raises(LdContextNotAvailable, match="refused"):
            await fetch(url, AddressPolicy())
    assert remote.hits == []


async def test_redirects_followed_within_the_limit(remote: Remote) -> None:
    assert await fetch(f"{remote.base}/redirect{MAX_REDIRECTS - 1}") is not None
    remote.hits.clear()
    with pytest.raises(LdContextNotAvailable, match="redirects"):
        await fetch(f"{remote.base}/redirect{MAX_REDIRECTS}")
    assert len(remote.hits) == MAX_REDIRECTS + 1


@pytest.mark.parametrize("name", ["to-private", "to-file"])
async def test_each_redirect_is_checked(remote: Remote, name: str) -> None:
    with pytest.raises(LdContextNotAvailable, match="Refused"):
        await fetch(f"{remote.base}/{name}")


@pytest.mark.parametrize("name", ["big-declared", "big-chunked"])
async def test_size_cap(remote: Remote, name: str) -> None:
    with pytest.raises(LdContextNotAvailable, match="larger than the limit"):
        await fetch(f"{remote.base}/{name}")


async def test_timeout(remote: Remote) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(LdContextNotAvailable, match="Timed out"):
        await fetch(f"{remote.base}/slow", timeout=0.3)
    assert loop.time() - started < 2


@pytest.mark.parametrize(("name", "reason"), [
    ("html", "not JSON"), ("missing", "HTTP 404"), ("gzip", "gzip"),
])
async def test_failures_say_why(remote: Remote, name: str, reason: str) -> None:
    with pytest.raises(LdContextNotAvailable, match=reason):
        await fetch(f"{remote.base}/{name}")


async def test_unreachable_and_malformed() -> None:
    with pytest.raises(LdContextNotAvailable, match="Cannot fetch"):
        await fetch("http://127.0.0.1:1/x")  # nothing listens on port 1
    with pytest.raises(LdContextNotAvailable, match="Refused"):
        await fetch("ftp://127.0.0.1/x")
    with pytest.raises(LdContextNotAvailable):
        await fetch("http://127.0.0.1:99999/x")


async def test_connects_to_the_checked_address_only(
        remote: Remote, monkeypatch: pytest.MonkeyPatch) -> None:
    """A name is resolved once; the request goes to that address with the name as Host, so a
    second (rebinding) lookup never happens. No real DNS here, so the loop's resolver is
    replaced by a table."""
    table = {"rebind.example": ["127.0.0.1"], "mixed.example": ["8.8.8.8", "127.0.0.1"]}
    loop = asyncio.get_running_loop()

    async def getaddrinfo(host: str, port: int, **_: object) -> list[tuple[object, ...]]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in table[host]]

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    url = f"http://rebind.example:{remote.port}/json"
    assert await fetch(url) == {"@context": {"a": "https://ex.org/a"}}
    assert remote.hosts == [f"rebind.example:{remote.port}"]
    with pytest.raises(LdContextNotAvailable, match=r"refused address \(127\.0\.0\.1\)"):
        await fetch(f"http://mixed.example:{remote.port}/json", AddressPolicy())
    assert len(remote.hits) == 1
