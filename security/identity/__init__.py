"""Identity: bearer tokens and API keys resolved to a Principal, once per request."""

from security.identity.principal import PUBLIC, Principal

__all__ = ["PUBLIC", "Principal"]
