"""Identity settings: which token issuers to trust and how to read their claims (docs/identity.md).

Read from CETATE_OIDC_* and friends here, beside the code that uses them, rather than in
broker/settings.py: nothing else in the broker needs them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

# RFC 8725 §3.1: an explicit allow-list of asymmetric algorithms. `none` is never acceptable and
# HS* never are either: their "key" would be a public JWKS entry anyone can read (§3.2, the
# RS256/HS256 confusion), and the broker shares no secret with identity providers.
DEFAULT_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                      "ES256", "ES384", "ES512", "EdDSA")
FORBIDDEN_ALGORITHMS = frozenset({"none", "HS256", "HS384", "HS512"})

# Clock skew between the identity provider and the broker; Keycloak and most libraries use 0-60 s.
DEFAULT_LEEWAY_S = 30.0
# An unknown `kid` refetches the JWKS at most this often, so a flood of tokens with made-up key
# ids costs the issuer one request per interval, not one per token.
DEFAULT_JWKS_MIN_REFRESH_S = 30.0
# Keys are refetched at least this often even when every kid is known, so a key the issuer
# withdrew (compromised, rotated out) stops being accepted within the hour.
DEFAULT_JWKS_MAX_AGE_S = 3600.0
DEFAULT_JWKS_TIMEOUT_S = 5.0
# A JWKS is a few KiB (Keycloak's: 2-3 keys, ~3 KiB); 512 KiB bounds a hostile or broken answer.
DEFAULT_JWKS_MAX_BYTES = 512 * 1024
# A verified API key is remembered this long per process; revocation on another replica (or by
# the CLI) takes effect within it. 0 checks the database on every request.
DEFAULT_API_KEY_CACHE_S = 10.0


def _split(text: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}: {raw!r} is not a number") from None
    if value < 0:
        raise ValueError(f"{name}: must not be negative")
    return value


@dataclass(frozen=True)
class IdentitySettings:
    issuers: tuple[str, ...] = ()  # CETATE_OIDC_ISSUER, comma-separated
    audiences: tuple[str, ...] = ()  # CETATE_OIDC_AUDIENCE: a token's aud must hold one of them
    # CETATE_OIDC_JWKS: one https URL or file path shared by every issuer, or one per issuer
    # (same order); empty: OpenID Connect discovery at <issuer>/.well-known/openid-configuration.
    jwks: tuple[str, ...] = ()
    roles_claim: str = "roles"  # CETATE_ROLES_CLAIM, dotted: realm_access.roles for Keycloak
    tenants_claim: str = "cetate_tenants"  # CETATE_TENANTS_CLAIM
    purposes_claim: str = "cetate_purposes"  # CETATE_PURPOSES_CLAIM
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS  # CETATE_OIDC_ALGORITHMS
    leeway: float = DEFAULT_LEEWAY_S  # CETATE_OIDC_LEEWAY (seconds, for exp and nbf)
    jwks_min_refresh: float = DEFAULT_JWKS_MIN_REFRESH_S  # CETATE_OIDC_JWKS_MIN_REFRESH
    jwks_max_age: float = DEFAULT_JWKS_MAX_AGE_S  # CETATE_OIDC_JWKS_MAX_AGE
    jwks_timeout: float = DEFAULT_JWKS_TIMEOUT_S  # CETATE_OIDC_JWKS_TIMEOUT
    jwks_max_bytes: int = DEFAULT_JWKS_MAX_BYTES
    api_key_cache: float = DEFAULT_API_KEY_CACHE_S  # CETATE_API_KEY_CACHE_SECONDS

    def __post_init__(self) -> None:
        bad = FORBIDDEN_ALGORITHMS.intersection(self.algorithms)
        if bad:
            raise ValueError(f"CETATE_OIDC_ALGORITHMS: {', '.join(sorted(bad))} refused "
                             "(RFC 8725 §3.1/3.2: only asymmetric signatures)")
        if not self.algorithms:
            raise ValueError("CETATE_OIDC_ALGORITHMS: at least one algorithm is needed")
        if self.issuers and not self.audiences:
            # RFC 8725 §3.9: a token minted for another service must not be accepted here.
            raise ValueError("CETATE_OIDC_AUDIENCE is required with CETATE_OIDC_ISSUER "
                             "(the client id or audience the issuer puts in tokens for Cetate)")
        if self.jwks and len(self.jwks) not in (1, len(self.issuers)):
            raise ValueError("CETATE_OIDC_JWKS: give one JWKS for all issuers or one per issuer "
                             f"({len(self.issuers)} issuers, {len(self.jwks)} JWKS)")
        if self.jwks and not self.issuers:
            raise ValueError("CETATE_OIDC_JWKS is set but CETATE_OIDC_ISSUER is not")

    @property
    def tokens_enabled(self) -> bool:
        return bool(self.issuers)

    def jwks_for(self, issuer: str) -> str | None:
        """The JWKS location of a configured issuer; None means OIDC discovery."""
        if not self.jwks:
            return None
        return self.jwks[0] if len(self.jwks) == 1 else self.jwks[self.issuers.index(issuer)]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IdentitySettings:
        """Settings from the environment; ValueError naming the variable when one is wrong."""
        env = os.environ if env is None else env
        algorithms = _split(env.get("CETATE_OIDC_ALGORITHMS")) or DEFAULT_ALGORITHMS
        return cls(
            issuers=_split(env.get("CETATE_OIDC_ISSUER")),
            audiences=_split(env.get("CETATE_OIDC_AUDIENCE")),
            jwks=_split(env.get("CETATE_OIDC_JWKS")),
            roles_claim=(env.get("CETATE_ROLES_CLAIM") or "roles").strip(),
            tenants_claim=(env.get("CETATE_TENANTS_CLAIM") or "cetate_tenants").strip(),
            purposes_claim=(env.get("CETATE_PURPOSES_CLAIM") or "cetate_purposes").strip(),
            algorithms=algorithms,
            leeway=_number(env, "CETATE_OIDC_LEEWAY", DEFAULT_LEEWAY_S),
            jwks_min_refresh=_number(env, "CETATE_OIDC_JWKS_MIN_REFRESH",
                                     DEFAULT_JWKS_MIN_REFRESH_S),
            jwks_max_age=_number(env, "CETATE_OIDC_JWKS_MAX_AGE", DEFAULT_JWKS_MAX_AGE_S),
            jwks_timeout=_number(env, "CETATE_OIDC_JWKS_TIMEOUT", DEFAULT_JWKS_TIMEOUT_S),
            api_key_cache=_number(env, "CETATE_API_KEY_CACHE_SECONDS", DEFAULT_API_KEY_CACHE_S),
        )
