"""An issuer's signing keys: a JWKS (RFC 7517) parsed into a KeySet (pure), and a JwksSource that
fetches it from an https URL or reads it from a file, caches it, and refetches on an unknown key
id no more than once per interval (the I/O edge).

Keys come only from the configured location, never from a token's own `jku`/`x5u`/`jwk` header
(RFC 8725 §3.10: a token must not choose the key that verifies it; fetching its URL is SSRF).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from jwt import PyJWK
from jwt.exceptions import PyJWTError

from security.identity.errors import IdentityUnavailable
from security.identity.settings import IdentitySettings

log = logging.getLogger("cetate.identity")

DISCOVERY_PATH = "/.well-known/openid-configuration"
MAX_KEYS = 100  # Keycloak publishes 2-4; more than this is a broken or hostile JWKS

# RFC 7518 §3.1 and RFC 8037: the key type (and curve) each signature algorithm needs. A key is
# used only for the algorithm family it is made for, whatever the token's header claims.
KEY_TYPES: dict[str, tuple[str, str | None]] = {
    "RS256": ("RSA", None), "RS384": ("RSA", None), "RS512": ("RSA", None),
    "PS256": ("RSA", None), "PS384": ("RSA", None), "PS512": ("RSA", None),
    "ES256": ("EC", "P-256"), "ES384": ("EC", "P-384"), "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", None),  # Ed25519 or Ed448
}


@dataclass(frozen=True)
class Key:
    """One published key: its JWK members as published, and PyJWT's reading of it."""

    data: Mapping[str, Any]
    jwk: PyJWK


@dataclass(frozen=True)
class KeySet:
    """Signing keys by key id; keys published without a `kid` are in `unnamed`."""

    by_id: Mapping[str, Key] = field(default_factory=dict)
    unnamed: tuple[Key, ...] = ()

    def select(self, kid: str | None, alg: str) -> Key | None:
        """The key for a token header's kid and alg, or None. Without a kid, only an
        unambiguous choice: the one key that fits the algorithm."""
        if kid is not None:
            key = self.by_id.get(kid)
            return key if key is not None and fits(key, alg) else None
        candidates = [k for k in (*self.by_id.values(), *self.unnamed) if fits(k, alg)]
        return candidates[0] if len(candidates) == 1 else None

    def __len__(self) -> int:
        return len(self.by_id) + len(self.unnamed)


def fits(key: Key, alg: str) -> bool:
    """Whether a JWK may verify a signature of `alg`: its kty (and crv) match the algorithm,
    its own `alg`, if published, is that algorithm, and its `use`, if published, is `sig`."""
    data = key.data
    kty, crv = KEY_TYPES.get(alg, ("", None))
    if data.get("kty") != kty or (crv is not None and data.get("crv") != crv):
        return False
    if data.get("alg") not in (None, alg):
        return False
    return data.get("use") in (None, "sig")


def parse_jwks(document: Any) -> KeySet:
    """A KeySet from a JWKS document; keys PyJWT cannot use (unknown kty, encryption keys,
    symmetric `oct` keys) are skipped, not fatal: issuers publish such keys beside their own."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS: no 'keys' array")
    if len(document["keys"]) > MAX_KEYS:
        raise ValueError(f"JWKS has more than {MAX_KEYS} keys")
    by_id: dict[str, Key] = {}
    unnamed: list[Key] = []
    for entry in document["keys"]:
        if not isinstance(entry, dict) or entry.get("kty") not in {"RSA", "EC", "OKP"}:
            continue  # `oct` (shared secrets) never verify tokens here: RFC 8725 §3.2
        if entry.get("use") not in (None, "sig") or "d" in entry:
            continue  # encryption keys, and private keys published by mistake
        try:
            key = Key(entry, PyJWK(entry))
        except (PyJWTError, ValueError, TypeError, KeyError) as exc:
            log.warning("JWKS key %r skipped: %s", entry.get("kid"), exc)
            continue
        kid = entry.get("kid")
        if isinstance(kid, str):
            by_id[kid] = key
        else:
            unnamed.append(key)
    return KeySet(by_id, tuple(unnamed))


def check_fetch_url(url: str) -> None:
    """Keys are fetched over https only: over plain http anyone on the path could swap them.
    Plain http to a loopback address is let through, for development and tests."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname:
        host = parts.hostname
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if loopback:
            return
    raise ValueError(f"{url!r}: keys are fetched over https only (http to loopback for tests)")


def is_url(location: str) -> bool:
    return location.startswith(("https://", "http://"))


class JwksSource:
    """One issuer's keys, from a URL, a file, or OIDC discovery, cached; safe to share between
    requests (one fetch at a time; waiting requests use its result)."""

    def __init__(self, issuer: str, location: str | None, settings: IdentitySettings,
                 client: Callable[[], httpx.AsyncClient],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.issuer = issuer
        self.location = location  # None: discover it from the issuer
        if location is not None and is_url(location):
            check_fetch_url(location)
        elif location is None:
            check_fetch_url(issuer.rstrip("/") + DISCOVERY_PATH)
        elif not Path(location.removeprefix("file://")).is_file():
            raise ValueError(f"CETATE_OIDC_JWKS: no file {location!r}")
        self.settings = settings
        self._client = client
        self._clock = clock
        self._keys: KeySet | None = None
        self._fetched_at: float | None = None  # last attempt, successful or not
        self._attempts = 0  # finished attempts: a waiter seeing it move uses their outcome
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()
        self._jwks_uri: str | None = None  # the discovered one

    async def key_for(self, kid: str | None, alg: str) -> Key | None:
        """The verification key for a token header, or None if the issuer has no such key
        (after one refetch, when the last fetch is older than the refresh interval)."""
        if self._keys is None:
            await self._refresh(stale_ok=False)
        elif (self._clock() - self._loaded_at >= self.settings.jwks_max_age
              and self._may_refetch()):
            await self._refresh(stale_ok=True)
        assert self._keys is not None
        key = self._keys.select(kid, alg)
        if key is None and self._may_refetch():
            await self._refresh(stale_ok=True)
            key = self._keys.select(kid, alg)
        return key

    def _may_refetch(self) -> bool:
        return (self._fetched_at is None
                or self._clock() - self._fetched_at >= self.settings.jwks_min_refresh)

    async def _refresh(self, *, stale_ok: bool) -> None:
        seen = self._attempts
        async with self._lock:
            if self._attempts != seen:  # another request fetched while this one waited
                if self._keys is None:
                    raise IdentityUnavailable(f"keys of {self.issuer} unavailable")
                return
            if self._keys is None and not self._may_refetch():
                raise IdentityUnavailable(f"keys of {self.issuer} unavailable (retrying later)")
            self._fetched_at = self._clock()
            try:
                keys = parse_jwks(await self._load())
            except (OSError, ValueError, httpx.HTTPError) as exc:
                self._attempts += 1
                log.warning("cannot load the keys of issuer %s: %s", self.issuer, exc)
                if stale_ok and self._keys is not None:
                    return  # keep verifying with the keys we had
                raise IdentityUnavailable(f"keys of {self.issuer} unavailable: {exc}") from None
            self._keys, self._loaded_at = keys, self._clock()
            self._attempts += 1
            log.info("loaded %d signing key(s) of issuer %s", len(keys), self.issuer)

    async def _load(self) -> Any:
        location = self.location
        if location is None:
            location = self._jwks_uri or await self._discover()
        if is_url(location):
            return await self._fetch_json(location)
        path = Path(location.removeprefix("file://"))  # a file:///etc/... URL is a path too
        text = await asyncio.to_thread(path.read_bytes)
        if len(text) > self.settings.jwks_max_bytes:
            raise ValueError(f"{location}: over {self.settings.jwks_max_bytes} bytes")
        return json.loads(text)

    async def _discover(self) -> str:
        # OpenID Connect Discovery 1.0 §4: the issuer's metadata names its jwks_uri, and its
        # `issuer` must be exactly the configured one (§4.3), or the metadata is not its own.
        metadata = await self._fetch_json(self.issuer.rstrip("/") + DISCOVERY_PATH)
        if not isinstance(metadata, dict) or metadata.get("issuer") != self.issuer:
            raise ValueError("discovery document's issuer differs from the configured one")
        uri = metadata.get("jwks_uri")
        if not isinstance(uri, str):
            raise ValueError("discovery document has no jwks_uri")
        check_fetch_url(uri)
        self._jwks_uri = uri
        return uri

    async def _fetch_json(self, url: str) -> Any:
        limit = self.settings.jwks_max_bytes
        async with self._client().stream("GET", url, headers={"Accept": "application/json"}) \
                as response:
            if response.status_code != 200:
                raise ValueError(f"GET {url}: HTTP {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > limit:
                    raise ValueError(f"GET {url}: answer over {limit} bytes")
        return json.loads(body)
