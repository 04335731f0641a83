"""Why a credential was refused. The HTTP edge (broker/http/identity.py) turns these into a 401
(or 503) whose body says nothing of the reason: the reason goes to the log, for operators."""

from __future__ import annotations


class IdentityError(Exception):
    """Base of identity failures."""


class InvalidCredentials(IdentityError):
    """A credential was presented and refused: bad signature, expired, unknown or revoked key...

    `scheme` is the one presented ("Bearer" or "ApiKey"), for the WWW-Authenticate challenge;
    `error` the RFC 6750 §3.1 error code; `reason` is for the log only, never for the client."""

    def __init__(self, reason: str, *, scheme: str = "Bearer",
                 error: str = "invalid_token") -> None:
        super().__init__(reason)
        self.reason = reason
        self.scheme = scheme
        self.error = error


class IdentityUnavailable(IdentityError):
    """The credential could not be checked now (the issuer's JWKS or the key store is down):
    a 503 for the client to retry, not a 401 that would tell it its token is bad."""
