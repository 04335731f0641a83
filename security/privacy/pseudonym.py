"""Keyed pseudonyms (GDPR art. 4(5)): HMAC-SHA256 of a value under a secret key, hex.

Without the key a pseudonym cannot be reversed or recomputed from a guessed value (a card number
or a CNP has too few possibilities for a plain hash to hide it); with the same key the same value
always gives the same pseudonym, so records about one person can still be counted together.

The key is read from the file named by CETATE_PSEUDONYM_KEY_FILE (raw bytes, at least
MIN_KEY_BYTES; `head -c 32 /dev/urandom > pseudonym.key`). A fixed development key is used only
when CETATE_PSEUDONYM_DEV_KEY=1 says so explicitly: its pseudonyms are public knowledge.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from pathlib import Path

KEY_FILE_ENV = "CETATE_PSEUDONYM_KEY_FILE"
DEV_KEY_ENV = "CETATE_PSEUDONYM_DEV_KEY"
MIN_KEY_BYTES = 16  # 128 bits; RFC 2104 §3 advises keys no shorter than the hash (32 is best)
DEV_KEY = b"cetate development pseudonym key: not secret, never use in production"
# Domain separation: attribute pseudonyms differ from the audit log's subject pseudonyms even
# when both are configured with one key file, so the log cannot be joined to the data.
ATTRIBUTE_DOMAIN = b"cetate/attribute\x00"


class PseudonymKeyError(Exception):
    """No usable pseudonym key (missing, unreadable or too short)."""


class Pseudonymiser:
    """value -> keyed pseudonym; a callable, as `apply_decision` takes it."""

    __slots__ = ("_domain", "_key")

    def __init__(self, key: bytes, domain: bytes = ATTRIBUTE_DOMAIN) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise PseudonymKeyError(f"a pseudonym key needs at least {MIN_KEY_BYTES} bytes")
        self._key = key
        self._domain = domain

    def __call__(self, value: str) -> str:
        return hmac.new(self._key, self._domain + value.encode(), hashlib.sha256).hexdigest()

    def __repr__(self) -> str:  # never the key
        return "Pseudonymiser(<key>)"


def read_key(path: Path) -> bytes:
    try:
        key = path.read_bytes()
    except OSError as exc:
        raise PseudonymKeyError(f"{KEY_FILE_ENV}={path}: {exc.strerror}") from None
    if len(key) < MIN_KEY_BYTES:
        raise PseudonymKeyError(f"{KEY_FILE_ENV}={path}: a key needs at least "
                                f"{MIN_KEY_BYTES} bytes, the file has {len(key)}")
    return key


def key_from_env(env: Mapping[str, str] | None = None) -> bytes:
    """The key of CETATE_PSEUDONYM_KEY_FILE; the development key only if CETATE_PSEUDONYM_DEV_KEY
    is 1/true/yes; otherwise PseudonymKeyError."""
    env = os.environ if env is None else env
    if env.get(KEY_FILE_ENV):
        return read_key(Path(env[KEY_FILE_ENV]))
    if env.get(DEV_KEY_ENV, "").strip().lower() in {"1", "true", "yes"}:
        return DEV_KEY
    raise PseudonymKeyError(f"set {KEY_FILE_ENV} to a file of at least {MIN_KEY_BYTES} random "
                            f"bytes (or {DEV_KEY_ENV}=1 for development only)")


def pseudonymiser_from_env(env: Mapping[str, str] | None = None) -> Pseudonymiser:
    return Pseudonymiser(key_from_env(env))
