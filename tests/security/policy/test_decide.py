"""The decision point on small policies written for each test: precedence, privacy by default,
several types, writes, tenants, applying a decision to entities, discovery."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from broker.validation.contracts import contracts
from security.identity.principal import PUBLIC, Principal
from security.policy import (
    Policy,
    Resource,
    apply_decision,
    compile_policy,
    decide,
    readable_types,
    visible_attributes,
)
from security.policy.decide import PSEUDONYM_URN
from security.privacy.pseudonym import Pseudonymiser

VOCAB = {"roles": {"clerk": "a clerk", "public": "anyone", "boss": "the boss"},
         "purposes": {"work": "work", "fun": "fun"},
         "resources": {"audit": "the audit API"}}
CLERK = Principal("c", frozenset({"clerk"}), "token")
CARD = "https://cetate.city/ns/TransitCard"
VALIDATION = "https://cetate.city/ns/TicketValidation"
LIGHT = "https://smartdatamodels.org/dataModel.Streetlighting/Streetlight"
NS = "https://cetate.city/ns/"
REF_HOLDER = NS + "refHolder"  # personal
CARD_STATUS = NS + "cardStatus"  # pseudonymous
RIDER = NS + "riderCategory"  # special
PSEUDO = Pseudonymiser(b"k" * 32)


def rule(id: str, effect: str = "allow", **extra: Any) -> dict[str, Any]:
    return {"id": id, "description": f"rule {id}", "roles": ["clerk"], "actions": ["read"],
            "types": ["TransitCard"], "effect": effect, **extra}


def policy_of(*rules: dict[str, Any], **top: Any) -> Policy:
    return compile_policy([("vocab.yaml", VOCAB), ("rules.yaml", {"rules": list(rules), **top})],
                          contracts())


def effect(policy: Policy, iri: str, purpose: str | None = "work",
           types: tuple[str, ...] = (CARD,)) -> str:
    d = decide(policy, CLERK, "read", Resource("", types), purpose)
    return d.effect(iri) if d.allowed else "denied"


# -- precedence: deny > mask > pseudonymise > allow, whatever the order ------------------------

EFFECTS = ["allow", "pseudonymise", "mask", "deny"]


@pytest.mark.parametrize("pair", list(itertools.combinations(EFFECTS, 2)))
def test_the_stronger_effect_wins_in_either_order(pair: tuple[str, str]) -> None:
    weaker, stronger = pair
    base = rule("base", classes=["none", "pseudonymous"])
    a = rule("a", weaker, attributes=["cardStatus"], purposes=["work"])
    b = rule("b", stronger, attributes=["cardStatus"], purposes=["work"])
    want = "mask" if stronger == "deny" else stronger
    assert effect(policy_of(base, a, b), CARD_STATUS) == want
    assert effect(policy_of(b, base, a), CARD_STATUS) == want
    d = decide(policy_of(base, a, b), CLERK, "read", Resource("", (CARD,)), "work")
    assert d.allowed  # attribute-level deny or mask hides the attribute, not the entity


def test_specificity_plays_no_part() -> None:
    # a narrow allow of one attribute does not override a broad mask of its class
    p = policy_of(rule("all", purposes=["work"]),
                  rule("mask-personal", "mask", classes=["personal"]),
                  rule("holder", attributes=["refHolder"], purposes=["work"]))
    assert effect(p, REF_HOLDER) == "mask"


def test_a_whole_entity_deny_beats_every_grant() -> None:
    p = policy_of(rule("all", purposes=["work"]), rule("no", "deny"))
    d = decide(p, CLERK, "read", Resource("", (CARD,)), "work")
    assert not d.allowed and d.rules == ("no",) and "denies" in d.reason


def test_mask_and_deny_alone_grant_nothing() -> None:
    p = policy_of(rule("m", "mask", classes=["personal"]))
    assert not decide(p, CLERK, "read", Resource("", (CARD,)), "work").allowed


# -- privacy by default ---------------------------------------------------------------------------

def test_a_rule_without_purpose_never_discloses_personal_or_special_data() -> None:
    p = policy_of(rule("all"))
    assert effect(p, CARD_STATUS, None) == "allow"
    assert effect(p, REF_HOLDER, None) == "mask"
    assert effect(p, RIDER, "work") == "mask"
    d = decide(p, CLERK, "read", Resource("", (CARD,)), "work")
    assert d.unclassified == "mask" and d.rules == ("all",)


def test_a_purpose_bound_rule_discloses_only_for_its_purpose() -> None:
    p = policy_of(rule("all", purposes=["work"]))
    assert effect(p, REF_HOLDER, "work") == "allow"
    assert effect(p, RIDER, "work") == "allow"
    assert effect(p, REF_HOLDER, "fun") == "denied"
    assert effect(p, REF_HOLDER, None) == "denied"


def test_pseudonymise_is_a_grant_bound_by_purpose_too() -> None:
    p = policy_of(rule("base", classes=["none"]),
                  rule("holder", "pseudonymise", attributes=["refHolder"], purposes=["work"]))
    assert effect(p, REF_HOLDER, "work") == "pseudonymise"
    assert effect(p, REF_HOLDER, "fun") == "mask"


def test_unclassified_attributes_follow_the_policy_setting() -> None:
    custom = "https://example.org/Thing"
    p = policy_of(rule("any-type", types=["*"]), unclassified="none")
    d = decide(p, CLERK, "read", Resource("", (custom,)))
    assert d.allowed and d.unclassified == "allow"
    p = policy_of(rule("any-type", types=["*"]))  # default: personal
    assert decide(p, CLERK, "read", Resource("", (custom,))).unclassified == "mask"


# -- several types, writes, principals -------------------------------------------------------

def test_an_entity_of_several_types_needs_each_and_takes_the_strongest_effect() -> None:
    p = policy_of(rule("cards", purposes=["work"]),
                  rule("validations", types=["TicketValidation"], classes=["none"]))
    assert not decide(p, CLERK, "read", Resource("", (CARD, LIGHT)), "work").allowed
    d = decide(p, CLERK, "read", Resource("", (CARD, VALIDATION)), "work")
    assert d.allowed
    # refHolder: allowed for cards, not listed for validations -> unclassified there -> masked
    assert d.effect(REF_HOLDER) == "mask"
    # riderCategory: allowed for cards (purpose), special in validations (only none granted)
    assert d.effect(RIDER) == "mask"


def test_a_write_is_refused_unless_every_attribute_it_names_is_allowed() -> None:
    p = policy_of(rule("write", actions=["create", "update"]),
                  rule("no-status", "deny", actions=["update"], attributes=["cardStatus"]))
    d = decide(p, CLERK, "create", Resource.entity([CARD], "", [REF_HOLDER, CARD_STATUS]))
    assert d.allowed  # writes disclose nothing: personal attributes need no purpose
    d = decide(p, CLERK, "update", Resource.entity([CARD], "", [CARD_STATUS]))
    assert not d.allowed and d.rules == ("no-status",) and "cardStatus" in d.reason
    assert decide(p, CLERK, "update", Resource.entity([CARD], "", [REF_HOLDER])).allowed


def test_tenants_of_the_rule_and_of_the_principal() -> None:
    p = policy_of(rule("tax-only", tenants=["tax"], classes=["none"]),
                  rule("default-only", tenants=["@default"], types=["Streetlight"],
                       classes=["none"]))
    assert decide(p, CLERK, "read", Resource("tax", (CARD,))).allowed
    assert not decide(p, CLERK, "read", Resource("", (CARD,))).allowed
    assert decide(p, CLERK, "read", Resource("", (LIGHT,))).allowed
    assert not decide(p, CLERK, "read", Resource("tax", (LIGHT,))).allowed
    bound = Principal("c", frozenset({"clerk"}), "token", tenants=frozenset({"other"}))
    d = decide(p, bound, "read", Resource("tax", (CARD,)))
    assert not d.allowed and "tenant" in d.reason


def test_role_wildcard_and_several_roles() -> None:
    p = policy_of(rule("anyone", roles=["*"], types=["Streetlight"], classes=["none"]),
                  rule("boss", roles=["boss"], purposes=["work"]))
    assert decide(p, PUBLIC, "read", Resource("", (LIGHT,))).allowed
    both = Principal("b", frozenset({"clerk", "boss"}), "token")
    d = decide(p, both, "read", Resource("", (CARD,)), "work")
    assert d.allowed and d.effect(REF_HOLDER) == "allow"


def test_decisions_are_cached_per_policy() -> None:
    p = policy_of(rule("all", purposes=["work"]))
    first = decide(p, CLERK, "read", Resource("", (CARD,)), "work")
    someone_else = Principal("other-subject", frozenset({"clerk"}), "token")
    again = decide(p, someone_else, "read", Resource("", (CARD,)), "work")
    assert again is first  # the subject does not matter, its roles do


# -- applying a decision -------------------------------------------------------------------------

def card_entity() -> dict[str, Any]:
    return {
        "id": "urn:ngsi-ld:TransitCard:c1", "type": [CARD],
        "createdAt": "2026-11-23T10:00:00.000Z", "modifiedAt": "2026-11-23T10:00:00.000Z",
        "attrs": {
            CARD_STATUS: [{"type": "Property", "value": "active",
                           "https://example.org/note": {"type": "Property", "value": "x"}}],
            REF_HOLDER: [{"type": "Relationship", "object": "urn:ngsi-ld:Person:ana",
                          "observedAt": "2026-11-23T10:00:00.000Z"}],
            RIDER: [{"type": "Property", "value": "disabled"}],
            NS + "refFareProduct": [{"type": "Relationship", "object": "urn:ngsi-ld:Fare:1"}],
            "https://uri.etsi.org/ngsi-ld/location": [
                {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [23.8, 44.3]}}],
            "https://example.org/unlisted": [{"type": "Property", "value": "?"}],
        },
    }


def test_apply_masks_and_pseudonymises() -> None:
    p = policy_of(rule("base", classes=["none", "pseudonymous"]),
                  rule("status", "pseudonymise", attributes=["cardStatus"]),
                  rule("holder", "pseudonymise", attributes=["refHolder"], purposes=["work"]),
                  rule("where", "pseudonymise",
                       attributes=["https://uri.etsi.org/ngsi-ld/location"]))
    d = decide(p, CLERK, "read", Resource("", (CARD,)), "work")
    entity = card_entity()
    out = apply_decision(d, entity, PSEUDO)
    assert entity == card_entity()  # not modified
    assert set(out["attrs"]) == {CARD_STATUS, REF_HOLDER, NS + "refFareProduct"}
    status = out["attrs"][CARD_STATUS][0]
    assert status == {"type": "Property", "value": PSEUDO("active")}  # sub-attribute dropped
    holder = out["attrs"][REF_HOLDER][0]
    assert holder["object"] == PSEUDONYM_URN + PSEUDO("urn:ngsi-ld:Person:ana")
    assert holder["observedAt"] == "2026-11-23T10:00:00.000Z"
    assert out["attrs"][NS + "refFareProduct"] == entity["attrs"][NS + "refFareProduct"]
    assert out["id"] == entity["id"] and out["type"] == entity["type"]


def test_apply_passes_an_unfiltered_entity_through_and_refuses_a_denied_decision() -> None:
    p = policy_of(rule("any", types=["*"], purposes=["work"]), unclassified="special")
    d = decide(p, CLERK, "read", Resource("", (CARD,)), "work")
    entity = card_entity()
    assert apply_decision(d, entity, PSEUDO) is entity
    denied = decide(p, CLERK, "read", Resource("", (CARD,)), "fun")
    with pytest.raises(ValueError):
        apply_decision(denied, entity, PSEUDO)


def test_every_value_kind_has_a_pseudonymous_form() -> None:
    p = policy_of(rule("p", "pseudonymise", types=["*"], classes=["none", "pseudonymous"]),
                  unclassified="none")
    d = decide(p, CLERK, "read", Resource("", ("https://example.org/Thing",)))
    kinds = {
        "a": {"type": "Property", "value": {"k": [1, 2]}},
        "b": {"type": "ListRelationship", "objectList": ["urn:x:1", "urn:x:2"]},
        "c": {"type": "LanguageProperty", "languageMap": {"ro": "Ana"}},
        "d": {"type": "VocabProperty", "vocab": "https://example.org/v"},
        "e": {"type": "JsonProperty", "json": {"any": True}},
        "f": {"type": "ListProperty", "valueList": ["x", 2]},
        "g": {"type": "Relationship", "object": ["urn:x:1", "urn:x:3"]},
    }
    out = apply_decision(d, {"id": "urn:x", "type": ["https://example.org/Thing"],
                             "attrs": {f"https://example.org/{k}": [v]
                                       for k, v in kinds.items()}}, PSEUDO)["attrs"]
    flat = str(out)
    for secret in ("Ana", "urn:x:2", "https://example.org/v", "'any'", "'x'"):
        assert secret not in flat, secret
    assert out["https://example.org/b"][0]["objectList"][1].startswith(PSEUDONYM_URN)
    assert out["https://example.org/c"][0]["languageMap"].keys() == {"@none"}
    assert len(out["https://example.org/f"][0]["valueList"]) == 2


# -- discovery -----------------------------------------------------------------------------------

def test_discovery_names_only_readable_types_and_unmasked_attributes() -> None:
    p = policy_of(rule("cards", classes=["none", "pseudonymous"]),
                  rule("mask-status", "mask", attributes=["cardStatus"]))
    assert readable_types(p, CLERK, [CARD, LIGHT, VALIDATION]) == [CARD]
    names = visible_attributes(p, CLERK, CARD, [CARD_STATUS, REF_HOLDER, NS + "refFareProduct"])
    assert names == [NS + "refFareProduct"]
    assert visible_attributes(p, CLERK, LIGHT, [CARD_STATUS]) == []


def test_queries_may_not_filter_on_what_is_not_seen_in_clear() -> None:
    from security.policy import unfilterable

    p = policy_of(rule("base", classes=["none", "pseudonymous"]),
                  rule("status", "pseudonymise", attributes=["cardStatus"]))
    d = decide(p, CLERK, "read", Resource("", (CARD,)), "work")
    fare = NS + "refFareProduct"
    assert unfilterable(d, [fare, CARD_STATUS, REF_HOLDER]) == [CARD_STATUS, REF_HOLDER]
