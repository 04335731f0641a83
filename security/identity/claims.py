"""Verified token claims → Principal. Pure: no I/O, no clock; the claims are already verified.

Claim names are settings (security/identity/settings.py); each is a dotted path into the claims,
so Keycloak's `realm_access.roles` or `resource_access.cetate.roles` work as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from security.identity.errors import InvalidCredentials
from security.identity.principal import Principal
from security.identity.settings import IdentitySettings

MISSING: Any = object()
# A token naming more roles, tenants or purposes than this is refused: no real principal has
# hundreds, and each one costs policy evaluation on every request.
MAX_CLAIM_VALUES = 256
MAX_CLAIM_VALUE_LENGTH = 256


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path (`realm_access.roles`), or MISSING. A claim whose own name
    holds the whole dotted path (`"cetate.roles": [...]`) wins over the nested reading."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return MISSING
        value = value[part]
    return value


def string_set(value: Any, name: str) -> frozenset[str] | None:
    """A claim holding a list of strings, or one space-separated string (the OAuth `scope`
    style); None when absent. Anything else is a malformed token, refused."""
    if value is MISSING or value is None:
        return None
    items = value.split() if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise InvalidCredentials(f"claim {name!r} is not a list of strings")
    if len(items) > MAX_CLAIM_VALUES or any(len(item) > MAX_CLAIM_VALUE_LENGTH for item in items):
        raise InvalidCredentials(f"claim {name!r} has too many or too long values")
    return frozenset(items)


def principal_from_claims(claims: Mapping[str, Any], settings: IdentitySettings) -> Principal:
    """The principal a verified token stands for.

    Roles absent → no roles (the policies decide what an authenticated principal without
    roles may do); tenants or purposes absent → None, unrestricted by identity."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise InvalidCredentials("token has no 'sub'")
    issuer = claims.get("iss")
    roles = string_set(claim_at(claims, settings.roles_claim), settings.roles_claim)
    return Principal(
        subject=subject,
        roles=roles or frozenset(),
        kind="token",
        tenants=string_set(claim_at(claims, settings.tenants_claim), settings.tenants_claim),
        purposes=string_set(claim_at(claims, settings.purposes_claim), settings.purposes_claim),
        issuer=issuer if isinstance(issuer, str) else None,
    )
