"""Notifications over HTTP(S): POST with httpx (the I/O edge).

Each delivery resolves the receiver's host, checks every address with the policy (DNS can have
changed since the subscription) and connects to the checked address, the Host header and TLS
SNI/certificate check still naming the host (as broker.ld.fetch does). Redirects are not
followed: a 3xx could send the notification, and its receiverInfo credentials, anywhere.

Status classes, by table:
    2xx                                       delivered
    408, 425, 429, 5xx, timeouts, resets      retry (Retry-After honoured, up to a cap)
    3xx, other 4xx, refused address           failed for good
"""

from __future__ import annotations

import asyncio
import ssl
from collections import OrderedDict
from functools import cache
from urllib.parse import urlsplit, urlunsplit

import httpx

from broker.ld.netpolicy import AddressPolicy
from broker.subscriptions.notification import Outgoing
from broker.subscriptions.resolve import RefusedAddress, Unresolvable, checked_address
from broker.subscriptions.sender import Outcome, Result

DEFAULT_TIMEOUT = 10.0  # seconds for one POST, connection included (endpoint.timeout overrides)
MAX_CLIENTS = 256  # receivers with an open connection pool; the least recently used is closed
MAX_RESPONSE_BYTES = 64 * 1024  # a receiver's answer is read (to reuse the connection), not kept
MAX_RETRY_AFTER = 3600.0  # a Retry-After beyond an hour is a misconfiguration; we cap it
_RETRY_STATUSES = frozenset({408, 425, 429})


def classify(status: int) -> Outcome:
    if 200 <= status < 300:
        return Outcome.DELIVERED
    if status in _RETRY_STATUSES or status >= 500:
        return Outcome.RETRY
    return Outcome.FAILED


def _retry_after(value: str | None) -> float | None:
    if value is None or not value.strip().isdigit():
        return None  # the HTTP-date form is rare from receivers; backoff applies instead
    return min(float(value.strip()), MAX_RETRY_AFTER)


@cache
def _tls() -> ssl.SSLContext:
    return httpx.create_ssl_context(trust_env=False)


class HttpSender:
    """Sends Outgoing notifications to http(s) endpoints; one connection pool per receiver."""

    def __init__(self, policy: AddressPolicy, *, timeout: float = DEFAULT_TIMEOUT,
                 verify: ssl.SSLContext | bool | None = None) -> None:
        self.policy = policy
        self.timeout = timeout
        self._verify = _tls() if verify is None else verify
        self._clients: OrderedDict[str, httpx.AsyncClient] = OrderedDict()
        self._closing: set[asyncio.Task[None]] = set()  # evicted pools being closed

    def _client(self, origin: str) -> httpx.AsyncClient:
        client = self._clients.get(origin)
        if client is not None:
            self._clients.move_to_end(origin)
            return client
        client = httpx.AsyncClient(trust_env=False, follow_redirects=False,
                                   timeout=self.timeout, verify=self._verify)
        self._clients[origin] = client
        while len(self._clients) > MAX_CLIENTS:
            _, old = self._clients.popitem(last=False)
            task = asyncio.get_running_loop().create_task(old.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        return client

    async def send(self, out: Outgoing) -> Result:
        parts = urlsplit(out.uri)
        scheme = parts.scheme.lower()
        try:
            host = (parts.hostname or "").encode("idna").decode("ascii")
            port = parts.port or (443 if scheme == "https" else 80)
        except (UnicodeError, ValueError):
            return Result(Outcome.FAILED, f"malformed host in {out.uri!r}")
        timeout = out.timeout or self.timeout
        try:
            async with asyncio.timeout(timeout):
                address = await checked_address(host, port, self.policy)
                return await self._post(out, scheme, host, port, address, parts.path,
                                        parts.query, timeout)
        except RefusedAddress as exc:
            return Result(Outcome.FAILED, str(exc))
        except Unresolvable as exc:
            return Result(Outcome.RETRY, str(exc))
        except TimeoutError:
            return Result(Outcome.RETRY, f"no answer within {timeout} s")
        except httpx.HTTPError as exc:
            return Result(Outcome.RETRY, f"{type(exc).__name__}: {exc}".rstrip(": "))

    async def _post(self, out: Outgoing, scheme: str, host: str, port: int, address: str,
                    path: str, query: str, timeout: float) -> Result:
        netloc = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
        pinned = urlunsplit((scheme, netloc, path or "/", query, ""))
        default_port = port == (443 if scheme == "https" else 80)
        authority = f"[{host}]" if ":" in host else host
        headers = [("Host", authority if default_port else f"{authority}:{port}"),
                   *out.headers]
        client = self._client(f"{scheme}://{authority}:{port}")
        request = client.build_request("POST", pinned, headers=headers, content=out.payload,
                                       timeout=timeout, extensions={"sni_hostname": host})
        response = await client.send(request, stream=True)
        try:
            read = 0
            async for chunk in response.aiter_raw():
                read += len(chunk)
                if read > MAX_RESPONSE_BYTES:
                    break  # enough: the status is what counts; the connection is dropped
        finally:
            await response.aclose()
        outcome = classify(response.status_code)
        detail = f"HTTP {response.status_code}"
        if 300 <= response.status_code < 400:
            detail += " (redirects are not followed)"
        retry_after = _retry_after(response.headers.get("retry-after")) \
            if outcome is Outcome.RETRY else None
        return Result(outcome, detail, response.status_code, retry_after)

    async def aclose(self) -> None:
        clients = list(self._clients.values())
        self._clients.clear()
        await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)
