"""The policy decision point: may this principal do this action on this resource, for this
purpose, and which attributes does it see, masked or pseudonymised? Pure, no I/O.

The algorithm (docs/policies.md, "How a decision is made"):
1. The principal must be allowed the tenant and the purpose it claims; the purpose must be
   declared in the policy.
2. A rule matches when it names one of the principal's roles (or `*`), the action, the tenant
   (or none), the purpose (or none) and the entity type (or `*`) or API resource.
3. An entity type is granted when a matching `allow` or `pseudonymise` rule exists and no
   matching `deny` rule is about whole entities. Otherwise it is denied: default deny.
4. Each attribute gets the strongest effect among the matching rules that cover it, by name or
   by its personal-data class: deny > mask > pseudonymise > allow (order and specificity play no
   part). A grant discloses a personal or special attribute only if the rule names the purpose
   (privacy by default, GDPR art. 25); an attribute no grant covers is masked.
5. An entity of several types is granted only if each type is; each attribute takes the
   strongest of its effects under each type.
6. A write (create, update, delete) naming attributes is refused unless each is allowed.

Decisions are cached on the compiled policy (a reload compiles a new one, with a new cache).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from security.identity.principal import Principal
from security.policy.model import (
    ACTIONS,
    DEFAULT_DENY,
    GRANTS,
    PRECEDENCE,
    WRITES,
    Decision,
    Effect,
    Policy,
    Resource,
    Rule,
)

CACHE_SIZE = 20_000  # decisions kept per policy: (roles, tenant, types, purpose...) combinations
PSEUDONYM_URN = "urn:ngsi-ld:Pseudonym:"  # a pseudonymised relationship still points at a URI
UNCLASSIFIED = None  # the attribute key standing for attributes the contracts do not list

# The members of an attribute instance kept when its value is pseudonymised; sub-attributes
# (keys with ":") go, since they may describe the value in clear.
_KEEP = frozenset({"type", "datasetId", "observedAt", "unitCode", "createdAt", "modifiedAt",
                   "objectType", "lang"})


@dataclass
class AttributeVerdict:
    effect: Effect
    rule: str  # the deciding rule id, or DEFAULT_DENY
    cls: str


@dataclass
class Evaluation:
    """A decision with the reasons behind it (for explanations)."""

    decision: Decision
    matched: list[Rule] = field(default_factory=list)
    attributes: dict[str | None, AttributeVerdict] = field(default_factory=dict)


def decide(policy: Policy, principal: Principal, action: str, resource: Resource,
           purpose: str | None = None) -> Decision:
    """The decision for one request (cached per policy)."""
    key = (principal.roles, principal.tenants, principal.purposes, action, resource, purpose)
    found = policy.cache.get(key)
    if found is None:
        found = evaluate(policy, principal, action, resource, purpose).decision
        if len(policy.cache) >= CACHE_SIZE:
            policy.cache.clear()
        policy.cache[key] = found
    return found


def _deny(reason: str, *rules: str) -> Evaluation:
    return Evaluation(Decision(False, rules or (DEFAULT_DENY,), reason))


def matches(rule: Rule, tenant: str, purpose: str | None) -> bool:
    return ((rule.tenants is None or tenant in rule.tenants)
            and (rule.purposes is None or purpose in rule.purposes))


def evaluate(policy: Policy, principal: Principal, action: str, resource: Resource,
             purpose: str | None = None) -> Evaluation:
    """The decision and how it was reached (uncached)."""
    if action not in ACTIONS:
        return _deny(f"unknown action {action}")
    if purpose is not None and purpose not in policy.purposes:
        return _deny(f"purpose {purpose} is not declared in the policy")
    if not principal.may_claim(purpose):
        return _deny(f"the principal may not claim the purpose {purpose}")
    if not principal.may_use_tenant(resource.tenant):
        return _deny(f"the principal may not use tenant {resource.tenant or '(default)'}")
    rules = [r for r in policy.candidates(principal.roles, action)
             if matches(r, resource.tenant, purpose)]
    if resource.api is not None:
        return _decide_api(rules, resource.api, action)
    if not resource.types:
        return _deny("no entity type to decide on")
    who = f"roles {', '.join(sorted(principal.roles))}, " + (
        f"purpose {purpose}" if purpose else "no purpose declared")
    return _decide_entities(policy, rules, action, resource, who)


def _decide_api(rules: list[Rule], api: str, action: str) -> Evaluation:
    matched = [r for r in rules if r.resources is not None and api in r.resources]
    denies = [r.id for r in matched if r.effect == "deny"]
    grants = [r.id for r in matched if r.effect == "allow"]
    if denies:
        evaluation = _deny(f"rule {denies[0]} denies {action} on {api}", *denies)
    elif grants:
        evaluation = Evaluation(Decision(True, tuple(grants), f"{action} on {api} granted"))
    else:
        evaluation = _deny(f"no rule grants {action} on {api}")
    evaluation.matched = matched
    return evaluation


def _strongest(rules: list[Rule], iri: str | None, cls: str, action: str) -> AttributeVerdict:
    best: AttributeVerdict | None = None
    for rule in rules:
        if not rule.covers(iri, cls):
            continue
        if rule.effect in GRANTS and not rule.discloses(cls, action):
            continue
        if best is None or PRECEDENCE[rule.effect] > PRECEDENCE[best.effect]:
            best = AttributeVerdict(rule.effect, rule.id, cls)
    return best or AttributeVerdict("mask", DEFAULT_DENY, cls)


def _decide_entities(policy: Policy, rules: list[Rule], action: str, resource: Resource,
                     who: str) -> Evaluation:
    entity_rules = [r for r in rules if r.resources is None]
    per_type = {t: [r for r in entity_rules if r.types is None or t in r.types]
                for t in resource.types}
    matched = list({r.id: r for rs in per_type.values() for r in rs}.values())
    grants: list[str] = []
    for t, type_rules in per_type.items():
        denies = [r.id for r in type_rules if r.effect == "deny" and r.whole]
        if denies:
            ev = _deny(f"rule {denies[0]} denies {action} on {policy.type_name(t)}", *denies)
            ev.matched = matched
            return ev
        granting = [r.id for r in type_rules if r.effect in GRANTS]
        if not granting:
            ev = _deny(f"no rule grants {action} on {policy.type_name(t)} ({who})")
            ev.matched = matched
            return ev
        grants.extend(g for g in granting if g not in grants)

    # Every attribute the contracts list for the types is decided, not only those asked
    # about: the decision must be safe to apply to whole entities.
    iris: set[str | None] = {a for t in resource.types
                             for a in (policy.types[t].classes if t in policy.types else ())}
    iris.update(resource.attributes or ())
    iris.add(UNCLASSIFIED)
    verdicts: dict[str | None, AttributeVerdict] = {}
    for t, type_rules in per_type.items():
        # An attribute no rule names takes its class's verdict: one evaluation per class.
        named = {a for r in type_rules for a in (r.attributes or ())}
        by_class: dict[str, AttributeVerdict] = {}
        for iri in iris:
            cls = policy.class_of(t, iri)
            if iri in named:
                verdict = _strongest(type_rules, iri, cls, action)
            else:
                if cls not in by_class:
                    by_class[cls] = _strongest(type_rules, None, cls, action)
                verdict = by_class[cls]
            known = verdicts.get(iri)
            if known is None or PRECEDENCE[verdict.effect] > PRECEDENCE[known.effect]:
                verdicts[iri] = verdict
    by_effect: dict[str, set[str]] = {"allow": set(), "mask": set(), "deny": set(),
                                      "pseudonymise": set()}
    for iri, verdict in verdicts.items():
        if iri is not None:
            by_effect[verdict.effect].add(iri)
    unclassified = verdicts[UNCLASSIFIED].effect
    names = ", ".join(policy.type_name(t) for t in resource.types)
    decision = Decision(
        allowed=True, rules=tuple(grants), reason=f"{action} on {names} granted",
        masked=frozenset(by_effect["mask"] | by_effect["deny"]),
        pseudonymised=frozenset(by_effect["pseudonymise"]),
        visible=frozenset(by_effect["allow"]),
        unclassified="mask" if unclassified == "deny" else unclassified)
    if action in WRITES and resource.attributes is not None:
        refused = sorted(a for a in resource.attributes if decision.effect(a) != "allow")
        if refused:
            deciding = tuple(dict.fromkeys(verdicts[a].rule for a in refused))
            decision = Decision(False, deciding,
                                f"{action} of attribute(s) {', '.join(refused)} on {names} "
                                "is not granted", decision.masked, decision.pseudonymised,
                                decision.visible, decision.unclassified)
    return Evaluation(decision, matched, verdicts)


# -- applying a decision to entities (the internal form of docs/internals.md) ----------------

Pseudonymise = Callable[[str], str]


def canonical(value: Any) -> str:
    """The text a value's pseudonym is computed from: strings as they are (so a card id gives
    the same pseudonym wherever it appears), anything else as sorted-key JSON."""
    return value if isinstance(value, str) else orjson.dumps(
        value, option=orjson.OPT_SORT_KEYS).decode()


def _pseudonym_uri(uri: Any, pseudonymise: Pseudonymise) -> str:
    return PSEUDONYM_URN + pseudonymise(canonical(uri))


def _pseudonymised(instance: Mapping[str, Any],
                   pseudonymise: Pseudonymise) -> dict[str, Any] | None:
    """The instance with its value replaced by a keyed hash, in the same kind where the kind
    allows it; None for a GeoProperty, whose geometry has no pseudonymous form (left out)."""
    kind = instance.get("type", "Property")
    out = {k: v for k, v in instance.items() if k in _KEEP}
    if kind == "GeoProperty":
        return None
    if kind == "Relationship":
        obj = instance.get("object")
        out["object"] = ([_pseudonym_uri(o, pseudonymise) for o in obj]
                         if isinstance(obj, list) else _pseudonym_uri(obj, pseudonymise))
    elif kind == "ListRelationship":
        out["objectList"] = [_pseudonym_uri(o, pseudonymise)
                             for o in instance.get("objectList", [])]
    elif kind == "LanguageProperty":
        out["languageMap"] = {"@none": pseudonymise(canonical(instance.get("languageMap")))}
    elif kind == "VocabProperty":
        out["vocab"] = _pseudonym_uri(instance.get("vocab"), pseudonymise)
    elif kind == "JsonProperty":
        out["json"] = pseudonymise(canonical(instance.get("json")))
    elif kind == "ListProperty":
        out["valueList"] = [pseudonymise(canonical(v)) for v in instance.get("valueList", [])]
    else:
        out["value"] = pseudonymise(canonical(instance.get("value")))
    return out


def apply_decision(decision: Decision, entity: Mapping[str, Any],
                   pseudonymise: Pseudonymise) -> Mapping[str, Any]:
    """The entity as the decision lets its principal see it: masked attributes left out,
    pseudonymised ones with keyed hashes for values. The entity is not modified; when nothing
    is filtered it is returned as it is. A denied decision filters nothing: check `allowed`."""
    if not decision.allowed:
        raise ValueError(f"a denied decision cannot filter an entity: {decision.reason}")
    if not decision.filters:
        return entity
    visible = decision.visible
    attrs: dict[str, Any] = {}
    for iri, instances in entity.get("attrs", {}).items():
        if iri in visible:  # the common case first: one set lookup
            attrs[iri] = instances
            continue
        effect = decision.effect(iri)
        if effect == "allow":  # not listed by the contracts, and unclassified is shown
            attrs[iri] = instances
        elif effect == "pseudonymise":
            kept = [p for i in instances if (p := _pseudonymised(i, pseudonymise)) is not None]
            if kept:
                attrs[iri] = kept
    out = dict(entity)
    out["attrs"] = attrs
    return out


# -- discovery: what a principal may learn exists ---------------------------------------------

def readable_types(policy: Policy, principal: Principal, type_iris: Iterable[str],
                   tenant: str = "", purpose: str | None = None) -> list[str]:
    """The types (IRIs) whose entities the principal may read: the others are not named to it
    by type discovery (GET /types)."""
    return [t for t in type_iris
            if decide(policy, principal, "read", Resource(tenant, (t,)), purpose).allowed]


def visible_attributes(policy: Policy, principal: Principal, type_iri: str,
                       attribute_iris: Iterable[str], tenant: str = "",
                       purpose: str | None = None) -> list[str]:
    """The attribute IRIs of a type the principal may learn of (GET /attributes, /types/{T}):
    those it sees in clear or pseudonymised, none that a decision masks."""
    decision = decide(policy, principal, "read", Resource(tenant, (type_iri,)), purpose)
    if not decision.allowed:
        return []
    return [a for a in attribute_iris if decision.effect(a) != "mask"]


def unfilterable(decision: Decision, attribute_iris: Iterable[str]) -> list[str]:
    """The attributes a query may not filter or sort on (q, geoQ, orderBy): those the principal
    does not see in clear. Matching on a masked or pseudonymised value would reveal it one
    yes/no answer at a time, so the broker treats them as absent (no entity matches)."""
    return [a for a in attribute_iris if decision.effect(a) != "allow"]


def filter_entities(policy: Policy, principal: Principal, entities: Iterable[Mapping[str, Any]],
                    pseudonymise: Pseudonymise, tenant: str = "", purpose: str | None = None,
                    action: str = "read") -> list[Mapping[str, Any]]:
    """The entities the principal may see, each as the decision for its types lets it see
    them; the others are left out (for paths that cannot restrict the query by type first)."""
    out = []
    for entity in entities:
        decision = decide(policy, principal, action,
                          Resource(tenant, tuple(entity.get("type", ()))), purpose)
        if decision.allowed:
            out.append(apply_decision(decision, entity, pseudonymise))
    return out
