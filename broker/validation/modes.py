"""Per-tenant validation modes, parsed from settings. Pure.

    CETATE_VALIDATION=strict                       the default for every tenant
    CETATE_VALIDATION_TENANTS="tax=strict+closed,demo=off,@default=warn"

strict rejects an invalid entity (BadRequestData), warn accepts it and logs and counts it, off
checks nothing. `+closed` also refuses (or, under warn, reports) entities of a type that has no
contract; without it unknown types pass unchecked. `@default` names the default tenant (the one
without an NGSILD-Tenant header), which no tenant name can spell.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, cast

Mode = Literal["strict", "warn", "off"]
MODES: tuple[Mode, ...] = ("strict", "warn", "off")
CLOSED = "closed"
DEFAULT_TENANT_NAME = "@default"


@dataclass(frozen=True)
class Rule:
    mode: Mode = "strict"
    closed: bool = False  # entities of a type without a contract are invalid too


@dataclass(frozen=True)
class Policy:
    default: Rule = Rule()
    tenants: Mapping[str, Rule] = field(default_factory=lambda: MappingProxyType({}))

    def rule(self, tenant: str) -> Rule:
        return self.tenants.get(tenant, self.default)


def parse_rule(text: str) -> Rule:
    """`strict`, `warn`, `off`, each optionally followed by `+closed`."""
    mode, plus, flag = text.strip().partition("+")
    if mode not in MODES:
        raise ValueError(f"validation mode {mode!r} is not one of {', '.join(MODES)}")
    if plus and flag.strip() != CLOSED:
        raise ValueError(f"validation flag {flag!r}: the only flag is +{CLOSED}")
    return Rule(cast(Mode, mode), closed=bool(plus))


def parse_policy(default: str, tenants: str = "") -> Policy:
    """The policy of CETATE_VALIDATION and CETATE_VALIDATION_TENANTS; ValueError if malformed."""
    rules: dict[str, Rule] = {}
    for item in tenants.split(","):
        if not item.strip():
            continue
        name, eq, rule = item.partition("=")
        name = name.strip()
        if not eq or not name:
            raise ValueError(f"validation tenants: {item.strip()!r} is not tenant=mode")
        rules["" if name == DEFAULT_TENANT_NAME else name] = parse_rule(rule)
    return Policy(parse_rule(default or "strict"), MappingProxyType(rules))
