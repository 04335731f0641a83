"""API keys for adapters: `cetate_<id>_<secret>`, stored only as a hash. Pure (no I/O).

The id is the lookup handle (it is printed by `cetate keys list` and logged); the secret is 256
bits from `secrets`. Hashing is a single SHA-256 of the whole key: slow, salted password hashes
(scrypt, argon2) defend low-entropy secrets against guessing, and a 256-bit random secret cannot
be guessed, so they would only add milliseconds to every adapter request. The digest is compared
with hmac.compare_digest, so timing tells nothing about how much of it matched.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from security.identity.principal import Principal

KEY_PREFIX = "cetate"
ID_BYTES = 8  # 16 hex digits: unique by construction (the table's primary key) and by chance
SECRET_BYTES = 32  # 256 bits (RFC 4086 §8: far beyond any feasible search)
KEY_RE = re.compile(rf"{KEY_PREFIX}_([0-9a-f]{{{2 * ID_BYTES}}})_([A-Za-z0-9_-]{{43}})")
ID_RE = re.compile(rf"[0-9a-f]{{{2 * ID_BYTES}}}")
NAME_RE = re.compile(r"[\w .:@/-]{0,100}")
ROLE_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


@dataclass(frozen=True)
class ApiKey:
    """What a key grants, without its secret (the store keeps only `secret_hash`)."""

    id: str
    roles: frozenset[str]
    tenants: frozenset[str] | None = None  # None: any tenant
    purposes: frozenset[str] | None = None  # None: any purpose the policies allow the roles
    name: str = ""
    created_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def principal(self) -> Principal:
        return Principal(subject=f"key:{self.id}", roles=self.roles, kind="api-key",
                         tenants=self.tenants, purposes=self.purposes)


def new_key() -> tuple[str, str]:
    """(id, the whole key to show once)."""
    key_id = secrets.token_hex(ID_BYTES)
    return key_id, f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(SECRET_BYTES)}"


def key_id_of(key: str) -> str | None:
    """The id in a well-formed key; None if the text is not a Cetate API key at all."""
    match = KEY_RE.fullmatch(key)
    return match.group(1) if match else None


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode("ascii")).digest()


def key_matches(key: str, stored_hash: bytes) -> bool:
    return hmac.compare_digest(hash_key(key), stored_hash)


def check_grant(roles: frozenset[str], tenants: frozenset[str] | None,
                purposes: frozenset[str] | None, name: str) -> None:
    """ValueError unless the grant is well-formed: at least one role, sane names."""
    if not roles:
        raise ValueError("a key needs at least one role")
    bad = sorted(r for r in roles | (purposes or frozenset()) if not ROLE_RE.fullmatch(r))
    if bad:
        raise ValueError(f"invalid role or purpose name(s): {', '.join(bad)}")
    if any(len(t) > 64 for t in tenants or ()):
        raise ValueError("tenant names are at most 64 characters")
    if not NAME_RE.fullmatch(name):
        raise ValueError("a key name is up to 100 letters, digits, spaces and . : @ / - _")
