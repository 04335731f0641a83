"""Credentials → Principal: the one entry point the HTTP edge calls, once per request."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

import asyncpg

from security.identity.apikeys import ApiKey, key_id_of, key_matches
from security.identity.credentials import API_KEY, BEARER, credential_of
from security.identity.errors import IdentityUnavailable, InvalidCredentials
from security.identity.keystore import KeyStore, open_key_store
from security.identity.principal import PUBLIC, Principal
from security.identity.settings import IdentitySettings
from security.identity.tokens import TokenVerifier

# Verified keys remembered per process (IdentitySettings.api_key_cache says how long); bounded so
# that many adapters cannot grow it without limit. Unknown ids are never cached: a flood of made-up
# keys costs one primary-key lookup each and no memory.
KEY_CACHE_MAX = 10_000


class ApiKeyVerifier:
    def __init__(self, store: KeyStore, cache_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[str, tuple[ApiKey, bytes, float]] = {}

    async def verify(self, key: str) -> Principal:
        key_id = key_id_of(key)
        if key_id is None:
            raise InvalidCredentials("not a Cetate API key", scheme=API_KEY)
        cached = self._cache.get(key_id)
        fresh = cached is not None and cached[2] > self._clock()
        if cached is not None and fresh:
            record, digest = cached[0], cached[1]
        else:
            try:
                found = await self.store.get(key_id)
            except (OSError, RuntimeError, sqlite3.Error, asyncpg.PostgresError,
                    asyncpg.InterfaceError) as exc:
                raise IdentityUnavailable(f"key store: {exc}") from None
            if found is None:
                raise InvalidCredentials(f"unknown key {key_id}", scheme=API_KEY)
            record, digest = found
        if not key_matches(key, digest):
            raise InvalidCredentials(f"wrong secret for key {key_id}", scheme=API_KEY)
        if not record.active:
            self._cache.pop(key_id, None)
            raise InvalidCredentials(f"key {key_id} revoked", scheme=API_KEY)
        if not fresh and self.cache_seconds > 0:
            if len(self._cache) >= KEY_CACHE_MAX:
                self._cache.clear()
            self._cache[key_id] = (record, digest, self._clock() + self.cache_seconds)
        return record.principal()

    def forget(self, key_id: str) -> None:
        """Drop a key from this process's cache (after revoking it here)."""
        self._cache.pop(key_id, None)


class IdentityResolver:
    """Bearer tokens and API keys to principals. `open()` before use, `close()` after."""

    def __init__(self, settings: IdentitySettings, keys: KeyStore | None = None, *,
                 tokens: TokenVerifier | None = None) -> None:
        self.settings = settings
        self.keys = keys
        self.tokens = tokens or (TokenVerifier(settings) if settings.tokens_enabled else None)
        self.api_keys = ApiKeyVerifier(keys, settings.api_key_cache) if keys else None
        # The last known answer of configured(), for callers that cannot await (the policy
        # layer deciding per request whether to enforce): set by open() and each configured().
        self.is_configured = settings.tokens_enabled

    @classmethod
    def for_store(cls, store_url: str, settings: IdentitySettings | None = None,
                  ) -> IdentityResolver:
        """A resolver with the API keys of the broker's database at `store_url`."""
        return cls(settings or IdentitySettings.from_env(), open_key_store(store_url))

    async def open(self) -> None:
        if self.keys is not None:
            await self.keys.open()
        await self.configured()

    async def close(self) -> None:
        if self.tokens is not None:
            await self.tokens.close()
        if self.keys is not None:
            await self.keys.close()

    async def configured(self) -> bool:
        """Whether identity is set up: an issuer is configured or an API key was ever made
        (revoked ones count). Until then every request is the public principal, and the
        broker stays open."""
        if not self.settings.tokens_enabled:
            self.is_configured = self.keys is not None and await self.keys.any_keys()
        return self.is_configured

    async def resolve(self, authorization: str | None, api_key: str | None) -> Principal:
        """The principal of a request's Authorization / X-API-Key headers; PUBLIC without them.
        InvalidCredentials (401/400) or IdentityUnavailable (503) otherwise."""
        credential = credential_of(authorization, api_key)
        if credential is None:
            return PUBLIC
        if credential.scheme == BEARER:
            if self.tokens is None:
                raise InvalidCredentials("bearer token but no CETATE_OIDC_ISSUER configured")
            return await self.tokens.verify(credential.value)
        if self.api_keys is None:
            raise InvalidCredentials("API key but no key store", scheme=API_KEY)
        return await self.api_keys.verify(credential.value)
