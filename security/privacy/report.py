"""Records of processing activities (GDPR art. 30(1)), from the contracts and the policy. Pure.

For each entity type: its personal-data attributes by class, who may receive them (role,
purpose, tenant, actions, and whether in clear or pseudonymised), the retention period and the
lawful basis, and whether erasure on request applies. The grants are found by asking the
decision point itself, for every declared role and purpose, so the report says what the broker
enforces, not what someone meant to write.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from broker.validation.contracts import Contracts
from security.identity.principal import Principal
from security.policy.decide import decide
from security.policy.model import DISCLOSING, ENTITY_ACTIONS, Policy, Resource
from security.privacy.erasure import erasure

PERSONAL_CLASSES = ("special", "personal", "pseudonymous")
DISCLOSING_ORDER = tuple(a for a in ENTITY_ACTIONS if a in DISCLOSING)


@dataclass(frozen=True)
class Grant:
    role: str
    purpose: str | None
    tenant: str | None  # None: any tenant
    actions: tuple[str, ...]
    attributes: tuple[tuple[str, str], ...]  # (attribute name, "clear" | "pseudonymised")


@dataclass(frozen=True)
class TypeRecord:
    type: str
    type_iri: str
    retention: str
    lawful_basis: str
    erasure: str
    erasure_allowed: bool
    personal_data: dict[str, list[str]]  # class -> attribute names
    grants: tuple[Grant, ...]


def _tenants(policy: Policy) -> list[str]:
    named = {t for r in policy.rules for t in (r.tenants or ())}
    return sorted(named | {""})


def _grants(policy: Policy, type_iri: str, personal: dict[str, str]) -> list[Grant]:
    tenants = _tenants(policy)
    found: dict[tuple[Any, ...], list[str]] = {}
    for role in sorted(policy.roles):
        principal = Principal(subject="report", roles=frozenset({role}), kind="token")
        for purpose in (None, *sorted(policy.purposes)):
            for action in DISCLOSING_ORDER:
                seen: dict[tuple[tuple[str, str], ...], list[str]] = {}
                for tenant in tenants:
                    d = decide(policy, principal, action, Resource(tenant, (type_iri,)), purpose)
                    if not d.allowed:
                        continue
                    attrs = tuple(sorted(
                        (name, "clear" if d.effect(iri) == "allow" else "pseudonymised")
                        for iri, name in personal.items() if d.effect(iri) != "mask"))
                    if attrs:
                        seen.setdefault(attrs, []).append(tenant)
                for attrs, where in seen.items():
                    tenant_key = None if len(where) == len(tenants) else ",".join(
                        t or "@default" for t in where)
                    found.setdefault((role, purpose, tenant_key, attrs), []).append(action)
    return [Grant(role, purpose, tenant, tuple(actions), attrs)
            for (role, purpose, tenant, attrs), actions in found.items()]


def _without_redundant(grants: list[Grant]) -> list[Grant]:
    """Drop a purpose-bound grant that discloses nothing more than the same role's grant with
    no purpose (the latter already says it)."""
    general = {(g.role, g.tenant, g.actions, g.attributes) for g in grants if g.purpose is None}
    return [g for g in grants
            if g.purpose is None or (g.role, g.tenant, g.actions, g.attributes) not in general]


def records(policy: Policy, contracts: Contracts) -> list[TypeRecord]:
    """One record per contracted entity type, by name."""
    out = []
    for name in contracts.names():
        contract = contracts.named(name)
        info = policy.types.get(contract.type_iri)
        classes = info.classes if info else {}
        names = info.names if info else {}
        by_class: dict[str, list[str]] = {}
        personal: dict[str, str] = {}
        for iri, cls in classes.items():
            if cls in PERSONAL_CLASSES:
                by_class.setdefault(cls, []).append(names[iri])
                personal[iri] = names[iri]
        answer = erasure(contract.lawful_basis)
        grants = _without_redundant(_grants(policy, contract.type_iri, personal)) if personal \
            else []
        out.append(TypeRecord(
            type=name, type_iri=contract.type_iri, retention=contract.retention,
            lawful_basis=contract.lawful_basis, erasure=answer.reason,
            erasure_allowed=answer.allowed,
            personal_data={c: sorted(by_class[c]) for c in PERSONAL_CLASSES if c in by_class},
            grants=tuple(grants)))
    return out


def as_json(items: Iterable[TypeRecord]) -> list[dict[str, Any]]:
    return [{
        "type": r.type, "typeIri": r.type_iri, "retention": r.retention,
        "lawfulBasis": r.lawful_basis,
        "erasure": {"allowed": r.erasure_allowed, "reason": r.erasure},
        "personalData": r.personal_data,
        "recipients": [{"role": g.role, "purpose": g.purpose, "tenant": g.tenant,
                        "actions": list(g.actions),
                        "attributes": {n: how for n, how in g.attributes}}
                       for g in r.grants],
    } for r in items]


def as_text(items: Iterable[TypeRecord]) -> str:
    lines = ["Records of processing (GDPR art. 30): personal data by entity type, who receives",
             "it (role, purpose, tenant), retention and lawful basis. From contracts/types/ and",
             "the policy in force.", ""]
    for r in items:
        lines.append(f"{r.type}  ({r.type_iri})")
        lines.append(f"  retention {r.retention}; lawful basis {r.lawful_basis}; erasure on "
                     f"request: {'applies' if r.erasure_allowed else 'exempt'}")
        if not r.personal_data:
            lines += ["  personal data: none", ""]
            continue
        for cls, names in r.personal_data.items():
            lines.append(f"  {cls}: {', '.join(names)}")
        if not r.grants:
            lines.append("  recipients: none (no rule discloses its personal data)")
        for g in r.grants:
            where = f"tenant {g.tenant}" if g.tenant else "any tenant"
            purpose = f"for {g.purpose}" if g.purpose else "with any purpose"
            attrs = ", ".join(n + (" (pseudonymised)" if how == "pseudonymised" else "")
                              for n, how in g.attributes)
            lines.append(f"  -> {g.role} {purpose}, {where}, {'/'.join(g.actions)}: {attrs}")
        lines.append("")
    return "\n".join(lines)
