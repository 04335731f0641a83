"""Bearer tokens: real JWTs signed with RSA, EC and Ed25519 keys, verified against a JWKS served
over HTTP or read from a file; every RFC 8725 refusal case."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from security.identity.errors import IdentityUnavailable, InvalidCredentials
from security.identity.settings import IdentitySettings
from security.identity.tokens import TokenVerifier
from tests.security.identity.kit import (
    AUDIENCE,
    ISSUER,
    JwksServer,
    SigningKey,
    ec_key,
    ed_key,
    jwks_of,
    rsa_key,
    write_jwks,
)


def settings_for(jwks: str, **values: Any) -> IdentitySettings:
    return IdentitySettings(issuers=(values.pop("issuer", ISSUER),), audiences=(AUDIENCE,),
                            jwks=(jwks,), **values)


async def verify(settings: IdentitySettings, token: str) -> Any:
    verifier = TokenVerifier(settings)
    try:
        return await verifier.verify(token)
    finally:
        await verifier.close()


async def refused(settings: IdentitySettings, token: str) -> InvalidCredentials:
    with pytest.raises(InvalidCredentials) as caught:
        await verify(settings, token)
    return caught.value


@pytest.mark.parametrize("make", [rsa_key, ec_key, ed_key], ids=["RS256", "ES256", "EdDSA"])
async def test_each_key_type_verifies_from_a_served_jwks(jwks_server: JwksServer,
                                                         make: Any) -> None:
    key: SigningKey = make()
    jwks_server.document = jwks_of(key, rsa_key("other-2"))
    principal = await verify(settings_for(jwks_server.url),
                             key.sign({"roles": ["tax-officer"], "cetate_tenants": ["tax"],
                                       "cetate_purposes": ["tax-collection"]}))
    assert principal.subject == "user-1"
    assert principal.kind == "token"
    assert principal.issuer == ISSUER
    assert principal.roles == {"tax-officer"}
    assert principal.tenants == {"tax"}
    assert principal.purposes == {"tax-collection"}


async def test_ps256_and_a_jwks_file(tmp_path: Path) -> None:
    key = rsa_key("ps-1", alg="PS256")
    path = write_jwks(tmp_path / "jwks.json", key)
    principal = await verify(settings_for(path), key.sign())
    assert (await verify(settings_for("file://" + path), key.sign())).subject == "user-1"
    assert principal.roles == frozenset()
    assert principal.tenants is None and principal.purposes is None  # unrestricted by identity


async def test_keycloak_roles_path(tmp_path: Path) -> None:
    key = ec_key()
    path = write_jwks(tmp_path / "jwks.json", key)
    token = key.sign({"realm_access": {"roles": ["city-it", "offline_access"]},
                      "resource_access": {"cetate": {"roles": ["auditor"]}}})
    realm = await verify(settings_for(path, roles_claim="realm_access.roles"), token)
    assert realm.roles == {"city-it", "offline_access"}
    client = await verify(settings_for(path, roles_claim="resource_access.cetate.roles"), token)
    assert client.roles == {"auditor"}


@pytest.mark.parametrize("claims, why", [
    ({"exp": int(time.time()) - 3600}, "ExpiredSignature"),
    ({"nbf": int(time.time()) + 3600}, "ImmatureSignature"),
    ({"aud": "another-service"}, "InvalidAudience"),
    ({"iss": ISSUER + "-evil"}, "not trusted"),
    ({"sub": None}, "sub"),
    ({"exp": None}, "exp"),
])
async def test_claims_refused(tmp_path: Path, claims: dict[str, Any], why: str) -> None:
    key = rsa_key()
    path = write_jwks(tmp_path / "jwks.json", key)
    base = {name: value for name, value in claims.items() if value is not None}
    token = key.sign(base)
    if None in claims.values():  # drop the claim altogether
        payload = jwt.decode(token, options={"verify_signature": False})
        for name in (n for n, v in claims.items() if v is None):
            payload.pop(name)
        token = jwt.encode(payload, key.private, algorithm=key.alg, headers={"kid": key.kid})
    assert why in (await refused(settings_for(path), token)).reason


async def test_leeway_tolerates_small_clock_skew(tmp_path: Path) -> None:
    key = ed_key()
    path = write_jwks(tmp_path / "jwks.json", key)
    skewed = key.sign(exp=int(time.time()) - 5, nbf=int(time.time()) + 5)
    assert (await verify(settings_for(path), skewed)).subject == "user-1"
    assert "Signature" in (await refused(settings_for(path, leeway=0), skewed)).reason


def _b64(data: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_alg_none_refused(tmp_path: Path) -> None:
    path = write_jwks(tmp_path / "jwks.json", rsa_key())
    from tests.security.identity.kit import standard_claims

    unsigned = f"{_b64({'alg': 'none', 'kid': 'rsa-1'})}.{_b64(standard_claims())}."
    assert "not allowed" in (await refused(settings_for(path), unsigned)).reason


async def test_hs256_signed_with_the_public_key_refused(tmp_path: Path) -> None:
    """The classic confusion (RFC 8725 §2.1): HMAC keyed with the RSA public key's PEM."""
    from cryptography.hazmat.primitives import serialization

    key = rsa_key()
    path = write_jwks(tmp_path / "jwks.json", key)
    pem = key.private.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
    from tests.security.identity.kit import standard_claims

    header = _b64({"alg": "HS256", "kid": key.kid, "typ": "JWT"})
    body = _b64(standard_claims())
    import hashlib
    import hmac

    mac = hmac.new(pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    forged = f"{header}.{body}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    assert "not allowed" in (await refused(settings_for(path), forged)).reason
    # Even an operator who allowed HS256 could not: the settings refuse it.
    with pytest.raises(ValueError, match="HS256"):
        settings_for(path, algorithms=("RS256", "HS256"))


async def test_key_must_fit_the_algorithm(tmp_path: Path) -> None:
    """An ES256 header naming an RSA key's kid is refused, not tried."""
    rsa_signer, ec_signer = rsa_key(), ec_key(kid="rsa-1")
    path = write_jwks(tmp_path / "jwks.json", rsa_signer)
    assert "no key" in (await refused(settings_for(path), ec_signer.sign())).reason


async def test_wrong_signature_refused(tmp_path: Path) -> None:
    published, impostor = rsa_key("rsa-1"), rsa_key("rsa-2")
    path = write_jwks(tmp_path / "jwks.json", published)
    forged = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "admin",
                         "exp": int(time.time()) + 60}, impostor.private, algorithm="RS256",
                        headers={"kid": "rsa-1"})
    assert "InvalidSignature" in (await refused(settings_for(path), forged)).reason


async def test_crit_header_refused(tmp_path: Path) -> None:
    key = rsa_key()
    path = write_jwks(tmp_path / "jwks.json", key)
    token = key.sign(headers={"crit": ["exp-ext"], "exp-ext": 1})
    assert "critical" in (await refused(settings_for(path), token)).reason


async def test_garbage_and_oversized_tokens_refused(tmp_path: Path) -> None:
    path = write_jwks(tmp_path / "jwks.json", rsa_key())
    assert "malformed" in (await refused(settings_for(path), "not.a.jwt")).reason
    assert "over" in (await refused(settings_for(path), "a" * 20_000)).reason


async def test_malformed_roles_claim_refused(tmp_path: Path) -> None:
    key = rsa_key()
    path = write_jwks(tmp_path / "jwks.json", key)
    assert "roles" in (await refused(settings_for(path), key.sign(roles={"a": 1}))).reason
    spaced = await verify(settings_for(path), key.sign(roles="adapter city-it"))
    assert spaced.roles == {"adapter", "city-it"}


async def test_unknown_kid_refetches_then_refuses(jwks_server: JwksServer) -> None:
    old, new = rsa_key("rsa-1"), rsa_key("rsa-2")
    jwks_server.document = jwks_of(old)
    verifier = TokenVerifier(settings_for(jwks_server.url, jwks_min_refresh=0))
    try:
        assert (await verifier.verify(old.sign())).subject == "user-1"
        assert jwks_server.hits == 1
        # The issuer rotates: the new key's first token triggers one refetch, and is accepted.
        jwks_server.document = jwks_of(old, new)
        assert (await verifier.verify(new.sign(sub="user-2"))).subject == "user-2"
        assert jwks_server.hits == 2
        assert (await verifier.verify(new.sign())).subject == "user-1"  # cached now
        assert jwks_server.hits == 2
        with pytest.raises(InvalidCredentials, match="no key"):
            await verifier.verify(ec_key("unknown").sign())
    finally:
        await verifier.close()


async def test_kid_flood_costs_one_fetch_per_interval(jwks_server: JwksServer) -> None:
    key = rsa_key()
    jwks_server.document = jwks_of(key)
    verifier = TokenVerifier(settings_for(jwks_server.url, jwks_min_refresh=3600))
    try:
        await verifier.verify(key.sign())
        for n in range(20):
            with pytest.raises(InvalidCredentials):
                await verifier.verify(rsa_key(f"made-up-{n}").sign())
        assert jwks_server.hits == 1
    finally:
        await verifier.close()


async def test_openid_discovery(jwks_server: JwksServer) -> None:
    key = ed_key()
    jwks_server.document = jwks_of(key)
    settings = IdentitySettings(issuers=(jwks_server.base,), audiences=(AUDIENCE,))
    principal = await verify(settings, key.sign(iss=jwks_server.base))
    assert principal.issuer == jwks_server.base


async def test_unreachable_jwks_is_unavailable_not_invalid(jwks_server: JwksServer) -> None:
    dead = settings_for(jwks_server.base + "/missing")
    with pytest.raises(IdentityUnavailable):
        await verify(dead, rsa_key().sign())


async def test_several_issuers_each_with_their_keys(tmp_path: Path) -> None:
    city, partner = rsa_key("rsa-1"), ec_key("ec-1")
    paths = (write_jwks(tmp_path / "city.json", city),
             write_jwks(tmp_path / "partner.json", partner))
    other = "https://partner.example/realms/x"
    settings = IdentitySettings(issuers=(ISSUER, other), audiences=(AUDIENCE,), jwks=paths)
    assert (await verify(settings, city.sign())).issuer == ISSUER
    assert (await verify(settings, partner.sign(iss=other))).issuer == other
    # The partner's key does not verify tokens claiming the city's issuer.
    reason = (await refused(settings, partner.sign())).reason
    assert "no key" in reason


def test_settings_from_env() -> None:
    settings = IdentitySettings.from_env({
        "CETATE_OIDC_ISSUER": f"{ISSUER}, https://b.example",
        "CETATE_OIDC_AUDIENCE": "cetate,account",
        "CETATE_OIDC_JWKS": "/etc/cetate/jwks.json",
        "CETATE_ROLES_CLAIM": "realm_access.roles",
        "CETATE_OIDC_LEEWAY": "10",
    })
    assert settings.issuers == (ISSUER, "https://b.example")
    assert settings.audiences == ("cetate", "account")
    assert settings.jwks_for("https://b.example") == "/etc/cetate/jwks.json"
    assert settings.roles_claim == "realm_access.roles"
    assert settings.leeway == 10
    assert not IdentitySettings.from_env({}).tokens_enabled
    with pytest.raises(ValueError, match="AUDIENCE"):
        IdentitySettings.from_env({"CETATE_OIDC_ISSUER": ISSUER})
    with pytest.raises(ValueError, match="none"):
        IdentitySettings.from_env({"CETATE_OIDC_ISSUER": ISSUER, "CETATE_OIDC_AUDIENCE": "c",
                                   "CETATE_OIDC_ALGORITHMS": "RS256,none"})
    with pytest.raises(ValueError, match="https"):
        TokenVerifier(settings_for("http://idp.example/certs"))
    with pytest.raises(ValueError, match="no file"):
        TokenVerifier(settings_for("/nonexistent/jwks.json"))


async def test_verified_tokens_are_remembered_until_they_expire(jwks_server: JwksServer) -> None:
    key = rsa_key()
    jwks_server.document = jwks_of(key)
    clock = [time.time()]
    # max age 0: every verification that is not remembered refetches the keys
    settings = settings_for(jwks_server.url, jwks_max_age=0, jwks_min_refresh=0, leeway=0)
    verifier = TokenVerifier(settings, clock=lambda: clock[0])
    try:
        token = key.sign(exp=int(clock[0]) + 3600)
        await verifier.verify(token)
        assert jwks_server.hits == 1
        jwks_server.document = {"keys": []}  # withdrawn: the remembered token still works...
        assert (await verifier.verify(token)).subject == "user-1"
        assert jwks_server.hits == 1
        clock[0] += 61  # ...for at most a minute, then it is verified afresh, and refused
        with pytest.raises(InvalidCredentials, match="no key"):
            await verifier.verify(token)
        expiring = key.sign(exp=int(time.time()) + 10)
        jwks_server.document = jwks_of(key)
        clock[0] = time.time()
        await verifier.verify(expiring)
        clock[0] += 11  # past its exp: not taken from memory (PyJWT's real clock accepts it)
        hits = jwks_server.hits
        await verifier.verify(expiring)
        assert jwks_server.hits == hits + 1
    finally:
        await verifier.close()


async def test_concurrent_requests_share_one_fetch(jwks_server: JwksServer) -> None:
    old, new = rsa_key("rsa-1"), rsa_key("rsa-2")
    jwks_server.document = jwks_of(old)
    verifier = TokenVerifier(settings_for(jwks_server.url, jwks_min_refresh=0))
    try:
        first = await asyncio.gather(*(verifier.verify(old.sign(sub=f"u{n}"))
                                       for n in range(20)))
        assert {p.subject for p in first} == {f"u{n}" for n in range(20)}
        assert jwks_server.hits == 1
        jwks_server.document = jwks_of(old, new)
        rotated = await asyncio.gather(*(verifier.verify(new.sign(sub=f"v{n}"))
                                         for n in range(20)))
        assert len(rotated) == 20
        assert jwks_server.hits == 2
    finally:
        await verifier.close()


@pytest.mark.parametrize("headers, claims, ok", [
    ({"typ": "at+jwt"}, {}, True),
    ({"typ": "JWT"}, {"typ": "Bearer"}, True),  # Keycloak's access tokens
    ({"typ": "JWT"}, {"typ": "ID"}, False),  # Keycloak's ID token, audience = the client
    ({"typ": "logout+jwt"}, {}, False),
    ({"typ": "secevent+jwt"}, {}, False),
])
async def test_only_access_tokens(tmp_path: Path, headers: dict[str, Any],
                                  claims: dict[str, Any], ok: bool) -> None:
    key = rsa_key()
    path = write_jwks(tmp_path / "jwks.json", key)
    token = key.sign(claims, headers=headers)
    if ok:
        assert (await verify(settings_for(path), token)).subject == "user-1"
    else:
        assert "access token" in (await refused(settings_for(path), token)).reason


async def test_file_jwks_rotation(tmp_path: Path) -> None:
    old, new = ed_key("ed-1"), ed_key("ed-2")
    path = write_jwks(tmp_path / "jwks.json", old)
    verifier = TokenVerifier(settings_for(path, jwks_min_refresh=0))
    try:
        await verifier.verify(old.sign())
        write_jwks(tmp_path / "jwks.json", new)  # the operator replaces the file
        assert (await verifier.verify(new.sign(sub="u2"))).subject == "u2"
    finally:
        await verifier.close()


async def test_issuer_down_keeps_the_cached_keys(jwks_server: JwksServer) -> None:
    key = rsa_key()
    jwks_server.document = jwks_of(key)
    settings = settings_for(jwks_server.url, jwks_max_age=0, jwks_min_refresh=0)
    verifier = TokenVerifier(settings)
    try:
        await verifier.verify(key.sign(sub="a"))
        verifier.sources[ISSUER].location = jwks_server.base + "/down"  # now answers 404
        assert (await verifier.verify(key.sign(sub="b"))).subject == "b"
        assert jwks_server.hits == 1
    finally:
        await verifier.close()


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["alg", "kid", "typ", "crit", "iss", "aud", "sub", "exp", "nbf",
                         "roles", "cetate_tenants"]), inner, max_size=5),
    max_leaves=10)
_HEADERS = st.fixed_dictionaries(
    {"alg": st.sampled_from(["RS256", "none", "HS256", "ES256", "EdDSA"]) | _JSON},
    optional={"kid": st.just("rsa-1") | _JSON, "typ": _JSON, "crit": _JSON})


@settings(max_examples=300, deadline=None)
@given(header=_HEADERS, claims=_JSON, signature=st.binary(max_size=40), raw=st.text(max_size=60))
def test_any_input_is_refused_cleanly(tmp_path_factory: pytest.TempPathFactory,
                                      header: dict[str, Any], claims: Any, signature: bytes,
                                      raw: str) -> None:
    """Whatever a client sends as a token, the verifier answers InvalidCredentials, never
    another exception (which would be a 500 and a log flood)."""
    path = write_jwks(tmp_path_factory.mktemp("jwks") / "jwks.json", rsa_key())
    forged = f"{_b64(header)}.{_b64(claims)}.{base64.urlsafe_b64encode(signature).decode()}"

    async def attempt() -> None:
        verifier = TokenVerifier(settings_for(path))
        for token in (forged, raw):
            with pytest.raises(InvalidCredentials):
                await verifier.verify(token)

    asyncio.run(attempt())
