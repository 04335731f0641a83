"""Where outbound requests (remote @contexts, notifications) may go. Pure.

Server-side request forgery is the risk: a client names a URL and the broker fetches it from
inside the city's network. So loopback, private, link-local, CGNAT and the other special-purpose
ranges are refused however the address is spelt, unless an operator allows a network explicitly.

We keep our own list rather than trusting `ipaddress.IPv4Address.is_private` and friends: the
Python this project targets (3.11.7) predates the CVE-2024-4032 fix (3.11.10), which corrected
the ranges those properties report; and "not private" is not "safe to fetch" anyway.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from broker.errors import BadRequestData

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_SCHEMES = ("http", "https")

# The IANA special-purpose registries (RFC 6890 and successors), less what is globally routed.
BLOCKED_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",  # "this network" (RFC 791); 0.0.0.0 reaches the local host on Linux
        "10.0.0.0/8",  # private (RFC 1918)
        "100.64.0.0/10",  # carrier-grade NAT (RFC 6598)
        "127.0.0.0/8",  # loopback (RFC 1122)
        "169.254.0.0/16",  # link-local (RFC 3927); cloud metadata services live here
        "172.16.0.0/12",  # private (RFC 1918)
        "192.0.0.0/24",  # IETF protocol assignments (RFC 6890)
        "192.0.2.0/24",  # documentation TEST-NET-1 (RFC 5737)
        "192.88.99.0/24",  # 6to4 relay anycast (RFC 7526, deprecated)
        "192.168.0.0/16",  # private (RFC 1918)
        "198.18.0.0/15",  # benchmarking (RFC 2544)
        "198.51.100.0/24",  # documentation TEST-NET-2 (RFC 5737)
        "203.0.113.0/24",  # documentation TEST-NET-3 (RFC 5737)
        "224.0.0.0/4",  # multicast (RFC 5771)
        "240.0.0.0/4",  # reserved (RFC 1112)
        "255.255.255.255/32",  # limited broadcast (RFC 919), also inside 240/4
        "::/128",  # unspecified
        "::1/128",  # loopback
        "::/96",  # IPv4-compatible, deprecated (RFC 4291 §2.5.5.1)
        "::ffff:0:0/96",  # IPv4-mapped (RFC 4291): judged by the embedded v4 address
        "::ffff:0:0:0/96",  # IPv4-translated (RFC 2765, SIIT)
        "64:ff9b::/96",  # NAT64 well-known prefix (RFC 6052): judged by the embedded v4
        "64:ff9b:1::/48",  # local-use NAT64 (RFC 8215)
        "100::/64",  # discard-only (RFC 6666)
        "2001::/32",  # Teredo (RFC 4380): tunnels to an address we cannot judge
        "2001:2::/48",  # benchmarking (RFC 5180)
        "2001:10::/28",  # ORCHID, deprecated (RFC 4843)
        "2001:20::/28",  # ORCHIDv2 (RFC 7343)
        "2001:db8::/32",  # documentation (RFC 3849)
        "2002::/16",  # 6to4 (RFC 3056): judged by the embedded v4 address
        "3fff::/20",  # documentation (RFC 9637)
        "5f00::/16",  # SRv6 SIDs (RFC 9602)
        "fc00::/7",  # unique local (RFC 4193)
        "fe80::/10",  # link-local (RFC 4291)
        "fec0::/10",  # site-local, deprecated (RFC 3879)
        "ff00::/8",  # multicast (RFC 4291)
    )
)

# IPv6 ranges that carry an IPv4 address, and where it sits: a gateway delivers the packet to
# that IPv4 address, so it is the one to judge.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

# What libc's inet_aton accepts besides dotted quads: 1-4 parts, decimal, octal (0...) or hex
# (0x...), e.g. "127.1", "0x7f.1", "2130706433", "0177.0.0.1".
_LEGACY_V4_RE = re.compile(r"^(?:0[xX][0-9a-fA-F]*|[0-9]+)(?:\.(?:0[xX][0-9a-fA-F]*|[0-9]+)){0,3}$")


def parse_address(text: str) -> IPAddress | None:
    """An IP address in any spelling a resolver would turn into one ("127.1", "0x7f.0.0.1",
    "2130706433", "[::1]", "fe80::1%eth0", "127.0.0.1."), or None if the text is a host name."""
    host = text.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    host = host.split("%", 1)[0]  # zone index of a scoped IPv6 address
    if host.endswith(".") and not host.endswith(".."):
        host = host[:-1]  # "127.0.0.1." is the same address as a fully qualified name
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if not _LEGACY_V4_RE.match(host):
        return None
    try:  # inet_aton takes the legacy shorthand, octal and hex forms, as getaddrinfo does
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def embedded_v4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped, 6to4 or NAT64 address delivers to, if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def parse_networks(items: Iterable[str] | str) -> tuple[IPNetwork, ...]:
    """CIDRs from a list or a comma-separated string ("127.0.0.0/8, 10.1.0.0/16"); a ValueError
    names a bad one. Host bits are allowed ("10.1.2.3/16" means 10.1.0.0/16)."""
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


def _within(address: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    return any(address.version == n.version and address in n for n in networks)


class AddressPolicy:
    """Refuses the special-purpose ranges, except the networks an operator allowed. Immutable."""

    __slots__ = ("allowed",)

    def __init__(self, allowed: Iterable[str] | str = ()) -> None:
        self.allowed: tuple[IPNetwork, ...] = parse_networks(allowed)

    def __repr__(self) -> str:
        return f"AddressPolicy(allowed={[str(n) for n in self.allowed]!r})"

    def permits(self, address: str | IPAddress) -> bool:
        """Whether a connection to this address may be made. A text that is not an IP address
        in any spelling is refused (resolve names first)."""
        ip = parse_address(address) if isinstance(address, str) else address
        if ip is None:
            return False
        if _within(ip, self.allowed):
            return True
        if not _within(ip, BLOCKED_NETWORKS):
            return True
        inner = embedded_v4(ip)
        # A translated address is judged by the IPv4 address it delivers to, allowances included.
        return inner is not None and self.permits(inner)

    def check_url(self, url: str) -> str:
        """The URL's host if its scheme is http(s) and its host is not a refused IP literal;
        BadRequestData otherwise. Host names are checked on the addresses they resolve to, at
        connection time (broker.ld.fetch)."""
        try:
            parts = urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018 - raises ValueError on a malformed port
        except ValueError:
            raise BadRequestData(f"Malformed URL {url!r}") from None
        if parts.scheme.lower() not in ALLOWED_SCHEMES:
            raise BadRequestData(f"URL {url!r} is not http or https")
        if not host:
            raise BadRequestData(f"URL {url!r} has no host")
        ip = parse_address(host)
        if ip is not None and not self.permits(ip):
            raise BadRequestData(f"URL {url!r} points at a refused address ({ip})")
        return host
