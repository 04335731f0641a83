"""Outbound address policy: every special range refused, however spelt, unless allowed."""

from __future__ import annotations

import ipaddress

import pytest

from broker.errors import BadRequestData
from broker.ld.netpolicy import BLOCKED_NETWORKS, AddressPolicy, parse_address, parse_networks

OPEN = AddressPolicy()


# Ranges that carry an IPv4 address are judged by it (see test_permitted), so only their ends
# (0.0.0.0 and 255.255.255.255 inside) are refused.
CARRYING_V4 = {ipaddress.ip_network(n) for n in ("::ffff:0:0/96", "64:ff9b::/96", "2002::/16")}


@pytest.mark.parametrize("network", BLOCKED_NETWORKS, ids=str)
def test_every_blocked_range_is_refused(network: ipaddress._BaseNetwork) -> None:
    assert not OPEN.permits(str(network[0]))
    assert not OPEN.permits(str(network[-1]))
    if network not in CARRYING_V4:
        assert not OPEN.permits(network[network.num_addresses // 2])
        assert not OPEN.permits(network[1 if network.num_addresses > 1 else 0])


@pytest.mark.parametrize("required", [
    "127.0.0.0/8", "::1/128", "0.0.0.0/8", "::/128", "10.0.0.0/8", "172.16.0.0/12",
    "192.168.0.0/16", "169.254.0.0/16", "fe80::/10", "100.64.0.0/10", "fc00::/7", "224.0.0.0/4",
    "ff00::/8", "240.0.0.0/4", "255.255.255.255/32", "192.0.0.0/24", "192.0.2.0/24",
    "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32", "198.18.0.0/15", "::ffff:0:0/96",
    "2002::/16", "64:ff9b::/96", "2001::/32", "fec0::/10",
])
def test_the_list_holds_the_required_ranges(required: str) -> None:
    assert ipaddress.ip_network(required) in BLOCKED_NETWORKS


REFUSED = [
    # loopback, every spelling libc accepts
    "127.0.0.1", "127.1", "127.0.1", "0x7f.0.0.1", "0x7f.1", "0x7F000001", "0177.0.0.1",
    "0177.1", "2130706433", "017700000001", "127.0.0.1.", " 127.0.0.1 ", "127.255.255.254",
    "::1", "[::1]", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1", "::ffff:7f00:1", "[::ffff:7f00:1]",
    # unspecified, private, link-local (cloud metadata), CGNAT
    "0.0.0.0", "0", "0x0", "::", "10.0.0.5", "012.1", "172.16.3.4", "172.31.255.255",
    "192.168.1.1", "3232235777", "100.64.0.1", "169.254.169.254", "0xa9fea9fe",
    "::ffff:169.254.169.254", "fe80::1", "fe80::1%eth0", "[fe80::1%25eth0]",
    "fc00::1", "fd12:3456::1", "fec0::1",
    # special-purpose and reserved
    "192.0.0.8", "192.0.2.1", "198.18.0.1", "198.19.255.255", "198.51.100.7", "203.0.113.9",
    "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255", "ff02::1", "2001:db8::1",
    "3fff::1", "100::1",
    # v4 carried in v6: judged by the v4 address, or refused outright
    "2002:7f00:1::1", "2002:a9fe:a9fe::", "64:ff9b::a9fe:a9fe", "64:ff9b::127.0.0.1",
    "::127.0.0.1", "::ffff:0:127.0.0.1", "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    # not an address at all: names are checked once resolved, never as text
    "localhost", "example.org", "", "1.2.3.4.5", "999.1.1.1", "1.2.3.4 x",
]
PERMITTED = [
    "8.8.8.8", "1.1.1.1", "193.231.20.1", "2a00:1450:4001:80b::200e", "::ffff:8.8.8.8",
    "2002:808:808::1", "64:ff9b::8.8.8.8", "134744072", "0x8.0x8.0x8.0x8", "[2a00:1450::1]",
    "100.63.255.255", "100.128.0.0", "172.15.255.255", "172.32.0.0", "192.0.1.1", "9.255.255.255",
]


@pytest.mark.parametrize("address", REFUSED)
def test_refused(address: str) -> None:
    assert not OPEN.permits(address)


@pytest.mark.parametrize("address", PERMITTED)
def test_permitted(address: str) -> None:
    assert OPEN.permits(address)


@pytest.mark.parametrize(("text", "address"), [
    ("127.1", "127.0.0.1"), ("0x7f.1", "127.0.0.1"), ("2130706433", "127.0.0.1"),
    ("0177.0.0.1", "127.0.0.1"), ("[::1]", "::1"), ("fe80::1%eth0", "fe80::1"),
    ("127.0.0.1.", "127.0.0.1"), ("example.org", None), ("1.2.3.4 x", None), ("", None),
])
def test_parse_address(text: str, address: str | None) -> None:
    parsed = parse_address(text)
    assert (str(parsed) if parsed else None) == address


def test_allowed_networks_override_blocks() -> None:
    policy = AddressPolicy("127.0.0.0/8, 10.1.0.0/16")
    assert policy.permits("127.0.0.1") and policy.permits("10.1.2.3")
    assert policy.permits("0x7f.1") and policy.permits("2130706433")
    assert not policy.permits("10.2.0.1") and not policy.permits("::1")
    assert policy.permits("::ffff:127.0.0.1")  # judged by the v4 address it carries
    assert policy.permits("8.8.8.8")
    assert AddressPolicy(["::1/128"]).permits("[::1]")


def test_parse_networks() -> None:
    assert parse_networks("127.0.0.0/8, ::1/128,,") == (
        ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
    assert parse_networks(["10.1.2.3/16"]) == (ipaddress.ip_network("10.1.0.0/16"),)
    assert parse_networks("") == ()
    with pytest.raises(ValueError, match="banana"):
        parse_networks("10.0.0.0/8,banana")


def test_check_url() -> None:
    assert OPEN.check_url("https://example.org/ctx.jsonld") == "example.org"
    assert OPEN.check_url("HTTP://Example.ORG:8080/x") == "example.org"
    assert OPEN.check_url("http://8.8.8.8/x") == "8.8.8.8"
    for url in ("http://127.0.0.1/x", "http://[::1]:8080/", "http://2130706433/",
                "http://0x7f.1/", "http://169.254.169.254/latest/meta-data/",
                "http://[::ffff:10.0.0.1]/", "file:///etc/passwd", "ftp://example.org/",
                "gopher://example.org/", "http:///nohost", "example.org/ctx.jsonld",
                "http://example.org:99999/", "http://[::1/"):
        with pytest.raises(BadRequestData):
            OPEN.check_url(url)
    assert AddressPolicy("127.0.0.0/8").check_url("http://127.0.0.1:8080/x") == "127.0.0.1"
