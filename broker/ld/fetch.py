"""Fetch a JSON document from a URL the address policy permits (remote @contexts).

DNS rebinding is closed by resolving the host once, checking every address it resolves to, and
connecting to that checked address (the Host header and TLS SNI keep the name), so a second
lookup can never swap in a refused address. Redirects are followed by hand, each one re-checked.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
import orjson

from broker.errors import BadRequestData, LdContextNotAvailable
from broker.ld.netpolicy import AddressPolicy, parse_address

MAX_REDIRECTS = 3  # contexts are static documents; a long chain is a misconfiguration or a trap
_ACCEPT = "application/ld+json, application/json;q=0.9"


async def _pinned_address(host: str, port: int, policy: AddressPolicy) -> str:
    literal = parse_address(host)
    if literal is not None:
        addresses = [str(literal)]
    else:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise LdContextNotAvailable(f"Cannot resolve {host}: {exc}") from None
        addresses = [str(info[4][0]) for info in infos]
    refused = [a for a in addresses if not policy.permits(a)]
    if refused or not addresses:
        raise LdContextNotAvailable(f"{host} resolves to a refused address ({', '.join(refused)})")
    return addresses[0]


async def fetch_json(url: str, policy: AddressPolicy, *, timeout: float, max_bytes: int) -> Any:
    """The decoded JSON at `url`; any failure is LdContextNotAvailable saying why."""
    try:
        return await asyncio.wait_for(_fetch(url, policy, max_bytes), timeout)
    except TimeoutError:
        raise LdContextNotAvailable(f"Timed out after {timeout}s fetching {url}") from None


async def _fetch(url: str, policy: AddressPolicy, max_bytes: int) -> Any:
    async with httpx.AsyncClient(follow_redirects=False, trust_env=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            try:
                host = policy.check_url(url)
            except BadRequestData as exc:
                raise LdContextNotAvailable(exc.detail) from None
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            address = await _pinned_address(host, port, policy)
            netloc = f"[{address}]" if ":" in address else address
            pinned = urlunsplit((parts.scheme, f"{netloc}:{port}", parts.path or "/",
                                 parts.query, ""))
            headers = {"Host": parts.netloc.rsplit("@", 1)[-1], "Accept": _ACCEPT}
            try:
                async with client.stream("GET", pinned, headers=headers,
                                         extensions={"sni_hostname": host}) as response:
                    if response.is_redirect and "location" in response.headers:
                        url = urljoin(url, response.headers["location"])
                        continue
                    if response.status_code != 200:
                        raise LdContextNotAvailable(
                            f"{url} answered HTTP {response.status_code}")
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > max_bytes:
                            raise LdContextNotAvailable(
                                f"{url} is larger than the limit of {max_bytes} bytes")
            except httpx.HTTPError as exc:
                raise LdContextNotAvailable(f"Cannot fetch {url}: {exc}") from None
            try:
                return orjson.loads(bytes(body))
            except orjson.JSONDecodeError:
                raise LdContextNotAvailable(f"{url} is not JSON") from None
        raise LdContextNotAvailable(f"More than {MAX_REDIRECTS} redirects from {url}")
