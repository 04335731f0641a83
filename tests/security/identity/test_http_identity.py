"""The identity middleware on a real aiohttp server: principals in, 401/400/503 ProblemDetails
with RFC 6750 challenges out, and no hint of why a token was refused."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from broker import app as broker_app
from broker.http import identity
from broker.http.edge import edge_middleware, json_response
from broker.http.identity import identity_middleware, principal_of
from broker.settings import Settings
from security.identity.keystore import create_key, now, open_key_store
from security.identity.resolver import IdentityResolver
from security.identity.settings import IdentitySettings
from tests.security.audit.test_http_audit import all_entries
from tests.security.identity.kit import (
    AUDIENCE,
    ISSUER,
    JwksServer,
    ec_key,
    rsa_key,
    standard_claims,
    write_jwks,
)

SIGNER = rsa_key()


async def whoami(request: web.Request) -> web.Response:
    p = principal_of(request)
    return json_response({"subject": p.subject, "kind": p.kind, "roles": sorted(p.roles),
                          "tenants": None if p.tenants is None else sorted(p.tenants)})


async def serve(resolver: IdentityResolver) -> TestServer:
    app = web.Application(middlewares=[edge_middleware, identity_middleware(resolver)])
    app.router.add_get("/whoami", whoami)
    app.router.add_get("/ngsi-ld/whoami", whoami)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


@pytest.fixture
async def resolver(tmp_path: Path) -> AsyncIterator[IdentityResolver]:
    settings = IdentitySettings(issuers=(ISSUER,), audiences=(AUDIENCE,),
                                jwks=(write_jwks(tmp_path / "jwks.json", SIGNER),),
                                api_key_cache=0)
    resolver = IdentityResolver.for_store(f"sqlite:///{tmp_path}/cetate.db", settings)
    await resolver.open()
    try:
        yield resolver
    finally:
        await resolver.close()


@pytest.fixture
async def client(resolver: IdentityResolver) -> AsyncIterator[httpx.AsyncClient]:
    server = await serve(resolver)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
            yield http
    finally:
        await server.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_no_credentials_is_public(client: httpx.AsyncClient) -> None:
    r = await client.get("/whoami")
    assert r.status_code == 200
    assert r.json() == {"subject": "public", "kind": "public", "roles": ["public"],
                        "tenants": None}


async def test_valid_token(client: httpx.AsyncClient) -> None:
    r = await client.get("/whoami", headers={"NGSILD-Tenant": "tax", **bearer(SIGNER.sign(
        {"roles": ["tax-officer"], "cetate_tenants": ["tax"]}))})
    assert r.status_code == 200
    assert r.json() == {"subject": "user-1", "kind": "token", "roles": ["tax-officer"],
                        "tenants": ["tax"]}


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _hs256_with_public_key() -> str:
    import hashlib
    import hmac

    from cryptography.hazmat.primitives import serialization

    pem = SIGNER.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = f"{_b64({'alg': 'HS256', 'kid': SIGNER.kid})}.{_b64(standard_claims())}"
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


BAD_TOKENS = {
    "expired": lambda: SIGNER.sign(exp=int(time.time()) - 3600),
    "wrong audience": lambda: SIGNER.sign(aud="someone-else"),
    "wrong issuer": lambda: SIGNER.sign(iss="https://evil.example/realms/city"),
    "not yet valid": lambda: SIGNER.sign(nbf=int(time.time()) + 3600),
    "alg none": lambda: f"{_b64({'alg': 'none'})}.{_b64(standard_claims())}.",
    "HS256 with the RSA public key": _hs256_with_public_key,
    "unknown kid": lambda: ec_key("unknown").sign(),
    "garbage": lambda: "abc.def.ghi",
}


async def test_bad_tokens_get_one_identical_401(client: httpx.AsyncClient) -> None:
    bodies = set()
    for why, make in BAD_TOKENS.items():
        r = await client.get("/whoami", headers=bearer(make()))
        assert r.status_code == 401, why
        assert r.headers["WWW-Authenticate"] == 'Bearer realm="cetate", error="invalid_token"'
        assert r.headers["Content-Type"].startswith("application/json")
        body = r.json()
        assert body["type"] == "https://cetate.city/errors/Unauthorized"
        assert body["status"] == 401
        bodies.add(json.dumps(body, sort_keys=True))
    assert len(bodies) == 1, "the body must not tell which check failed"
    (body_text,) = bodies
    for leak in ("nbf", "audience", "issuer", "kid", "alg", "signature", "Signature", "none"):
        assert leak not in json.loads(body_text)["detail"]


async def test_api_keys_in_both_headers(client: httpx.AsyncClient,
                                        resolver: IdentityResolver) -> None:
    assert resolver.keys is not None
    record, key = await create_key(resolver.keys, frozenset({"adapter"}),
                                   tenants=frozenset({"parking"}))
    for headers in ({"Authorization": f"ApiKey {key}"}, {"X-API-Key": key},
                    {"authorization": f"apikey {key}"}):
        r = await client.get("/whoami", headers={**headers, "NGSILD-Tenant": "parking"})
        assert r.status_code == 200, headers
        assert r.json() == {"subject": f"key:{record.id}", "kind": "api-key",
                            "roles": ["adapter"], "tenants": ["parking"]}
    await resolver.keys.revoke(record.id, now())
    r = await client.get("/whoami", headers={"X-API-Key": key})
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'ApiKey realm="cetate", error="invalid_token"'
    r = await client.get("/whoami", headers={"X-API-Key": "cetate_0123456789abcdef_" + "x" * 43})
    assert r.status_code == 401


async def test_malformed_and_unsupported_credentials(client: httpx.AsyncClient) -> None:
    r = await client.get("/whoami", headers={"Authorization": "Bearer a", "X-API-Key": "b"})
    assert r.status_code == 400
    assert r.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"
    r = await client.get("/whoami", headers={"Authorization": "Bearer"})
    assert r.status_code == 400
    r = await client.get("/whoami", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="cetate"'  # RFC 6750 §3.1: no code


async def test_bearer_without_issuer_refused(tmp_path: Path) -> None:
    resolver = IdentityResolver(IdentitySettings())
    server = await serve(resolver)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
            assert (await http.get("/whoami", headers=bearer(SIGNER.sign()))).status_code == 401
            assert (await http.get("/whoami")).json()["subject"] == "public"
    finally:
        await server.close()


async def test_unreachable_issuer_is_503(jwks_server: JwksServer) -> None:
    settings = IdentitySettings(issuers=(ISSUER,), audiences=(AUDIENCE,),
                                jwks=(jwks_server.base + "/gone",))
    resolver = IdentityResolver(settings)
    server = await serve(resolver)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
            r = await http.get("/whoami", headers=bearer(SIGNER.sign()))
            assert r.status_code == 503
            assert r.headers["Retry-After"]
            assert "gone" not in r.text
    finally:
        await resolver.close()
        await server.close()


async def test_setup_on_the_real_broker(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """identity.setup on the broker's own application, after the audit log's: keys from its
    store, the warning while unconfigured, a refused token on an NGSI-LD route, and both
    accesses in the audit log with their principal and outcome."""
    # Identity alone: the policies stay off, so the (auditor-only) audit API reads back here.
    monkeypatch.setenv("CETATE_ACCESS_CONTROL", "off")
    settings = Settings(store=f"sqlite:///{tmp_path}/cetate.db", log_level="WARNING")
    app = broker_app.create_app(settings)  # which sets identity up after the audit log
    resolver = app[identity.IDENTITY]
    monkeypatch.setattr(identity, "CONFIGURED_POLL_S", 0.02)
    server = TestServer(app, host="127.0.0.1")
    with caplog.at_level("WARNING", logger="cetate.identity"):
        await server.start_server()
    try:
        assert "identity is not configured" in caplog.text
        assert not resolver.is_configured
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
            r = await http.get("/ngsi-ld/v1/entities", params={"type": "Lamp"},
                               headers=bearer(SIGNER.sign()))
            assert r.status_code == 401
            assert "X-Request-Id" in r.headers  # the edge still wraps identity's answers
            assert resolver.keys is not None
            _, key = await create_key(resolver.keys, frozenset({"adapter"}))
            for _ in range(200):  # the first key is noticed without a restart
                if resolver.is_configured:
                    break
                await asyncio.sleep(0.01)
            assert resolver.is_configured
            r = await http.get("/ngsi-ld/v1/entities", params={"type": "Lamp"},
                               headers={"X-API-Key": key})
            assert r.status_code == 200
            entries = await all_entries(http)
    finally:
        await server.close()
    refused, allowed = entries[0], entries[1]
    assert (refused["status"], refused["decision"], refused["rule"]) == (
        401, "deny", identity.REFUSED_RULE)
    assert refused["principal"]["roles"] == []
    assert allowed["status"] == 200 and allowed["principal"]["roles"] == ["adapter"]
    assert allowed["principal"]["subject"] != refused["principal"]["subject"]
    # the same database, read by the CLI's key store: the key is there
    store = open_key_store(settings.store)
    await store.open()
    try:
        assert len(await store.all()) == 1
    finally:
        await store.close()


async def test_the_broker_configured_from_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The testable interface: CETATE_OIDC_ISSUER, _AUDIENCE, _JWKS (a file) and
    CETATE_ROLES_CLAIM with a Keycloak path, on the real broker; roles read from the audit log."""
    monkeypatch.setenv("CETATE_OIDC_ISSUER", ISSUER)
    monkeypatch.setenv("CETATE_OIDC_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("CETATE_OIDC_JWKS", write_jwks(tmp_path / "jwks.json", SIGNER))
    monkeypatch.setenv("CETATE_ROLES_CLAIM", "realm_access.roles")
    monkeypatch.setenv("CETATE_ACCESS_CONTROL", "off")  # identity alone (see above)
    settings = Settings(store=f"sqlite:///{tmp_path}/cetate.db", log_level="WARNING")
    app = broker_app.create_app(settings)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
            token = SIGNER.sign({"realm_access": {"roles": ["city-it"]}})
            r = await http.get("/ngsi-ld/v1/types", headers=bearer(token))
            assert r.status_code == 200
            for make in BAD_TOKENS.values():
                r = await http.get("/ngsi-ld/v1/types", headers=bearer(make()))
                assert r.status_code == 401
            entries = await all_entries(http)
    finally:
        await server.close()
    assert entries[0]["principal"]["roles"] == ["city-it"]
    assert [e["status"] for e in entries[1:1 + len(BAD_TOKENS)]] == [401] * len(BAD_TOKENS)


async def test_tenant_and_purpose_scope(client: httpx.AsyncClient,
                                        resolver: IdentityResolver) -> None:
    assert resolver.keys is not None
    _, key = await create_key(resolver.keys, frozenset({"adapter"}),
                              tenants=frozenset({"parking"}),
                              purposes=frozenset({"parking-enforcement"}))
    ok = await client.get("/ngsi-ld/whoami", headers={"X-API-Key": key, "NGSILD-Tenant": "parking"})
    assert ok.status_code == 200
    for tenant in ("tax", ""):  # another tenant, or the default one
        r = await client.get("/ngsi-ld/whoami", headers={"X-API-Key": key, "NGSILD-Tenant": tenant})
        assert r.status_code == 404
        assert r.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/NonexistentTenant"
    declared = {"X-API-Key": key, "NGSILD-Tenant": "parking"}
    scoped = "/ngsi-ld/whoami"
    r = await client.get(scoped, headers={**declared, "Cetate-Purpose": "tax-collection"})
    assert r.status_code == 403
    assert r.json()["type"] == "https://cetate.city/errors/PurposeNotGranted"
    r = await client.get(scoped, headers={**declared, "Cetate-Purpose": "parking-enforcement"})
    assert r.status_code == 200
    # outside the NGSI-LD API (/health, /docs, the audit API) tenants do not apply
    assert (await client.get("/whoami", headers={"X-API-Key": key})).status_code == 200
    # a token's claims limit the same way
    token = SIGNER.sign({"cetate_tenants": ["tax"], "cetate_purposes": ["tax-collection"]})
    r = await client.get("/ngsi-ld/whoami", headers={**bearer(token), "NGSILD-Tenant": "parking"})
    assert r.status_code == 404
    r = await client.get("/ngsi-ld/whoami", headers={**bearer(token), "NGSILD-Tenant": "tax",
                                             "Cetate-Purpose": "tax-collection"})
    assert r.status_code == 200


async def test_foreign_tenant_looks_like_a_missing_one(tmp_path: Path) -> None:
    """On the real broker: a key of tenant `parking` asking for tenant `tax`, which exists,
    gets the very answer an unrestricted key gets for a tenant that does not exist."""
    settings = Settings(store=f"sqlite:///{tmp_path}/cetate.db", log_level="WARNING",
                        audit=False)
    app = broker_app.create_app(settings)
    resolver = identity.setup(app, settings, IdentitySettings())
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        assert resolver.keys is not None
        _, admin = await create_key(resolver.keys, frozenset({"admin"}))
        _, parking = await create_key(resolver.keys, frozenset({"adapter"}),
                                      tenants=frozenset({"parking"}))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
            lamp = {"id": "urn:ngsi-ld:Lamp:1", "type": "Lamp",
                    "on": {"type": "Property", "value": True}}
            r = await http.post("/ngsi-ld/v1/entities", json=lamp,
                                headers={"X-API-Key": admin, "NGSILD-Tenant": "tax"})
            assert r.status_code == 201
            query = {"type": "Lamp"}
            foreign = await http.get("/ngsi-ld/v1/entities", params=query,
                                     headers={"X-API-Key": parking, "NGSILD-Tenant": "tax"})
            missing = await http.get("/ngsi-ld/v1/entities", params=query,
                                     headers={"X-API-Key": admin, "NGSILD-Tenant": "nosuch"})
    finally:
        await server.close()
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json()["type"] == missing.json()["type"]
    assert foreign.json()["title"] == missing.json()["title"]
    assert foreign.json()["detail"] == missing.json()["detail"].replace("nosuch", "tax")
