"""Where outbound requests (remote @contexts, notifications) may go. Pure.

Server-side request forgery is the risk: a client names a URL and the broker fetches it from
inside the city's network. So loopback, private, link-local, CGNAT and other special ranges are
refused however the address is spelled, unless an operator allows a network explicitly.

We keep our own list rather than trusting `ipaddress.is_private`: the Python this project
targets (3.11.7) predates the CVE-2024-4032 fix, which corrected that property's ranges.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from broker.errors import BadRequestData

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

BLOCKED_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",  # "this network" (RFC 791), 0.0.0.0 reaches the local host on Linux
        "10.0.0.0/8",  # private (RFC 1918)
        "100.64.0.0/10",  # carrier-grade NAT (RFC 6598)
        "127.0.0.0/8",  # loopback (RFC 1122)
        "169.254.0.0/16",  # link-local (RFC 3927), cloud metadata services live here
        "172.16.0.0/12",  # private (RFC 1918)
        "192.0.0.0/24",  # IETF protocol assignments (RFC 6890)
        "192.0.2.0/24",  # documentation TEST-NET-1 (RFC 5737)
        "192.88.99.0/24",  # 6to4 relay anycast (RFC 7526)
        "192.168.0.0/16",  # private (RFC 1918)
        "198.18.0.0/15",  # benchmarking (RFC 2544)
        "198.51.100.0/24",  # documentation TEST-NET-2
        "203.0.113.0/24",  # documentation TEST-NET-3
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved (RFC 1112), includes 255.255.255.255 broadcast
        "::/128",  # unspecified
        "::1/128",  # loopback
        "::ffff:0:0/96",  # IPv4-mapped (checked through the embedded address too)
        "64:ff9b::/96",  # NAT64 (RFC 6052)
        "64:ff9b:1::/48",  # local-use NAT64 (RFC 8215)
        "100::/64",  # discard-only (RFC 6666)
        "2001::/32",  # Teredo (RFC 4380)
        "2001:db8::/32",  # documentation (RFC 3849)
        "2002::/16",  # 6to4 (RFC 3056)
        "fc00::/7",  # unique local (RFC 4193)
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local, deprecated (RFC 3879)
        "ff00::/8",  # multicast
    )
)


def parse_address(text: str) -> IPAddress | None:
    """An IP address in any spelling the OS resolver accepts ("127.1", "0x7f.0.0.1",
    "2130706433", "[::1]"), or None if the text is not an IP literal."""
    host = text.strip().strip("[]")
    if "%" in host:  # zone index of a scoped IPv6 address
        host = host.split("%", 1)[0]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:  # inet_aton takes the legacy shorthand, octal and hex forms, as libc does
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _embedded_v4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in ipaddress.ip_network("64:ff9b::/96"):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.teredo is not None:
        return address.teredo[1]
    return None


def parse_networks(items: Iterable[str] | str) -> tuple[IPNetwork, ...]:
    """CIDRs from a list or a comma-separated string; ValueError names a bad one."""
    if isinstance(items, str):
        items = items.split(",")
    networks = []
    for item in items:
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"Not a network in CIDR notation: {item!r}") from None
    return tuple(networks)


class AddressPolicy:
    """Blocks the special ranges, except networks the operator allowed."""

    def __init__(self, allowed: Iterable[str] | str = ()) -> None:
        self.allowed = parse_networks(allowed)

    def permits(self, address: str | IPAddress) -> bool:
        ip = parse_address(address) if isinstance(address, str) else address
        if ip is None:
            return False
        if any(ip.version == n.version and ip in n for n in self.allowed):
            return True
        if any(ip.version == n.version and ip in n for n in BLOCKED_NETWORKS):
            inner = _embedded_v4(ip)
            # A mapped address is judged by the v4 address it carries, allowances included.
            return inner is not None and self.permits(inner)
        return True

    def check_url(self, url: str, schemes: Iterable[str] = ("http", "https")) -> str:
        """The URL's host if its scheme is allowed and it is not a refused IP literal.

        Host names are checked again on the addresses they resolve to, at connection time.
        """
        parts = urlsplit(url)
        if parts.scheme.lower() not in set(schemes):
            raise BadRequestData(f"URL scheme of {url!r} is not one of {', '.join(schemes)}")
        host = parts.hostname
        if not host:
            raise BadRequestData(f"URL {url!r} has no host")
        ip = parse_address(host)
        if ip is not None and not self.permits(ip):
            raise BadRequestData(f"URL {url!r} points at a refused address ({ip})")
        return host
