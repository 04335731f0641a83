"""Broker settings: defaults, then CETATE_* environment variables, then command-line flags."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

# A batch of 1,000 entities of a dozen attributes is ~1-2 MB of JSON; 16 MiB leaves room for
# large compound values while still bounding what one request can make the broker hold.
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 1026
    store: str = "sqlite:///data/cetate.db"
    allowed_networks: tuple[str, ...] = ()
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    shutdown_timeout: float = 30.0
    log_level: str = "INFO"
    log_format: str = "json"  # "json" | "text"
    context_timeout: float = 5.0
    context_max_bytes: int = 1_000_000
    public_url: str = ""  # base URL clients reach the broker at; default http://host:port
    migrate: bool = True
    workers: int = 1  # broker processes sharing the port (broker/workers.py)
    # Validation on ingest against contracts/types/ (docs/contracts.md): strict | warn | off,
    # each optionally +closed; per tenant as "tax=strict+closed,demo=off".
    validation: str = "strict"
    validation_tenants: str = ""
    # The audit log (docs/auditors.md): in the store's own database (CETATE_AUDIT_STORE keeps
    # it apart, in a SQLite file); keys default to audit-keys/ beside a SQLite store, else
    # data/audit-keys.
    audit: bool = True
    audit_store: str = ""
    audit_key_dir: str = ""
    audit_origin: str = ""  # checkpoint origin and key name; default cetate.local/audit
    pseudonym_key_file: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from broker.validation.modes import parse_policy  # modes is pure and imports nothing

        try:
            parse_policy(self.validation, self.validation_tenants)
        except ValueError as exc:
            raise ValueError(f"CETATE_VALIDATION / CETATE_VALIDATION_TENANTS: {exc}") from None

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    def with_overrides(self, **values: Any) -> Settings:
        """A copy with the given values, skipping those that are None (flags not given)."""
        return replace(self, **{k: v for k, v in values.items() if v is not None})


def _parse_bool(text: str) -> bool:
    return text.strip().lower() in {"1", "true", "yes", "on"}


def _parse_networks(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


_PARSERS: dict[type | str, Any] = {
    "int": int,
    "float": float,
    "bool": _parse_bool,
    "str": str,
    "tuple[str, ...]": _parse_networks,
}


def from_env(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from CETATE_<FIELD> variables (e.g. CETATE_PORT, CETATE_ALLOWED_NETWORKS)."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for f in fields(Settings):
        raw = env.get("CETATE_" + f.name.upper())
        if raw is None or f.name == "extra":
            continue
        parser = _PARSERS.get(str(f.type), str)
        try:
            values[f.name] = parser(raw)
        except ValueError as exc:
            raise SystemExit(f"CETATE_{f.name.upper()}: {exc}") from None
    return Settings(**values)
