"""Fetch a JSON document from a URL the address policy permits (remote @contexts). The I/O edge.

DNS rebinding is closed by resolving the host once, refusing it if ANY address it resolves to is
refused, and connecting to that checked address: the request goes to the IP literal, with the
Host header and the TLS SNI/certificate check still naming the host (httpcore's "sni_hostname"
extension), so no second lookup can swap in another address. Each hop gets a fresh client, so a
connection verified for one host is never reused for another. Redirects are followed by hand,
at most MAX_REDIRECTS, each one checked like the first URL. Every failure is
LdContextNotAvailable (clause 5.5.2: the @context "cannot be retrieved") saying why.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from functools import cache
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
import orjson

from broker.errors import BadRequestData, LdContextNotAvailable
from broker.ld.netpolicy import AddressPolicy, parse_address

MAX_REDIRECTS = 3  # contexts are static documents; a longer chain is a misconfiguration or a trap
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_HEADERS = {
    "Accept": "application/ld+json, application/json;q=0.9, */*;q=0.1",
    # Uncompressed only: the size cap then bounds memory too (a gzip body expands ~1000x
    # inside one decoded chunk, before any check could run).
    "Accept-Encoding": "identity",
    "User-Agent": "cetate (NGSI-LD context broker)",
}


async def fetch_json(url: str, policy: AddressPolicy, *, timeout: float, max_bytes: int) -> Any:
    """The decoded JSON at `url`, fetched within `timeout` seconds in all (resolution, every
    redirect and the body) and at most `max_bytes` of body."""
    try:
        return await asyncio.wait_for(_fetch(url, policy, timeout, max_bytes), timeout)
    except TimeoutError:
        raise LdContextNotAvailable(f"Timed out after {timeout} s fetching {url}") from None


async def _fetch(url: str, policy: AddressPolicy, timeout: float, max_bytes: int) -> Any:
    for _ in range(MAX_REDIRECTS + 1):
        async with httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=timeout,
                                     verify=_tls()) as client:
            response = await _get_pinned(client, url, policy)
            try:
                if response.status_code in _REDIRECTS and "location" in response.headers:
                    url = urljoin(url, response.headers["location"])
                    continue
                if not response.is_success:
                    raise LdContextNotAvailable(f"{url} answered HTTP {response.status_code}")
                body = await _read_capped(response, url, max_bytes)
            except httpx.HTTPError as exc:
                raise LdContextNotAvailable(f"Cannot fetch {url}: {_reason(exc)}") from None
            finally:
                await response.aclose()
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            raise LdContextNotAvailable(f"{url} is not JSON") from None
    raise LdContextNotAvailable(f"More than {MAX_REDIRECTS} redirects fetching {url}")


async def _get_pinned(client: httpx.AsyncClient, url: str, policy: AddressPolicy) -> httpx.Response:
    """Send GET url to a checked address of its host; the response body is not read yet."""
    try:
        host = policy.check_url(url).encode("idna").decode("ascii")
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except BadRequestData as exc:
        raise LdContextNotAvailable(f"Refused to fetch {url}: {exc.detail}") from None
    except (UnicodeError, ValueError):
        raise LdContextNotAvailable(f"Malformed URL {url!r}") from None
    address = await _checked_address(host, port, policy)
    netloc = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    pinned = urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", parts.query, ""))
    default_port = port == (443 if parts.scheme.lower() == "https" else 80)
    authority = f"[{host}]" if ":" in host else host
    headers = {**_HEADERS, "Host": authority if default_port else f"{authority}:{port}"}
    try:
        request = client.build_request("GET", pinned, headers=headers,
                                       extensions={"sni_hostname": host})
        return await client.send(request, stream=True)
    except httpx.InvalidURL:
        raise LdContextNotAvailable(f"Malformed URL {url!r}") from None
    except httpx.HTTPError as exc:
        raise LdContextNotAvailable(f"Cannot fetch {url}: {_reason(exc)}") from None


async def _checked_address(host: str, port: int, policy: AddressPolicy) -> str:
    """One address of `host` to connect to, after checking every address it resolves to."""
    literal = parse_address(host)
    if literal is not None:
        addresses = [str(literal)]
    else:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise LdContextNotAvailable(f"Cannot resolve {host}: {exc}") from None
        # The address is the first item of sockaddr; drop an IPv6 scope id.
        addresses = list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos))
    refused = [a for a in addresses if not policy.permits(a)]
    if refused or not addresses:
        raise LdContextNotAvailable(
            f"{host} resolves to a refused address ({', '.join(refused) or 'none'})")
    return addresses[0]


async def _read_capped(response: httpx.Response, url: str, max_bytes: int) -> bytes:
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise LdContextNotAvailable(f"{url} answered with a {encoding} body; asked for identity")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise LdContextNotAvailable(f"{url} is larger than the limit of {max_bytes} bytes")
    body = bytearray()
    async for chunk in response.aiter_raw():
        body += chunk
        if len(body) > max_bytes:
            raise LdContextNotAvailable(f"{url} is larger than the limit of {max_bytes} bytes")
    return bytes(body)


@cache
def _tls() -> ssl.SSLContext:
    """One verifying TLS context for every client (building one loads the CA bundle, ~20 ms)."""
    return httpx.create_ssl_context(trust_env=False)


def _reason(exc: httpx.HTTPError) -> str:
    return str(exc) or type(exc).__name__
