"""Test kit: real signing keys (RSA, EC, Ed25519 from `cryptography`), real JWTs, and a JWKS
server app (served on a loopback port by conftest.py's fixture)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

ISSUER = "https://idp.example.city/realms/city"
AUDIENCE = "cetate"


@dataclass
class SigningKey:
    kid: str
    alg: str
    private: Any

    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            data = RSAAlgorithm.to_jwk(public, as_dict=True)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            data = ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            data = OKPAlgorithm.to_jwk(public, as_dict=True)
        return {**data, "kid": self.kid, "alg": self.alg, "use": "sig"}

    def sign(self, claims: dict[str, Any] | None = None, headers: dict[str, Any] | None = None,
             **overrides: Any) -> str:
        return jwt.encode({**standard_claims(), **(claims or {}), **overrides}, self.private,
                          algorithm=self.alg, headers={"kid": self.kid, **(headers or {})})


def standard_claims() -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "iat": now, "exp": now + 300}


_RSA: list[rsa.RSAPrivateKey] = []


def rsa_key(kid: str = "rsa-1", alg: str = "RS256") -> SigningKey:
    # RSA generation costs ~50 ms; two keys, made once per run, serve every test.
    while len(_RSA) < 2:
        _RSA.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return SigningKey(kid, alg, _RSA[1 if kid.endswith("2") else 0])


def ec_key(kid: str = "ec-1") -> SigningKey:
    return SigningKey(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))


def ed_key(kid: str = "ed-1") -> SigningKey:
    return SigningKey(kid, "EdDSA", ed25519.Ed25519PrivateKey.generate())


def jwks_of(*keys: SigningKey) -> dict[str, Any]:
    return {"keys": [k.jwk() for k in keys]}


@dataclass
class JwksServer:
    """A real identity provider's key endpoint (and OIDC discovery) on a loopback port."""

    document: dict[str, Any] = field(default_factory=lambda: {"keys": []})
    hits: int = 0
    base: str = ""

    @property
    def url(self) -> str:
        return self.base + "/certs"

    def app(self) -> web.Application:
        async def certs(_: web.Request) -> web.Response:
            self.hits += 1
            return web.json_response(self.document)

        async def discovery(_: web.Request) -> web.Response:
            return web.json_response({"issuer": self.base, "jwks_uri": self.url})

        app = web.Application()
        app.router.add_get("/certs", certs)
        app.router.add_get("/.well-known/openid-configuration", discovery)
        return app


def write_jwks(path: Any, *keys: SigningKey) -> str:
    path.write_text(json.dumps(jwks_of(*keys)))
    return str(path)
