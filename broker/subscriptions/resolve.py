"""Resolve a receiver's host and judge every address it has (the I/O half of the address policy).

DNS can change between the subscription and a delivery (rebinding), so the senders call
`checked_address` before each connection and connect to the address it returns, never to the
name again. A name is refused if ANY of its addresses is refused: an attacker who controls a
zone could otherwise mix one public and one loopback record. (broker.ld.fetch does the same for
remote @contexts; its helper is private and raises the @context error type, hence this module.)
"""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import urlsplit

from broker.errors import BadRequestData
from broker.ld.netpolicy import AddressPolicy, parse_address
from broker.subscriptions.endpoint import Endpoint

RESOLVE_TIMEOUT = 5.0  # seconds; a resolver slower than this is down for our purposes


class RefusedAddress(Exception):
    """The receiver's host is, or resolves to, an address the policy refuses."""


class Unresolvable(Exception):
    """The receiver's host name does not resolve (now)."""


async def addresses(host: str, port: int) -> list[str]:
    """Every address of `host` (an IP literal stands for itself), scope ids dropped."""
    literal = parse_address(host)
    if literal is not None:
        return [str(literal)]
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT)
    except (OSError, UnicodeError, TimeoutError) as exc:
        raise Unresolvable(f"cannot resolve {host}: {exc or type(exc).__name__}") from None
    found = list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos))
    if not found:
        raise Unresolvable(f"{host} has no address")
    return found


async def checked_address(host: str, port: int, policy: AddressPolicy) -> str:
    """One address of `host` to connect to, after checking all of them."""
    found = await addresses(host, port)
    refused = [a for a in found if not policy.permits(a)]
    if refused:
        raise RefusedAddress(f"{host} resolves to a refused address ({', '.join(refused)})")
    return found[0]


async def check_endpoint_resolves(endpoint: Endpoint, policy: AddressPolicy) -> None:
    """At subscription time: BadRequestData if the endpoint's host resolves to a refused
    address. A name that does not resolve yet is accepted (the receiver may come later);
    deliveries check again anyway."""
    parts = urlsplit(endpoint.uri)
    try:
        await checked_address(parts.hostname or "", parts.port or 0, policy)
    except RefusedAddress as exc:
        raise BadRequestData(f"endpoint.uri {endpoint.uri!r}: {exc}; loopback, private and "
                             "link-local networks need the operator's --allow-network") from None
    except Unresolvable:
        return
