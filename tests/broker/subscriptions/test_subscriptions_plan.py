"""From a write's changes to outbox rows (what the store's write path will call). Pure."""

from __future__ import annotations

from typing import Any

import orjson

from broker.entities.parse import parse_entity
from broker.ld.termmap import compile_context
from broker.subscriptions.index import SubscriptionIndex
from broker.subscriptions.match import Change
from broker.subscriptions.plan import plan_notifications, plan_periodic
from broker.subscriptions.schedule import epoch
from broker.subscriptions.subscription import Subscription, parse_subscription

T0 = "2026-12-01T10:00:00.000Z"
NOW = epoch(T0)
EX = "https://example.org/city/"
TERMS = compile_context([{"OffStreetParking": EX + "OffStreetParking",
                          "availableSpotNumber": EX + "availableSpotNumber"}])


def parking(n: int, spots: int) -> dict[str, Any]:
    return parse_entity({"id": f"urn:ngsi-ld:OffStreetParking:p{n}", "type": "OffStreetParking",
                         "availableSpotNumber": {"type": "Property", "value": spots}},
                        TERMS, T0)


def sub(sub_id: str, **members: Any) -> Subscription:
    body = {"type": "Subscription", "id": sub_id, "entities": [{"type": "OffStreetParking"}],
            "notification": {"endpoint": {"uri": "http://app.example.org/parking"}}, **members}
    return parse_subscription(body, TERMS, T0, tenant="craiova")


def test_one_notification_per_subscription_and_write() -> None:
    free = sub("urn:ngsi-ld:Subscription:free", q="availableSpotNumber>0")
    full = sub("urn:ngsi-ld:Subscription:full", q="availableSpotNumber==0")
    changes = [Change.between("craiova", None, parking(n, n % 3), T0) for n in range(9)]
    entries = plan_notifications([free, full], changes, now=NOW, terms=lambda s: TERMS)
    assert [e.outgoing.subscription_id for e in entries] == [free.id, full.id]
    bodies = [orjson.loads(e.outgoing.payload) for e in entries]
    assert len(bodies[0]["data"]) == 6 and len(bodies[1]["data"]) == 3
    assert bodies[0]["notifiedAt"] == T0 and entries[0].due == NOW
    assert entries[0].triggers == ("attributeCreated",) * 6
    assert bodies[0]["id"] != bodies[1]["id"]
    assert dict(entries[0].outgoing.headers)["NGSILD-Tenant"] == "craiova"


def test_no_match_no_row_and_other_tenants_ignored() -> None:
    s = sub("urn:ngsi-ld:Subscription:s")
    assert plan_notifications([s], [Change.between("sibiu", None, parking(1, 1), T0)],
                              now=NOW, terms=lambda _: TERMS) == []


def test_throttling_sets_due() -> None:
    s = sub("urn:ngsi-ld:Subscription:s", throttling=60)
    (entry,) = plan_notifications([s], [Change.between("craiova", None, parking(1, 1), T0)],
                                  now=NOW, terms=lambda _: TERMS,
                                  last_notified={s.id: NOW - 15})
    assert entry.due == NOW + 45


def test_periodic() -> None:
    s = sub("urn:ngsi-ld:Subscription:p", timeInterval=300, q="availableSpotNumber>0",
            notification={"format": "keyValues",
                          "endpoint": {"uri": "http://app.example.org/parking"}})
    entry = plan_periodic(s, [parking(1, 0), parking(2, 7)], now=NOW, terms=TERMS)
    assert entry is not None
    body = orjson.loads(entry.outgoing.payload)
    assert body["data"] == [{"id": "urn:ngsi-ld:OffStreetParking:p2",
                             "type": "OffStreetParking", "availableSpotNumber": 7}]
    assert plan_periodic(s, [parking(1, 0)], now=NOW, terms=TERMS) is None


def test_index_gives_the_same_rows() -> None:
    subs = [sub(f"urn:ngsi-ld:Subscription:{n}", q=f"availableSpotNumber>{n}") for n in range(5)]
    changes = [Change.between("craiova", None, parking(n, n), T0) for n in range(6)]
    ids = iter(range(1000))
    plain = plan_notifications(subs, changes, now=NOW, terms=lambda s: TERMS,
                               new_id=lambda: f"urn:ngsi-ld:Notification:{next(ids)}")
    ids = iter(range(1000))
    indexed = plan_notifications(SubscriptionIndex(subs), changes, now=NOW,
                                 terms=lambda s: TERMS,
                                 new_id=lambda: f"urn:ngsi-ld:Notification:{next(ids)}")
    assert indexed == plain and len(plain) == 5
