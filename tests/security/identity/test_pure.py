"""The pure parts of identity, without a server: claim paths, claims → Principal, credential
headers, JWKS parsing and which key fits which algorithm."""

from __future__ import annotations

from typing import Any

import pytest

from security.identity.claims import MISSING, claim_at, principal_from_claims
from security.identity.credentials import API_KEY, BEARER, Credential, credential_of
from security.identity.errors import InvalidCredentials
from security.identity.jwks import check_fetch_url, parse_jwks
from security.identity.settings import IdentitySettings
from tests.security.identity.kit import ec_key, ed_key, rsa_key

SETTINGS = IdentitySettings()


def test_claim_at_dotted_paths() -> None:
    claims = {"realm_access": {"roles": ["a"]}, "cetate.roles": ["flat"], "x": 1}
    assert claim_at(claims, "realm_access.roles") == ["a"]
    assert claim_at(claims, "cetate.roles") == ["flat"]  # a claim named with the dots wins
    assert claim_at(claims, "realm_access.missing") is MISSING
    assert claim_at(claims, "x.y") is MISSING


def test_principal_from_claims() -> None:
    p = principal_from_claims({"sub": "u", "iss": "https://i", "roles": ["dpo"],
                               "cetate_tenants": ["", "tax"], "cetate_purposes": "audit"},
                              SETTINGS)
    assert (p.subject, p.kind, p.issuer) == ("u", "token", "https://i")
    assert p.roles == {"dpo"} and p.tenants == {"", "tax"} and p.purposes == {"audit"}
    assert p.may_use_tenant("tax") and not p.may_use_tenant("parking")
    assert p.may_claim("audit") and not p.may_claim("tax-collection")
    bare = principal_from_claims({"sub": "u"}, SETTINGS)
    assert bare.roles == frozenset() and bare.tenants is None and bare.purposes is None
    custom = IdentitySettings(tenants_claim="org.tenants")
    assert principal_from_claims({"sub": "u", "org": {"tenants": ["t"]}}, custom).tenants == {"t"}


@pytest.mark.parametrize("claims", [
    {},
    {"sub": ""},
    {"sub": 7},
    {"sub": "u", "roles": [1, 2]},
    {"sub": "u", "roles": {"admin": True}},
    {"sub": "u", "cetate_tenants": ["t"] * 300},
    {"sub": "u", "cetate_purposes": ["p" * 300]},
])
def test_malformed_claims_refused(claims: dict[str, Any]) -> None:
    with pytest.raises(InvalidCredentials):
        principal_from_claims(claims, SETTINGS)


@pytest.mark.parametrize("authorization, api_key, expected", [
    (None, None, None),
    ("Bearer abc.def.ghi", None, Credential(BEARER, "abc.def.ghi")),
    ("bearer  abc", None, Credential(BEARER, "abc")),
    ("ApiKey k", None, Credential(API_KEY, "k")),
    (None, " k ", Credential(API_KEY, "k")),
])
def test_credential_of(authorization: str | None, api_key: str | None,
                       expected: Credential | None) -> None:
    assert credential_of(authorization, api_key) == expected


@pytest.mark.parametrize("authorization, api_key, error", [
    ("Bearer a", "k", "invalid_request"),
    ("Bearer", None, "invalid_request"),
    ("Bearer a b", None, "invalid_request"),
    (None, "", "invalid_request"),
    ("Basic dXNlcjpw", None, ""),
    ("Digest x", None, ""),
])
def test_credential_of_refuses(authorization: str | None, api_key: str | None,
                               error: str) -> None:
    with pytest.raises(InvalidCredentials) as caught:
        credential_of(authorization, api_key)
    assert caught.value.error == error


def test_parse_jwks_and_fits() -> None:
    rsa, ec, ed = rsa_key(), ec_key(), ed_key()
    unnamed = {k: v for k, v in ec_key().jwk().items() if k != "kid"}
    keys = parse_jwks({"keys": [
        rsa.jwk(), ec.jwk(), ed.jwk(), unnamed,
        {"kty": "oct", "k": "c2VjcmV0", "kid": "shared"},  # symmetric: never used
        {**rsa_key("enc-2").jwk(), "use": "enc", "kid": "enc"},  # encryption key
        {"kty": "RSA", "kid": "broken"},  # unusable
        "not a key",
    ]})
    assert set(keys.by_id) == {"rsa-1", "ec-1", "ed-1"} and len(keys.unnamed) == 1
    assert keys.select("rsa-1", "RS256") is not None
    assert keys.select("rsa-1", "ES256") is None  # an RSA key never verifies ES256
    assert keys.select("rsa-1", "PS256") is None  # its published alg is RS256
    assert keys.select("ed-1", "EdDSA") is not None
    assert keys.select("shared", "HS256") is None
    assert keys.select(None, "ES256") is None  # two EC keys fit: ambiguous without a kid
    assert keys.select(None, "EdDSA") is not None  # one does
    assert keys.select("nope", "RS256") is None


def test_rsa_key_without_alg_fits_every_rsa_algorithm() -> None:
    data = {k: v for k, v in rsa_key().jwk().items() if k != "alg"}
    keys = parse_jwks({"keys": [data]})
    assert all(keys.select("rsa-1", alg) is not None for alg in ("RS256", "PS256", "RS512"))
    assert keys.select("rsa-1", "ES256") is None


@pytest.mark.parametrize("document", [[], {}, {"keys": "x"}, {"keys": [{}] * 101}])
def test_parse_jwks_refuses_non_jwks(document: Any) -> None:
    with pytest.raises(ValueError):
        parse_jwks(document)


@pytest.mark.parametrize("url, ok", [
    ("https://idp.example/certs", True),
    ("http://127.0.0.1:8080/certs", True),
    ("http://localhost/certs", True),
    ("http://[::1]/certs", True),
    ("http://idp.example/certs", False),
    ("http://10.0.0.1/certs", False),
    ("file:///etc/passwd", False),
    ("https:///nohost", False),
])
def test_check_fetch_url(url: str, ok: bool) -> None:
    if ok:
        check_fetch_url(url)
    else:
        with pytest.raises(ValueError):
            check_fetch_url(url)
