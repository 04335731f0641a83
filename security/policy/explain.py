"""Why a decision came out as it did: the rules considered, why each applied or not, and the
rule that decided (for operators and auditors: `cetate privacy explain`). Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from security.identity.principal import Principal
from security.policy.decide import evaluate
from security.policy.model import ANY, DEFAULT_DENY, Decision, Policy, Resource, Rule


@dataclass(frozen=True)
class RuleCheck:
    rule: str
    source: str
    effect: str
    applies: bool
    why: str  # what matched, or the first condition that did not


@dataclass(frozen=True)
class AttributeCheck:
    iri: str | None  # None: attributes the contracts do not list
    name: str
    cls: str
    effect: str
    rule: str


@dataclass(frozen=True)
class Explanation:
    decision: Decision
    rules: tuple[RuleCheck, ...]
    attributes: tuple[AttributeCheck, ...]

    def as_json(self) -> dict[str, object]:
        d = self.decision
        return {
            "allowed": d.allowed, "decidedBy": list(d.rules), "reason": d.reason,
            "rules": [{"id": c.rule, "file": c.source, "effect": c.effect, "applies": c.applies,
                       "why": c.why} for c in self.rules],
            "attributes": [{"attribute": a.name, "iri": a.iri, "class": a.cls,
                            "effect": a.effect, "rule": a.rule} for a in self.attributes],
        }


def _principal(who: Principal | Iterable[str]) -> Principal:
    if isinstance(who, Principal):
        return who
    return Principal(subject="explain", roles=frozenset(who), kind="token")


def _check(rule: Rule, principal: Principal, action: str, resource: Resource,
           purpose: str | None, policy: Policy) -> str | None:
    """None if the rule applies, else the first condition it fails."""
    if ANY not in rule.roles and not rule.roles & principal.roles:
        return f"roles {', '.join(sorted(rule.roles))} only"
    if action not in rule.actions:
        return f"actions {', '.join(sorted(rule.actions))} only"
    if rule.tenants is not None and resource.tenant not in rule.tenants:
        return f"tenants {', '.join(sorted(t or '@default' for t in rule.tenants))} only"
    if rule.purposes is not None and purpose not in rule.purposes:
        return f"purposes {', '.join(sorted(rule.purposes))} only"
    if resource.api is not None:
        if rule.resources is None or resource.api not in rule.resources:
            return "about other resources"
    elif rule.resources is not None:
        return "about API resources, not entities"
    elif rule.types is not None and not rule.types & set(resource.types):
        shown = ", ".join(rule.written_types[:4])
        more = len(rule.written_types) - 4
        return f"types {shown}{f' and {more} more' if more > 0 else ''} only"
    return None


def explain(policy: Policy, who: Principal | Iterable[str], action: str, resource: Resource,
            purpose: str | None = None) -> Explanation:
    """Every rule of the policy checked against the request, and the decision."""
    principal = _principal(who)
    evaluation = evaluate(policy, principal, action, resource, purpose)
    deciding = set(evaluation.decision.rules)
    checks = []
    for rule in policy.rules:
        failed = _check(rule, principal, action, resource, purpose, policy)
        why = failed or ("decided" if rule.id in deciding else "applies")
        checks.append(RuleCheck(rule.id, rule.source, rule.effect, failed is None, why))
    attributes = []
    names = {iri: name for t in resource.types if t in policy.types
             for iri, name in policy.types[t].names.items()}
    for iri, verdict in sorted(evaluation.attributes.items(),
                               key=lambda kv: (kv[0] is None, names.get(kv[0] or "", kv[0]))):
        name = "(unclassified)" if iri is None else names.get(iri, iri)
        attributes.append(AttributeCheck(iri, name, verdict.cls, verdict.effect, verdict.rule))
    return Explanation(evaluation.decision, tuple(checks), tuple(attributes))


def format_explanation(explanation: Explanation, only: Iterable[str] | None = None) -> str:
    """The explanation for people; `only` limits the attributes listed (IRIs)."""
    d = explanation.decision
    lines = [f"{'ALLOWED' if d.allowed else 'DENIED'}: {d.reason}",
             f"decided by: {', '.join(d.rules)}"
             + (" (nothing grants it: privacy by default)" if DEFAULT_DENY in d.rules else ""),
             "", "rules:"]
    other_roles = 0
    for c in explanation.rules:
        if c.why.startswith("roles "):
            other_roles += 1  # about other roles: counted, not listed
            continue
        mark = "*" if c.why == "decided" else ("+" if c.applies else "-")
        lines.append(f"  {mark} {c.rule:<40} {c.effect:<12} {c.why}  [{c.source}]")
    if other_roles:
        lines.append(f"  ({other_roles} rules of other roles not shown; * decided, + applies, "
                     "- does not apply)")
    wanted = None if only is None else set(only)
    shown = [a for a in explanation.attributes if wanted is None or a.iri in wanted]
    if d.allowed and shown:
        lines += ["", "attributes:"]
        for a in shown:
            lines.append(f"  {a.name:<28} {a.cls:<13} {a.effect:<13} {a.rule}")
    return "\n".join(lines)
