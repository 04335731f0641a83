"""OIDC bearer tokens (JWT access tokens) → Principal, checked as RFC 8725 asks.

The order matters: the header's algorithm is checked against the allow-list before anything
else, the unverified `iss` only picks which issuer's keys to try (it is verified again with the
signature), and the key must fit the algorithm (security/identity/jwks.py), so neither `alg: none`
nor an HS256 token "signed" with a published RSA key can get through.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import jwt

from security.identity.claims import principal_from_claims
from security.identity.errors import InvalidCredentials
from security.identity.jwks import JwksSource
from security.identity.principal import Principal
from security.identity.settings import IdentitySettings

# Keycloak access tokens with many roles reach 2-4 KiB; 16 KiB is far above any real one and
# bounds the base64 and JSON work an anonymous client can make the broker do.
MAX_TOKEN_BYTES = 16 * 1024
# Header parameters that change how a token must be processed (RFC 7515 §4.1.11): the broker
# implements none, so a token that lists any in `crit` is refused, as the RFC requires.
UNDERSTOOD_CRIT: frozenset[str] = frozenset()
# RFC 8725 §3.11 / RFC 9068 §2.1: access tokens are typed `at+jwt` (or untyped / `JWT`, as
# Keycloak and Entra ID send them); other explicit types (`logout+jwt`, `secevent+jwt`...) are
# tokens for something else. Keycloak marks its own kinds in a `typ` claim: its ID tokens carry
# the client as audience, so without this check an ID token could be replayed as an access token.
ACCESS_TOKEN_HEADER_TYPES = frozenset({"jwt", "at+jwt", "application/at+jwt"})
NOT_ACCESS_TOKEN_CLAIM_TYPES = frozenset({"ID", "Refresh", "Offline", "Logout", "Serialized-ID"})
# Clients reuse a token for minutes, and a signature check costs ~0.2 ms (RS256 and ES256 alike),
# a fifth of an entity retrieval: verified tokens are remembered, by their SHA-256, until they
# expire and for at most TOKEN_CACHE_S, so a key the issuer withdraws stops working within it.
TOKEN_CACHE_S = 60.0
TOKEN_CACHE_MAX = 4096


class TokenVerifier:
    """Verifies bearer tokens of the configured issuers, each with its own JwksSource."""

    def __init__(self, settings: IdentitySettings,
                 sources: Mapping[str, JwksSource] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self._clock = clock  # wall-clock seconds, as `exp` counts them
        self._verified: dict[bytes, tuple[Principal, float]] = {}
        self._http: httpx.AsyncClient | None = None
        self.sources: Mapping[str, JwksSource] = sources if sources is not None else {
            issuer: JwksSource(issuer, settings.jwks_for(issuer), settings, self._client)
            for issuer in settings.issuers
        }

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            # No redirects: a JWKS URL that redirects elsewhere is a configuration to fix, not
            # to follow silently to an address nobody configured.
            self._http = httpx.AsyncClient(timeout=self.settings.jwks_timeout,
                                           follow_redirects=False)
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def verify(self, token: str) -> Principal:
        """The principal of a valid token; InvalidCredentials otherwise (IdentityUnavailable
        when the issuer's keys cannot be fetched)."""
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        hit = self._verified.get(digest)
        if hit is not None:
            if hit[1] > self._clock():
                return hit[0]
            del self._verified[digest]
        principal, exp = await self._verify(token)
        self._remember(digest, principal, exp)
        return principal

    def _remember(self, digest: bytes, principal: Principal, exp: float) -> None:
        now = self._clock()
        if len(self._verified) >= TOKEN_CACHE_MAX:
            self._verified = {d: hit for d, hit in self._verified.items() if hit[1] > now}
            if len(self._verified) >= TOKEN_CACHE_MAX:
                self._verified.clear()
        self._verified[digest] = (principal, min(exp + self.settings.leeway, now + TOKEN_CACHE_S))

    async def _verify(self, token: str) -> tuple[Principal, float]:
        header, unverified = _peek(token)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.settings.algorithms:
            raise InvalidCredentials(f"algorithm {alg!r} not allowed")
        crit = header.get("crit")
        if crit is not None and (not isinstance(crit, list)
                                 or any(c not in UNDERSTOOD_CRIT for c in crit)):
            raise InvalidCredentials(f"unsupported critical header parameters {crit!r}")
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str)
                                or typ.lower() not in ACCESS_TOKEN_HEADER_TYPES):
            raise InvalidCredentials(f"token type {typ!r} is not an access token")
        kind = unverified.get("typ")
        if isinstance(kind, str) and kind in NOT_ACCESS_TOKEN_CLAIM_TYPES:
            raise InvalidCredentials(f"token of kind {kind!r}, not an access token")
        issuer = unverified.get("iss")
        source = self.sources.get(issuer) if isinstance(issuer, str) else None
        if source is None or not isinstance(issuer, str):
            raise InvalidCredentials(f"issuer {issuer!r} not trusted")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidCredentials("kid is not a string")
        key = await source.key_for(kid, alg)
        if key is None:
            raise InvalidCredentials(f"no key {kid!r} for {alg} at issuer {issuer}")
        claims = self.check(token, key.jwk.key, alg, issuer)
        return principal_from_claims(claims, self.settings), float(claims["exp"])

    def check(self, token: str, key: Any, alg: str, issuer: str) -> dict[str, Any]:
        """Signature and registered claims: exp, nbf and iat with the leeway, iss, aud, and
        the claims every token must carry."""
        try:
            return jwt.decode(
                token, key, algorithms=[alg], audience=list(self.settings.audiences),
                issuer=issuer, leeway=self.settings.leeway,
                options={"require": ["exp", "iss", "sub", "aud"], "verify_signature": True,
                         "verify_exp": True, "verify_nbf": True, "verify_iat": True,
                         "verify_aud": True, "verify_iss": True},
            )
        except jwt.InvalidTokenError as exc:
            raise InvalidCredentials(f"{type(exc).__name__}: {exc}") from None


def _peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims before any verification, only to pick the issuer and key."""
    if len(token) > MAX_TOKEN_BYTES:
        raise InvalidCredentials(f"token over {MAX_TOKEN_BYTES} bytes")
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError as exc:
        raise InvalidCredentials(f"malformed token: {exc}") from None
    if not isinstance(claims, dict):
        raise InvalidCredentials("token claims are not a JSON object")
    return header, claims
