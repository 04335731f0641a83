"""The delivery-time filter (broker/http/access.py screen_notifications), pure: every role ×
purpose as a subscription's owner, drafts of every contract type's entity created, updated in
one attribute, and deleted; nothing hidden survives, and nothing is owed when nothing is seen."""

from __future__ import annotations

import itertools
from dataclasses import replace

from broker.http.access import (
    OWNER,
    Access,
    AccessSettings,
    principal_record,
    screen_notifications,
)
from broker.ld.termmap import CORE_TERMS
from broker.store.protocol import Entity, SubscriptionRow
from broker.subscriptions.match import Change
from broker.subscriptions.outbox import Draft, DraftItem
from broker.subscriptions.subscription import DeliveryState, parse_subscription
from security.identity.principal import Principal
from security.policy.decide import decide
from security.policy.model import Resource
from security.policy.service import PolicyService
from tests.security.enforcement.test_grid import ROLES, TYPES, sentinel

NOW = "2026-12-01T22:00:00Z"


def internal(type_iri: str, name: str, names: dict[str, str], tag: str = "") -> Entity:
    return {"id": f"urn:ngsi-ld:{name}:1", "type": [type_iri],
            "attrs": {iri: [{"type": "Property", "value": sentinel(name, short) + tag}]
                      for iri, short in names.items() if short not in ("id", "type")}}


def test_nothing_hidden_is_ever_notified() -> None:
    access = Access(AccessSettings("on"), PolicyService(True, pseudonymise=lambda v: "p" * 8))
    policy = access.policies.policy
    assert policy is not None
    screen = screen_notifications(access)
    plain = parse_subscription({"type": "Subscription", "entities": [{"type": "T"}],
                                "notification": {"endpoint": {"uri": "http://127.0.0.1/n"}}},
                               CORE_TERMS, NOW)
    cases = 0
    for roles, purpose in itertools.product(ROLES, (None, *sorted(policy.purposes))):
        owner = (Principal("o", frozenset(roles), kind="token") if roles
                 else Principal("public", frozenset({"public"})))
        row = SubscriptionRow("", "urn:ngsi-ld:Subscription:1",
                              {OWNER: principal_record(owner)}, DeliveryState())
        sub = replace(plain, purpose=purpose)
        for name in TYPES:
            iri = policy.type_iri(name)
            names = dict(policy.types[iri].names)
            before, after = internal(iri, name, names), internal(iri, name, names, "-new")
            first = next(iter(names))
            after = {**before, "attrs": {**before["attrs"], first: after["attrs"][first]}}
            items = (DraftItem("entityCreated", Change.between("", None, before, NOW)),
                     DraftItem("attributeUpdated", Change.between("", before, after, NOW)),
                     DraftItem("entityDeleted", Change.between("", after, None, NOW)))
            out = screen(row, sub, Draft("n", row.id, "", items))
            decision = decide(policy, owner, "subscribe", Resource.entity([iri]), purpose)
            cases += 1
            if not decision.allowed:
                assert out is None
                continue
            assert out is not None
            text = repr(out.items)
            for attr_iri, short in names.items():
                if short not in ("id", "type") and decision.effect(attr_iri) != "allow":
                    assert sentinel(name, short) not in text, (roles, purpose, short)
            kept = [i.trigger for i in out.items]
            assert kept[0] == "entityCreated" and kept[-1] == "entityDeleted"
            assert ("attributeUpdated" in kept) == (decision.effect(first) != "mask")
    assert cases == len(ROLES) * (len(policy.purposes) + 1) * len(TYPES)
