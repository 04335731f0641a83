"""Which credential a request carries, from its headers. Pure.

    Authorization: Bearer <JWT>       an OIDC access token (RFC 6750 §2.1)
    Authorization: ApiKey <key>       an adapter's API key
    X-API-Key: <key>                  the same, for clients that cannot set Authorization

Scheme names are case-insensitive (RFC 9110 §11.1). No credential at all is not an error: the
request is the public principal's.
"""

from __future__ import annotations

from dataclasses import dataclass

from security.identity.errors import InvalidCredentials

BEARER = "Bearer"
API_KEY = "ApiKey"
SCHEMES = {"bearer": BEARER, "apikey": API_KEY}
API_KEY_HEADER = "X-API-Key"


@dataclass(frozen=True)
class Credential:
    scheme: str  # BEARER | API_KEY
    value: str


def credential_of(authorization: str | None, api_key: str | None) -> Credential | None:
    """The one credential in the headers, None if there is none; InvalidCredentials when
    they are malformed or ambiguous (error `invalid_request`: RFC 6750 §3.1, a 400)."""
    if api_key is not None:
        if authorization is not None:
            raise InvalidCredentials("both Authorization and X-API-Key given",
                                     scheme=API_KEY, error="invalid_request")
        if not api_key.strip():
            raise InvalidCredentials("empty X-API-Key", scheme=API_KEY, error="invalid_request")
        return Credential(API_KEY, api_key.strip())
    if authorization is None:
        return None
    name, _, value = authorization.strip().partition(" ")
    scheme = SCHEMES.get(name.lower())
    if scheme is None:
        # RFC 6750 §3.1: a request without usable authentication gets the challenge alone.
        raise InvalidCredentials(f"unsupported authorization scheme {name[:20]!r}", error="")
    value = value.strip()
    if not value or " " in value:
        raise InvalidCredentials(f"malformed {scheme} credential", scheme=scheme,
                                 error="invalid_request")
    return Credential(scheme, value)
