"""The subscription index never leaves out a subscription that fires (exhaustively over the
match tests' subscriptions and changes), and leaves out the ones that cannot."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from broker.subscriptions.index import SubscriptionIndex
from broker.subscriptions.match import Change, fires
from broker.subscriptions.subscription import Subscription, parse_subscription
from tests.broker.subscriptions.test_subscriptions_match import (
    ENDPOINT,
    T0,
    TERMS,
    created,
    deleted,
    entity,
    light,
    updated,
)

SELECTORS = [[{"type": "Streetlight"}], [{"type": "Lamp"}], [{"type": "Lamp,Streetlight"}],
             [{"type": "Lamp;Streetlight"}], [{"type": "Streetlight;Lamp"}],
             [{"type": "(Lamp|Streetlight);Public"}], [{"type": "Lamp"}, {"type": "Streetlight"}],
             None]
WATCHED = [None, ["powerState"], ["colour"], ["brightness", "colour"]]
TRIGGERS = [None, ["entityCreated"], ["entityDeleted"], ["attributeDeleted", "entityUpdated"]]


def subscriptions() -> list[Subscription]:
    subs = []
    for n, (selectors, watched, triggers) in enumerate(
            itertools.product(SELECTORS, WATCHED, TRIGGERS)):
        if selectors is None and watched is None:
            continue
        body: dict[str, Any] = {"type": "Subscription", "id": f"urn:ngsi-ld:Subscription:{n}",
                                "notification": {"endpoint": ENDPOINT}}
        for member, value in (("entities", selectors), ("watchedAttributes", watched),
                              ("notificationTrigger", triggers)):
            if value is not None:
                body[member] = value
        subs.append(parse_subscription(body, TERMS, T0))
    return subs


def retyped() -> Change:
    before = entity(light())
    after = entity(light(type=["Streetlight", "Public"]))
    return Change.between("", before, after, T0)


CHANGES = [created, deleted, retyped,
           lambda: updated(powerState={"type": "Property", "value": "fault"}),
           lambda: updated(brightness=None),
           lambda: updated(colour={"type": "Property", "value": "red"})]


@pytest.mark.parametrize("make", CHANGES)
def test_candidates_cover_every_firing_subscription(make: Any) -> None:
    subs = subscriptions()
    index = SubscriptionIndex(subs)
    change = make()
    firing = [s.id for s in subs if fires(s, change)]
    candidates = [s.id for s in index.candidates(change)]
    assert set(firing) <= set(candidates)
    assert firing == [i for i in candidates if i in set(firing)]  # order kept


def test_index_leaves_out_what_cannot_fire() -> None:
    lamp = parse_subscription({"type": "Subscription", "entities": [{"type": "Lamp"}],
                               "notification": {"endpoint": ENDPOINT}}, TERMS, T0)
    other_tenant = parse_subscription({"type": "Subscription",
                                       "entities": [{"type": "Streetlight"}],
                                       "notification": {"endpoint": ENDPOINT}}, TERMS, T0,
                                      tenant="sibiu")
    paused = parse_subscription({"type": "Subscription", "entities": [{"type": "Streetlight"}],
                                 "isActive": False, "notification": {"endpoint": ENDPOINT}},
                                TERMS, T0)
    periodic = parse_subscription({"type": "Subscription", "entities": [{"type": "Streetlight"}],
                                   "timeInterval": 60, "notification": {"endpoint": ENDPOINT}},
                                  TERMS, T0)
    colour = parse_subscription({"type": "Subscription", "watchedAttributes": ["colour"],
                                 "notification": {"endpoint": ENDPOINT}}, TERMS, T0)
    index = SubscriptionIndex([lamp, other_tenant, paused, periodic, colour])
    assert len(index) == 3
    assert list(index.candidates(created())) == []
