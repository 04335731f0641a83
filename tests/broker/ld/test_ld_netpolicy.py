"""Outbound address policy: every special range refused, however spelt, unless allowed."""

from __future__ import annotations

import pytest

from broker.errors import BadRequestData
from broker.ld.netpolicy import AddressPolicy, parse_networks

REFUSED = [
    "127.0.0.1", "127.1", "0x7f.0.0.1", "0177.0.0.1", "2130706433", "0.0.0.0", "10.0.0.5",
    "172.16.3.4", "192.168.1.1", "100.64.0.1", "169.254.169.254", "192.0.0.8", "198.18.0.1",
    "224.0.0.1", "255.255.255.255", "::1", "[::1]", "::", "::ffff:127.0.0.1",
    "::ffff:7f00:1", "::ffff:169.254.169.254", "fe80::1", "fe80::1%eth0", "fc00::1",
    "fd12:3456::1", "fec0::1", "2002:7f00:1::1", "64:ff9b::a9fe:a9fe", "ff02::1",
]
PERMITTED = ["8.8.8.8", "1.1.1.1", "193.231.20.1", "2a00:1450:4001:80b::200e", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", REFUSED)
def test_refused(address: str) -> None:
    assert not AddressPolicy().permits(address)


@pytest.mark.parametrize("address", PERMITTED)
def test_permitted(address: str) -> None:
    assert AddressPolicy().permits(address)


def test_allowed_network_overrides_block() -> None:
    policy = AddressPolicy("127.0.0.0/8, 10.1.0.0/16")
    assert policy.permits("127.0.0.1") and policy.permits("10.1.2.3")
    assert not policy.permits("10.2.0.1")
    assert policy.permits("::ffff:127.0.0.1")  # judged by the v4 address it carries


def test_check_url() -> None:
    policy = AddressPolicy()
    assert policy.check_url("https://example.org/ctx.jsonld") == "example.org"
    for url in ("http://127.0.0.1/x", "http://[::1]:8080/", "http://2130706433/",
                "file:///etc/passwd", "ftp://example.org/", "http:///nohost"):
        with pytest.raises(BadRequestData):
            policy.check_url(url)


def test_bad_cidr_named() -> None:
    with pytest.raises(ValueError, match="banana"):
        parse_networks("10.0.0.0/8,banana")
