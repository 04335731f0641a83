"""Hypothesis: random policies x principals x purposes x entities, at the decision point.

Whatever the rules, (1) no attribute a decision masks comes out of `apply_decision`, (2) a
pseudonymised value never comes out in clear, (3) a personal or special attribute is disclosed
in clear only if some matching allow rule names the request's purpose, (4) an entity a decision
denies is never returned by `filter_entities`. Also: rule order never changes a decision."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.validation.contracts import contracts
from security.identity.principal import Principal
from security.policy import Resource, apply_decision, compile_policy, decide, filter_entities
from security.policy.load import type_infos
from security.policy.model import PURPOSE_BOUND, Policy
from security.privacy.pseudonym import Pseudonymiser

TYPES = ["TransitCard", "TicketValidation", "Taxpayer", "Streetlight", "ParkingSession"]
ROLES = ["a", "b", "c"]
PURPOSES = ["p1", "p2"]
TENANTS = ["@default", "t1"]
VOCAB = {"roles": {r: r for r in ROLES}, "purposes": {p: p for p in PURPOSES}}
CONTRACTS = contracts()
INFOS = type_infos(CONTRACTS)  # compiled once: each example compiles two policies
ATTRS = {t: [n for n in CONTRACTS.named(t).attributes if n not in ("id", "type")]
         for t in TYPES}
PSEUDO = Pseudonymiser(b"p" * 32)
SECRET = "clear-value-"  # every attribute value starts with it: pseudonyms never do


# Strategies built once: building them inside a composite draw dominates the run time.
TYPE_LISTS = st.lists(st.sampled_from(TYPES), min_size=1, max_size=2, unique=True)
ROLE_LISTS = st.lists(st.sampled_from([*ROLES, "*"]), min_size=1, max_size=2, unique=True)
ACTION_LISTS = st.lists(st.sampled_from(["read", "subscribe", "create"]), min_size=1,
                        max_size=2, unique=True)
EFFECTS = st.sampled_from(["allow", "allow", "deny", "mask", "pseudonymise"])
PURPOSE_LISTS = st.lists(st.sampled_from(PURPOSES), min_size=1, unique=True)
TENANT_LISTS = st.lists(st.sampled_from(TENANTS), min_size=1, unique=True)
SCOPES = st.sampled_from(["whole", "classes", "attributes"])
CLASS_LISTS = st.lists(st.sampled_from(["none", "pseudonymous", "personal", "special"]),
                       min_size=1, unique=True)
ATTRIBUTE_LISTS = {t: st.lists(st.sampled_from(ATTRS[t]), min_size=1, max_size=4, unique=True)
                   for t in TYPES}


@st.composite
def rules(draw: st.DrawFn, n: int) -> dict[str, Any]:
    types = draw(TYPE_LISTS)
    rule: dict[str, Any] = {"id": f"r{n}", "description": "random", "types": types,
                            "roles": draw(ROLE_LISTS), "actions": draw(ACTION_LISTS),
                            "effect": draw(EFFECTS)}
    if draw(st.booleans()):
        rule["purposes"] = draw(PURPOSE_LISTS)
    if draw(st.booleans()):
        rule["tenants"] = draw(TENANT_LISTS)
    scope = draw(SCOPES)
    if scope == "classes":
        rule["classes"] = draw(CLASS_LISTS)
    elif scope == "attributes":
        rule["attributes"] = draw(ATTRIBUTE_LISTS[types[-1]])
    if rule["effect"] in ("allow", "pseudonymise") and "purposes" not in rule:
        rule.pop("classes", None)  # the loader refuses naming personal data with no purpose
        rule.pop("attributes", None)
    return rule


@st.composite
def policies(draw: st.DrawFn) -> tuple[Policy, list[dict[str, Any]]]:
    raw = [draw(rules(n)) for n in range(draw(st.integers(1, 6)))]
    return compile_policy([("v.yaml", VOCAB), ("r.yaml", {"rules": raw})], INFOS), raw


def entity_of(type_names: list[str]) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    for t in type_names:
        contract = CONTRACTS.named(t)
        for name in ATTRS[t]:
            iri = contract.terms.expand(name)
            kind = contract.attributes[name].kind or "Property"
            instance: dict[str, Any] = {"type": kind}
            value = SECRET + name
            if kind == "Relationship":
                instance["object"] = "urn:" + value
            elif kind == "GeoProperty":
                instance["value"] = {"type": "Point", "coordinates": [1.0, 2.0]}
            elif kind == "LanguageProperty":
                instance["languageMap"] = {"ro": value}
            else:
                instance["value"] = value
            attrs[iri] = [instance]
    attrs["https://example.org/unlisted"] = [{"type": "Property", "value": SECRET + "x"}]
    return {"id": "urn:ngsi-ld:X:1", "type": [CONTRACTS.named(t).type_iri for t in type_names],
            "attrs": attrs}


principals = st.builds(lambda roles: Principal("s", frozenset(roles), "token"),
                       st.lists(st.sampled_from(ROLES), min_size=1, max_size=2, unique=True))
CASES = 300


@settings(max_examples=CASES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy_and_raw=policies(), principal=principals,
       purpose=st.sampled_from([None, *PURPOSES]), tenant=st.sampled_from(["", "t1"]),
       type_names=st.lists(st.sampled_from(TYPES), min_size=1, max_size=2, unique=True),
       action=st.sampled_from(["read", "subscribe"]))
def test_nothing_masked_or_ungranted_ever_comes_out(
        policy_and_raw: tuple[Policy, list[dict[str, Any]]], principal: Principal,
        purpose: str | None, tenant: str, type_names: list[str], action: str) -> None:
    policy, raw = policy_and_raw
    entity = entity_of(type_names)
    resource = Resource(tenant, tuple(entity["type"]))
    decision = decide(policy, principal, action, resource, purpose)
    shown = filter_entities(policy, principal, [entity], PSEUDO, tenant, purpose, action)
    if not decision.allowed:
        assert shown == []
        return
    out = apply_decision(decision, entity, PSEUDO)
    assert shown == [out]
    for iri, instances in out["attrs"].items():
        assert decision.effect(iri) != "mask", iri
        if decision.effect(iri) == "pseudonymise":
            assert SECRET not in str(instances), iri
    # privacy by default: personal or special in clear only through a purpose-bound allow
    for iri in out["attrs"]:
        if decision.effect(iri) != "allow":
            continue
        classes = {policy.class_of(t, iri) for t in resource.types}
        if classes & PURPOSE_BOUND:
            assert purpose is not None
            assert any(r.effect == "allow" and r.purposes is not None and purpose in r.purposes
                       for r in policy.rules), (iri, classes)
    # rule order never matters
    reordered = compile_policy([("v.yaml", VOCAB), ("r.yaml", {"rules": raw[::-1]})], INFOS)
    again = decide(reordered, principal, action, resource, purpose)
    assert (again.allowed, again.masked, again.pseudonymised, again.visible,
            again.unclassified) == (decision.allowed, decision.masked, decision.pseudonymised,
                                    decision.visible, decision.unclassified)
