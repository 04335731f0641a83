"""The broker's handle on the policy layer: open until identity is configured, then enforcing,
with the pseudonym key required when a rule pseudonymises."""

from __future__ import annotations

from pathlib import Path

import pytest

from security.identity.principal import PUBLIC
from security.policy import Resource
from security.policy.service import OPEN, PolicyService, purpose_of
from security.privacy.pseudonym import PseudonymKeyError

CARD = "https://cetate.city/ns/TransitCard"
ENTITY = {"id": "urn:ngsi-ld:TransitCard:1", "type": [CARD],
          "attrs": {"https://cetate.city/ns/refHolder": [
              {"type": "Relationship", "object": "urn:ngsi-ld:Person:ana"}]}}


def test_purpose_header() -> None:
    assert purpose_of({"Cetate-Purpose": " tax-collection "}) == "tax-collection"
    assert purpose_of({"Cetate-Purpose": ""}) is None and purpose_of({}) is None


async def test_open_until_configured(caplog: pytest.LogCaptureFixture) -> None:
    service = PolicyService.from_env(False, env={})
    assert "NOT enforced" in caplog.text
    d = service.decide(PUBLIC, "read", Resource("", (CARD,)))
    assert d is OPEN and service.apply(d, ENTITY) is ENTITY
    await service.start()
    await service.stop()


async def test_enforcing_needs_the_pseudonym_key(tmp_path: Path) -> None:
    with pytest.raises(PseudonymKeyError):
        PolicyService.from_env(True, env={})  # the shipped policies pseudonymise card refs
    key = tmp_path / "pseudonym.key"
    key.write_bytes(b"\x07" * 32)
    service = PolicyService.from_env(True, env={"CETATE_PSEUDONYM_KEY_FILE": str(key)})
    assert service.policy is not None
    assert not service.decide(PUBLIC, "read", Resource("", (CARD,))).allowed
    await service.start()
    await service.stop()
