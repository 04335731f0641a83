"""The real broker with identity configured (a local JWKS file, real RS256 tokens, API keys in
its store) and so with access control enforced (CETATE_ACCESS_CONTROL=auto)."""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp.test_utils import TestServer

from broker.app import create_app
from broker.settings import Settings
from tests.security.identity.kit import AUDIENCE, ISSUER, SigningKey, jwks_of, rsa_key

CETATE = "https://cetate.city/ns/context.jsonld"
LIGHTING = "https://smart-data-models.github.io/dataModel.Streetlighting/context.jsonld"


def link(context: str) -> str:
    return f'<{context}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
NS = "https://cetate.city/ns/"


@dataclass
class City:
    """The test's handle: an HTTP client on the broker and the identity provider's key."""

    http: httpx.AsyncClient
    key: SigningKey
    server: TestServer

    def token(self, *roles: str, sub: str = "user-1", tenants: list[str] | None = None,
              purposes: list[str] | None = None) -> dict[str, str]:
        claims: dict[str, Any] = {"sub": sub, "roles": list(roles)}
        if tenants is not None:
            claims["cetate_tenants"] = tenants
        if purposes is not None:
            claims["cetate_purposes"] = purposes
        return {"Authorization": f"Bearer {self.key.sign(claims)}"}

    @staticmethod
    def ask(headers: dict[str, str] | None = None, *, tenant: str | None = None,
            purpose: str | None = None, context: str = CETATE) -> dict[str, str]:
        """Request headers: the @context (the Cetate one unless told), tenant, purpose."""
        out = {"Link": link(context), **(headers or {})}
        if tenant:
            out["NGSILD-Tenant"] = tenant
        if purpose:
            out["Cetate-Purpose"] = purpose
        return out

    async def create(self, entity: dict[str, Any], tenant: str | None = None,
                     context: str = CETATE) -> None:
        """Create as admin (may create any type in any tenant)."""
        headers = {**self.token("admin", sub="admin-1"), "Content-Type": "application/ld+json"}
        if tenant:
            headers["NGSILD-Tenant"] = tenant
        answer = await self.http.post("/ngsi-ld/v1/entities",
                                      content=json.dumps({**entity, "@context": context}),
                                      headers=headers)
        assert answer.status_code == 201, answer.text


@pytest.fixture
def enforced_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(jwks_of(rsa_key())))
    pseudonym_key = tmp_path / "pseudonym.key"
    pseudonym_key.write_bytes(secrets.token_bytes(32))
    monkeypatch.setenv("CETATE_OIDC_ISSUER", ISSUER)
    monkeypatch.setenv("CETATE_OIDC_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("CETATE_OIDC_JWKS", str(jwks))
    monkeypatch.setenv("CETATE_PSEUDONYM_KEY_FILE", str(pseudonym_key))
    monkeypatch.delenv("CETATE_ACCESS_CONTROL", raising=False)
    monkeypatch.delenv("CETATE_POLICY_DIR", raising=False)
    return Settings(store=f"sqlite:///{tmp_path}/cetate.db", allowed_networks=("127.0.0.0/8",),
                    max_body_bytes=1_000_000, log_level="WARNING", validation="off")


@contextlib.asynccontextmanager
async def serving_city(settings: Settings) -> AsyncIterator[City]:
    """A real broker app on `settings`, and the test's handle on it."""
    server = TestServer(create_app(settings), host="127.0.0.1")
    await server.start_server()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}",
                                     timeout=10) as http:
            yield City(http, rsa_key(), server)
    finally:
        await server.close()


@pytest.fixture
async def city(enforced_settings: Settings) -> AsyncIterator[City]:
    async with serving_city(enforced_settings) as city:
        yield city
