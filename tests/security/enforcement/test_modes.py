"""CETATE_ACCESS_CONTROL: auto (enforced once identity is configured, a first API key made at
run time included), on (enforced without identity: everyone is public), off (nothing)."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from aiohttp.test_utils import TestServer

from broker.app import create_app
from broker.http import identity
from broker.http.access import ACCESS, AccessSettings
from broker.settings import Settings
from security.identity.keystore import create_key
from tests.security.enforcement.conftest import CETATE, City
from tests.security.enforcement.test_reads import TAP

ENTITIES = "/ngsi-ld/v1/entities"
LD = {"Content-Type": "application/ld+json"}


def test_the_setting_reads_three_values() -> None:
    assert AccessSettings.from_env({}).mode == "auto"
    assert AccessSettings.from_env({"CETATE_ACCESS_CONTROL": " ON "}).mode == "on"
    assert AccessSettings.from_env({"CETATE_ACCESS_CONTROL": "off"}).mode == "off"
    with pytest.raises(ValueError, match="CETATE_ACCESS_CONTROL"):
        AccessSettings.from_env({"CETATE_ACCESS_CONTROL": "yes"})


@asynccontextmanager
async def broker(tmp_path: Path) -> AsyncIterator[tuple[TestServer, httpx.AsyncClient]]:
    settings = Settings(store=f"sqlite:///{tmp_path}/cetate.db", allowed_networks=(),
                        log_level="WARNING", validation="off")
    server = TestServer(create_app(settings), host="127.0.0.1")
    await server.start_server()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
            yield server, http
    finally:
        await server.close()


@pytest.fixture
def no_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("CETATE_OIDC_ISSUER", "CETATE_OIDC_AUDIENCE", "CETATE_OIDC_JWKS",
                 "CETATE_ACCESS_CONTROL"):
        monkeypatch.delenv(name, raising=False)
    key = tmp_path / "pseudonym.key"
    key.write_bytes(secrets.token_bytes(32))
    monkeypatch.setenv("CETATE_PSEUDONYM_KEY_FILE", str(key))
    return tmp_path


async def test_auto_turns_on_with_the_first_api_key_without_a_restart(
        no_identity: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(identity, "CONFIGURED_POLL_S", 0.02)
    async with broker(no_identity) as (server, http):
        made = await http.post(ENTITIES, content=json.dumps({**TAP, "@context": CETATE}),
                               headers=LD)
        assert made.status_code == 201  # open: nothing is configured yet
        assert (await http.get(f"{ENTITIES}/{TAP['id']}")).status_code == 200
        resolver = server.app[identity.IDENTITY]
        assert resolver.keys is not None
        _, admin = await create_key(resolver.keys, frozenset({"admin"}))
        _, city_it = await create_key(resolver.keys, frozenset({"city-it"}))
        for _ in range(300):
            if server.app[ACCESS].enforcing:
                break
            await asyncio.sleep(0.01)
        assert server.app[ACCESS].enforcing
        assert (await http.get(f"{ENTITIES}/{TAP['id']}")).status_code == 404
        seen = await http.get(f"{ENTITIES}/{TAP['id']}",
                              headers=City.ask({"X-API-Key": city_it}))
        assert seen.status_code == 200
        assert "validationResult" in seen.json() and "riderCategory" not in seen.json()
        assert (await http.delete(f"{ENTITIES}/{TAP['id']}", headers={"X-API-Key": city_it})
                ).status_code == 403
        assert (await http.delete(f"{ENTITIES}/{TAP['id']}", headers={"X-API-Key": admin})
                ).status_code == 204


async def test_on_enforces_without_identity(no_identity: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CETATE_ACCESS_CONTROL", "on")
    async with broker(no_identity) as (_, http):
        refused = await http.post(ENTITIES, content=json.dumps({**TAP, "@context": CETATE}),
                                  headers=LD)
        assert refused.status_code == 403
        assert (await http.get("/ngsi-ld/v1/types")).json()["typeList"] == []
        assert (await http.get("/cetate/v1/audit/checkpoint")).status_code == 403


async def test_off_enforces_nothing_even_with_identity(enforced_settings: Settings,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("CETATE_ACCESS_CONTROL", "off")
    with caplog.at_level("WARNING", logger="cetate.access"):
        server = TestServer(create_app(enforced_settings), host="127.0.0.1")
    assert "NOT enforced" in caplog.text
    await server.start_server()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
            made = await http.post(ENTITIES, content=json.dumps({**TAP, "@context": CETATE}),
                                   headers=LD)
            assert made.status_code == 201
            seen = await http.get(f"{ENTITIES}/{TAP['id']}", headers=City.ask())
            assert seen.json()["riderCategory"]["value"] == "student"
    finally:
        await server.close()
