"""Keyed pseudonyms of direct identifiers (CNP, CUI, card UID, plate, phone number). Pure, but
for reading the key.

pseudonym = HMAC-SHA256(key, "cetate-pseudonym/v1" 0x00 kind 0x00 value), as 64 lowercase hex
digits (the contracts' keyedHash, contracts/schemas/Cetate/common.json). The kind in the message
separates domains: one key gives a card UID and a plate with the same characters different
pseudonyms, so two datasets cannot be joined on them by accident. Without the key nobody can
recompute or brute-force them (a plain SHA-256 of a 13-digit CNP falls in minutes).

The key: the bytes of the file named by config `secret_file` or env CETATE_ADAPTER_SECRET_FILE,
else env CETATE_ADAPTER_SECRET (UTF-8). `run --simulate` alone may fall back to DEV_KEY, with
a warning: its pseudonyms are worthless for real data.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from adapters.sdk.errors import ConfigError

log = logging.getLogger("cetate.adapter")

DOMAIN = b"cetate-pseudonym/v1"
# RFC 2104 §3: a key shorter than the hash output (32 bytes) weakens HMAC; 16 bytes (128 bits)
# is the floor we accept, 32 random bytes what docs/vendors.md tells vendors to generate.
MIN_KEY_BYTES = 16
DEV_KEY = b"cetate-simulate-only-not-a-secret"
ENV_FILE = "CETATE_ADAPTER_SECRET_FILE"
ENV_KEY = "CETATE_ADAPTER_SECRET"


class Pseudonymiser:
    """`pseudonymise(kind, value)`: the keyed pseudonym of `value` as an identifier of `kind`
    (a lowercase word: "cnp", "cui", "card", "plate", "msisdn")."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ConfigError(f"the pseudonymisation key has {len(key)} bytes; give at least "
                              f"{MIN_KEY_BYTES} (e.g. 32 random bytes: "
                              f"python -c 'import secrets; print(secrets.token_hex(32))')")
        self._key = key

    def __call__(self, kind: str, value: str) -> str:
        if not kind or "\x00" in kind:
            raise ValueError(f"not an identifier kind: {kind!r}")
        message = b"\x00".join((DOMAIN, kind.encode(), value.encode()))
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def __repr__(self) -> str:  # never the key, not even in a traceback
        return "Pseudonymiser(<key>)"


def read_key(config: Mapping[str, Any], env: Mapping[str, str] | None = None, *,
             simulate: bool = False) -> bytes:
    """The key from the config's secret_file, the environment, or (simulate only) DEV_KEY;
    ConfigError when there is none."""
    env = os.environ if env is None else env
    path = config.get("secret_file") or env.get(ENV_FILE)
    if path:
        try:
            key = Path(path).read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the pseudonymisation key {path}: {exc}") from None
        return key
    if env.get(ENV_KEY):
        return env[ENV_KEY].encode()
    if simulate:
        log.warning("no pseudonymisation key (%s or %s): using the simulate-only development "
                    "key, whose pseudonyms protect nothing", ENV_FILE, ENV_KEY)
        return DEV_KEY
    raise ConfigError(f"no pseudonymisation key: set secret_file in the config, {ENV_FILE} "
                      f"or {ENV_KEY} (refusing to publish identifiers unkeyed)")


def pseudonymiser(config: Mapping[str, Any], env: Mapping[str, str] | None = None, *,
                  simulate: bool = False) -> Pseudonymiser:
    return Pseudonymiser(read_key(config, env, simulate=simulate))
