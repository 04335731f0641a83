"""Property tests: random policies x principals x purposes on the real enforcing broker. For each
case, what every read path (by id, by type, POST query, discovery, notifications) returns in
every format holds no attribute the pure decision (security.policy.decide, on the very policy
the broker compiled) masks or denies, and no pseudonymised value equals its clear value.

One broker per test function: each example rewrites the rules file of its CETATE_POLICY_DIR and
polls the broker's own reloader once (its 2 s timer would make examples slow)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, Phase, given, reject, settings
from hypothesis import strategies as st

from broker.app import create_app
from broker.http.access import ACCESS
from broker.settings import Settings
from security.identity.principal import PUBLIC, Principal
from security.policy.decide import decide
from security.policy.load import PolicyError, PolicyReloader, load_policy
from security.policy.model import Decision, Policy, Resource
from tests.broker.subscriptions.conftest import Receiver, serving_receiver
from tests.security.enforcement.conftest import CETATE, City
from tests.security.identity.kit import rsa_key

VOCABULARY = Path(__file__).parents[3] / "contracts" / "policies" / "00-vocabulary.yaml"
ROLES = ["public", "admin", "adapter", "city-it", "tax-officer", "transport-operator", "auditor",
         "dpo"]
PURPOSES = ["tax-collection", "transport-operations", "parking-enforcement", "city-operations",
            "open-data", "audit"]
TYPES = ["TicketValidation", "TransitCard", "TaxObligation"]
EFFECTS = ["allow", "deny", "mask", "pseudonymise"]
CLASSES = ["none", "pseudonymous", "personal", "special"]
ATTRIBUTES = ["validationResult", "refTransitCard", "riderCategory", "amountCharged", "direction",
              "cardStatus", "balance", "fareMediaType", "name", "obligationCategory",
              "amountDue", "refTaxpayer", "paymentStatus", "owner"]
FORMATS: list[tuple[dict[str, str], dict[str, str]]] = [
    ({}, {}), ({"options": "concise"}, {}), ({"options": "keyValues"}, {}),
    ({}, {"Accept": "application/geo+json"})]


def prop(value: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value}


def rel(uri: str) -> dict[str, Any]:
    return {"type": "Relationship", "object": uri}


# (tenant, entity): every attribute's clear value is distinct, so a leak is recognisable.
ENTITIES: list[tuple[str, dict[str, Any]]] = [
    ("", {"id": "urn:ngsi-ld:TicketValidation:1", "type": "TicketValidation",
          "validationResult": prop("accepted"), "refTransitCard": rel("urn:ngsi-ld:TransitCard:77"),
          "riderCategory": prop("student"), "amountCharged": prop(2.5),
          "direction": prop("inbound"), "owner": rel("urn:ngsi-ld:Person:ana")}),
    ("", {"id": "urn:ngsi-ld:TransitCard:77", "type": "TransitCard",
          "cardStatus": prop("active"), "balance": prop(41.25), "fareMediaType": prop("card"),
          "name": prop("Ana Pop")}),
    ("tax", {"id": "urn:ngsi-ld:TaxObligation:1", "type": "TaxObligation",
             "obligationCategory": prop("building"), "amountDue": prop(1200.5),
             "refTaxpayer": rel("urn:ngsi-ld:Taxpayer:9"), "paymentStatus": prop("due")}),
]
CASES = {"reads": 0, "notifications": 0, "notified": 0, "delivered": 0,
         "granted": 0, "bodies": 0, "pseudonyms": 0}


def clear(instance: dict[str, Any]) -> Any:
    return instance.get("value", instance.get("object"))


def rule() -> st.SearchStrategy[dict[str, Any]]:
    scope: st.SearchStrategy[dict[str, Any]] = st.one_of(st.just({}),
                      st.fixed_dictionaries({"classes": st.lists(st.sampled_from(CLASSES),
                                                                 min_size=1, unique=True)}),
                      st.fixed_dictionaries({"attributes": st.lists(
                          st.sampled_from(ATTRIBUTES), min_size=1, max_size=4, unique=True)}))
    optional = st.fixed_dictionaries({}, optional={
        "tenants": st.lists(st.sampled_from(["@default", "tax"]), min_size=1, unique=True),
        "purposes": st.lists(st.sampled_from(PURPOSES), min_size=1, max_size=2, unique=True)})
    return st.builds(
        lambda roles, actions, types, effect, extra, sc: {
            "roles": roles, "actions": actions, "types": types, "effect": effect, **extra, **sc},
        st.lists(st.sampled_from(["*", *ROLES]), min_size=1, max_size=3, unique=True),
        st.sampled_from([["read", "subscribe"], ["*"], ["read"]]),
        st.one_of(st.just(["*"]), st.lists(st.sampled_from(TYPES), min_size=1, unique=True)),
        st.sampled_from(EFFECTS), optional, scope)


RULES = st.lists(rule(), min_size=1, max_size=4)


@st.composite
def asker(draw: st.DrawFn) -> tuple[tuple[str, ...], list[str] | None, str | None]:
    """(roles, the token's purposes claim, the Cetate-Purpose header); no roles: anonymous."""
    roles = tuple(draw(st.lists(st.sampled_from(ROLES[1:]), max_size=2, unique=True)))
    claimed = draw(st.none() | st.lists(st.sampled_from(PURPOSES), max_size=2, unique=True))
    purpose = draw(st.none() | st.sampled_from(PURPOSES))
    return roles, claimed, purpose


@dataclass
class Harness:
    city: City
    live: Path
    staging: Path
    reloader: PolicyReloader
    stamp: int = 0

    def install(self, rules: list[dict[str, Any]]) -> Policy:
        """Put `rules` in force in the broker; reject (Hypothesis) a set that does not load."""
        document = {"description": "generated", "rules": [
            {"id": f"r{i}", "description": "generated", **r} for i, r in enumerate(rules)]}
        text = yaml.safe_dump(document)
        (self.staging / "10-rules.yaml").write_text(text)
        try:
            expected = load_policy(self.staging)
        except PolicyError:
            reject()
        target = self.live / "10-rules.yaml"
        target.write_text(text)
        self.stamp += 1_000_000  # distinct mtimes, whatever the clock's resolution
        os.utime(target, ns=(self.stamp, self.stamp))
        self.reloader.check()  # the background poll may have won the race: both load the file
        assert self.reloader.last_error is None
        assert list(self.reloader.policy.rules) == list(expected.rules)
        return self.reloader.policy

    def principal(self, roles: tuple[str, ...], claimed: list[str] | None) -> Principal:
        if not roles:
            return PUBLIC
        return Principal(subject="user-1", roles=frozenset(roles), kind="token",
                         purposes=None if claimed is None else frozenset(claimed))

    def headers(self, roles: tuple[str, ...], claimed: list[str] | None, purpose: str | None,
                tenant: str) -> dict[str, str]:
        token = self.city.token(*roles, purposes=claimed) if roles else {}
        return City.ask(token, tenant=tenant or None, purpose=purpose)


@pytest.fixture
async def harness(enforced_settings: Settings, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    live, staging = tmp_path / "policies", tmp_path / "staging"
    for directory in (live, staging):
        directory.mkdir()
        shutil.copy(VOCABULARY, directory / VOCABULARY.name)
    # The seeding admin may create anything; examples replace this file.
    admin = [{"roles": ["admin"], "actions": ["*"], "types": ["*"], "effect": "allow"}]
    (live / "10-rules.yaml").write_text(yaml.safe_dump({"description": "seed", "rules": [
        {"id": "seed", "description": "seed", **admin[0]}]}))
    monkeypatch.setenv("CETATE_POLICY_DIR", str(live))
    app = create_app(enforced_settings)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}",
                                     timeout=10) as http:
            city = City(http, rsa_key(), server)
            for tenant, entity in ENTITIES:
                await city.create(entity, tenant=tenant or None)
            reloader = app[ACCESS].policies.reloader
            assert reloader is not None
            yield Harness(city, live, staging, reloader)
    finally:
        await server.close()


def names_of(policy: Policy, type_name: str) -> dict[str, str]:
    """Short attribute name -> IRI, for a type of the contracts."""
    (info,) = [i for i in policy.types.values() if i.name == type_name]
    return {short: iri for iri, short in info.names.items()}


def check_entity(body: dict[str, Any], decision: Decision, policy: Policy, where: str) -> None:
    """No masked attribute, no pseudonymised value in clear, in any of the four formats."""
    assert decision.allowed, (where, decision.reason, body)
    CASES["bodies"] += 1
    (_, source), = [(t, e) for t, e in ENTITIES if e["id"] == body["id"]]
    members = body.get("properties", body) if body.get("type") == "Feature" else body
    iris = names_of(policy, source["type"])
    for name, shown in members.items():
        if name in ("id", "type", "@context", "location"):
            continue
        effect = decision.effect(iris[name]) if name in iris else decision.unclassified
        assert effect in ("allow", "pseudonymise"), (where, name, effect, body)
        if effect == "pseudonymise":
            CASES["pseudonyms"] += 1
            value = shown.get("value", shown.get("object")) if isinstance(shown, dict) else shown
            assert value != clear(source[name]), (where, name, body)
            assert str(clear(source[name])) not in json.dumps(shown), (where, name, body)


def decision_for(policy: Policy, principal: Principal, type_name: str, tenant: str,
                 purpose: str | None, action: str = "read") -> Decision:
    (iri,) = [t for t, i in policy.types.items() if i.name == type_name]
    return decide(policy, principal, action, Resource.entity([iri], tenant), purpose)


# No shrinking: a broker round per example makes it slow; the failing case is printed whole.
@settings(max_examples=50, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
@given(rules=RULES, who=asker())
async def test_reads_and_discovery_disclose_nothing_the_decision_hides(
        harness: Harness, rules: list[dict[str, Any]],
        who: tuple[tuple[str, ...], list[str] | None, str | None]) -> None:
    policy = harness.install(rules)
    roles, claimed, purpose = who
    principal = harness.principal(roles, claimed)
    http = harness.city.http
    CASES["reads"] += 1
    for tenant, entity in ENTITIES:
        headers = harness.headers(roles, claimed, purpose, tenant)
        decision = decision_for(policy, principal, entity["type"], tenant, purpose)
        CASES["granted"] += decision.allowed
        for params, accept in FORMATS:
            ask = {**headers, **accept}
            one = await http.get(f"/ngsi-ld/v1/entities/{entity['id']}", params=params,
                                 headers=ask)
            assert one.status_code in (200, 400, 403, 404), one.text
            if one.status_code == 200:
                check_entity(one.json(), decision, policy, f"by id {params}{accept}")
            listed = await http.get("/ngsi-ld/v1/entities",
                                    params={**params, "type": entity["type"]}, headers=ask)
            queried = await http.post("/ngsi-ld/v1/entityOperations/query", params=params,
                                      json={"type": "Query", "entities": [
                                          {"type": entity["type"]}]}, headers=ask)
            for answer, where in ((listed, "by type"), (queried, "POST query")):
                assert answer.status_code in (200, 400, 403, 404), answer.text
                if answer.status_code != 200:
                    continue
                found = answer.json()
                found = found["features"] if isinstance(found, dict) else found
                for body in found:
                    check_entity(body, decision, policy, f"{where} {params}{accept}")
        types = await http.get("/ngsi-ld/v1/types", params={"details": "true"}, headers=headers)
        if types.status_code == 200:
            for listed_type in types.json():
                if listed_type["typeName"] != entity["type"]:
                    continue
                assert decision.allowed, (listed_type, decision.reason)
                iris = names_of(policy, entity["type"])
                for name in listed_type["attributeNames"]:
                    effect = decision.effect(iris[name]) if name in iris else \
                        decision.unclassified
                    assert effect in ("allow", "pseudonymise"), ("types", name, effect)
        # /attributes: every name listed is one some seeded entity of this tenant shows.
        shown: set[str] = set()
        for other_tenant, other in ENTITIES:
            if other_tenant != tenant:
                continue
            seen = decision_for(policy, principal, other["type"], tenant, purpose)
            if seen.allowed:
                iris = names_of(policy, other["type"])
                shown |= {n for n in other if n in iris and seen.effect(iris[n]) in (
                    "allow", "pseudonymise")}
        attributes = await http.get("/ngsi-ld/v1/attributes", headers=headers)
        if attributes.status_code == 200:
            listed_names = set(attributes.json()["attributeList"]) - {"location"}
            assert listed_names <= shown, (listed_names - shown, rules, who)


@settings(max_examples=15, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
@given(rules=RULES, who=asker())
async def test_notifications_disclose_nothing_the_decision_hides(
        harness: Harness, rules: list[dict[str, Any]],
        who: tuple[tuple[str, ...], list[str] | None, str | None]) -> None:
    roles, claimed, purpose = who
    tenant, entity = ENTITIES[0]
    async with serving_receiver() as receiver:
        # The subscription is made under a policy letting the principal subscribe, then the
        # random policy decides what each notification carries.
        harness.install([{"roles": ["*"], "actions": ["subscribe"], "types": ["*"],
                          "effect": "allow"}])
        body = {"type": "Subscription", "entities": [{"type": entity["type"]}],
                "notification": {"endpoint": {"uri": receiver.url,
                                              "accept": "application/json"}},
                "@context": CETATE}
        if purpose:
            body["purpose"] = purpose
        made = await harness.city.http.post(
            "/ngsi-ld/v1/subscriptions", content=json.dumps(body),
            headers={**{k: v for k, v in harness.headers(roles, claimed, None, tenant).items()
                        if k != "Link"}, "Content-Type": "application/ld+json"})
        if made.status_code != 201:
            reject()
        harness.install(rules)
        CASES["notifications"] += 1
        principal = harness.principal(roles, claimed)
        policy, sent = await notified(harness, receiver, entity)
        # Decided on the policy in force at delivery (the random rules plus the admin's write).
        decision = decision_for(policy, principal, entity["type"], tenant, purpose, "subscribe")
        for notification in sent:
            for data in notification["data"]:
                CASES["delivered"] += 1
                check_entity(data, decision, policy, "notification")
        await harness.city.http.delete(made.headers["Location"], headers=City.ask(
            harness.city.token("admin")))


async def notified(harness: Harness, receiver: Receiver,
                   entity: dict[str, Any]) -> tuple[Policy, list[dict[str, Any]]]:
    """Update the entity (as admin, under a policy that adds the admin's write) and collect
    what the receiver gets; an owner who may not see the entity gets nothing."""
    admin = {**harness.city.token("admin", sub="admin-1"), "Content-Type": "application/ld+json"}
    harness_rules = list(yaml.safe_load((harness.live / "10-rules.yaml").read_text())["rules"])
    write = {"id": "admin-write", "description": "write", "roles": ["admin"],
             "actions": ["*"], "types": ["*"], "effect": "allow"}
    plain = [{k: v for k, v in r.items() if k not in ("id", "description")}
             for r in harness_rules] + [{k: v for k, v in write.items()
                                         if k not in ("id", "description")}]
    policy = harness.install(plain)
    answer = await harness.city.http.patch(
        f"/ngsi-ld/v1/entities/{entity['id']}/attrs",
        content=json.dumps({"direction": prop(f"d{CASES['notifications']}"), "@context": CETATE}),
        headers=admin)
    if answer.status_code != 204:  # a random deny may stop the admin too: nothing sent
        assert answer.status_code in (403, 404), answer.text
        return policy, []
    CASES["notified"] += 1
    with contextlib.suppress(TimeoutError):
        await receiver.wait_for(1, timeout=1.5)
    return policy, [r.body for r in receiver.received]


def test_the_cases_were_run() -> None:
    """Run last (file order): how many random cases ran and reached the broker."""
    print(f"random policy cases: {CASES}")
    if CASES["reads"]:
        assert CASES["reads"] >= 20 and CASES["granted"] > 0 and CASES["bodies"] > 0, CASES
