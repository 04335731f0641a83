"""Who is asking: the result of identity resolution, the input of every policy decision."""

from __future__ import annotations

from dataclasses import dataclass

PUBLIC_ROLE = "public"


@dataclass(frozen=True, slots=True)
class Principal:
    """A requester, resolved once per request (ARCHITECTURE.md, How a request flows).

    `tenants` and `purposes` limit what the principal may act on and claim; None means no limit
    beyond the policies (an operator's admin key, a token without such claims)."""

    subject: str  # the token's `sub`, "key:<id>" for an API key, "public" when anonymous
    roles: frozenset[str]
    kind: str = "public"  # "public" | "token" | "api-key"
    tenants: frozenset[str] | None = None  # "" is the default tenant
    purposes: frozenset[str] | None = None
    issuer: str | None = None

    @property
    def is_public(self) -> bool:
        return self.kind == "public"

    def may_use_tenant(self, tenant: str) -> bool:
        return self.tenants is None or tenant in self.tenants

    def may_claim(self, purpose: str | None) -> bool:
        return purpose is None or self.purposes is None or purpose in self.purposes


PUBLIC = Principal(subject="public", roles=frozenset({PUBLIC_ROLE}), kind="public")
"""Requests without credentials: sees only what policies open to the public (open data)."""
