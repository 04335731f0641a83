"""From a write's changes to outbox rows (what the store's write path calls), and from a
recorded draft to the message sent. Pure."""

from __future__ import annotations

from typing import Any

import orjson

from broker.entities.parse import parse_entity
from broker.ld.termmap import compile_context
from broker.store.protocol import EntityWrite, SubscriptionRow
from broker.subscriptions.index import SubscriptionIndex
from broker.subscriptions.match import Change
from broker.subscriptions.outbox import Draft, DraftItem, PlannedWrite
from broker.subscriptions.plan import Planner, plan_changes, plan_periodic, render_draft
from broker.subscriptions.schedule import epoch
from broker.subscriptions.subscription import (
    DeliveryState,
    Subscription,
    parse_subscription,
    to_record,
)

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


def draft_of(planned: PlannedWrite, row: int = 0) -> Draft:
    n = planned.notifications[row]
    return Draft(n.notification_id, n.subscription_id, n.tenant,
                 tuple(DraftItem(t, planned.changes[i]) for t, i in n.items))


def test_one_notification_per_subscription_and_write() -> None:
    free = sub("urn:ngsi-ld:Subscription:free", q="availableSpotNumber>0")
    full = sub("urn:ngsi-ld:Subscription:full", q="availableSpotNumber==0")
    changes = [Change.between("craiova", None, parking(n, n % 3), T0) for n in range(9)]
    planned = plan_changes(SubscriptionIndex([free, full]), changes)
    assert planned is not None
    rows = planned.notifications
    assert [r.subscription_id for r in rows] == [free.id, full.id]
    assert [len(r.items) for r in rows] == [6, 3]
    assert len(planned.changes) == 9  # each change kept once, whoever it fired
    assert rows[0].items[0][0] == "attributeCreated"
    assert rows[0].notification_id != rows[1].notification_id
    assert rows[0].endpoint_key == "http://app.example.org:80"
    out = render_draft(free, draft_of(planned), TERMS, now=NOW + 1)
    body = orjson.loads(out.payload)
    assert len(body["data"]) == 6 and body["notifiedAt"] == "2026-12-01T10:00:01.000Z"
    assert body["id"] == rows[0].notification_id and body["subscriptionId"] == free.id
    assert dict(out.headers)["NGSILD-Tenant"] == "craiova"


def test_unchanged_entities_are_not_kept() -> None:
    free = sub("urn:ngsi-ld:Subscription:free", q="availableSpotNumber>5")
    changes = [Change.between("craiova", None, parking(n, n), T0) for n in range(8)]
    planned = plan_changes(SubscriptionIndex([free]), changes)
    assert planned is not None
    assert [c.after["id"] for c in planned.changes if c.after] == [
        "urn:ngsi-ld:OffStreetParking:p6", "urn:ngsi-ld:OffStreetParking:p7"]
    assert planned.notifications[0].items == (("attributeCreated", 0), ("attributeCreated", 1))


def test_no_match_no_row_and_other_tenants_ignored() -> None:
    s = sub("urn:ngsi-ld:Subscription:s")
    assert plan_changes(SubscriptionIndex([s]),
                        [Change.between("sibiu", None, parking(1, 1), T0)]) is None


def test_throttling_travels_to_the_engine() -> None:
    s = sub("urn:ngsi-ld:Subscription:s", throttling=60)
    planned = plan_changes(SubscriptionIndex([s]),
                           [Change.between("craiova", None, parking(1, 1), T0)])
    assert planned is not None and planned.notifications[0].throttling == 60


def test_show_changes_rendered_from_the_kept_change() -> None:
    s = sub("urn:ngsi-ld:Subscription:s",
            notification={"showChanges": True,
                          "endpoint": {"uri": "http://app.example.org/parking"}})
    before, after = parking(1, 3), parking(1, 2)
    planned = plan_changes(SubscriptionIndex([s]), [Change.between("craiova", before, after,
                                                                   T0)])
    assert planned is not None
    body = orjson.loads(render_draft(s, draft_of(planned), TERMS, now=NOW).payload)
    assert body["data"][0]["availableSpotNumber"]["previousValue"] == 3


def test_periodic() -> None:
    s = sub("urn:ngsi-ld:Subscription:p", timeInterval=300, q="availableSpotNumber>0",
            notification={"format": "keyValues",
                          "endpoint": {"uri": "http://app.example.org/parking"}})
    planned = plan_periodic(s, [parking(1, 0), parking(2, 7)], NOW)
    assert planned is not None
    body = orjson.loads(render_draft(s, draft_of(planned), TERMS, now=NOW).payload)
    assert body["data"] == [{"id": "urn:ngsi-ld:OffStreetParking:p2",
                             "type": "OffStreetParking", "availableSpotNumber": 7}]
    assert plan_periodic(s, [parking(1, 0)], NOW) is None


def test_planner_reloads_by_version_and_splits_large_writes() -> None:
    planner = Planner()
    assert planner.stale(0)
    assert planner.plan([EntityWrite("craiova", None, parking(1, 1))], NOW) is None
    s = sub("urn:ngsi-ld:Subscription:s")
    planner.load(3, [SubscriptionRow("craiova", s.id, to_record(s), DeliveryState())])
    assert not planner.stale(3) and planner.stale(4)
    writes = [EntityWrite("craiova", None, parking(n, n)) for n in range(1001)]
    planned = planner.plan(writes, NOW)
    assert planned is not None
    assert [len(n.items) for n in planned.notifications] == [1000, 1]
    assert planner.planned == 2


def test_planner_skips_an_unreadable_record() -> None:
    planner = Planner()
    good = sub("urn:ngsi-ld:Subscription:good")
    planner.load(1, [SubscriptionRow("craiova", "urn:x:bad", {"version": 1}, DeliveryState()),
                     SubscriptionRow("craiova", good.id, to_record(good), DeliveryState())])
    planned = planner.plan([EntityWrite("craiova", None, parking(1, 1))], NOW)
    assert planned is not None and planned.notifications[0].subscription_id == good.id


def test_same_subscription_id_in_two_tenants_stays_apart() -> None:
    body = {"type": "Subscription", "id": "urn:ngsi-ld:Subscription:same",
            "entities": [{"type": "OffStreetParking"}],
            "notification": {"endpoint": {"uri": "http://a.example.org/n"}}}
    a = parse_subscription(body, TERMS, T0, tenant="craiova")
    b = parse_subscription({**body, "notification": {"endpoint": {
        "uri": "http://b.example.org/n"}}}, TERMS, T0, tenant="sibiu")
    changes = [Change.between("craiova", None, parking(1, 1), T0),
               Change.between("sibiu", None, parking(2, 2), T0)]
    planned = plan_changes(SubscriptionIndex([a, b]), changes)
    assert planned is not None
    rows = {(n.tenant, n.endpoint_key): n.items for n in planned.notifications}
    assert rows == {("craiova", "http://a.example.org:80"): (("attributeCreated", 0),),
                    ("sibiu", "http://b.example.org:80"): (("attributeCreated", 1),)}


def test_subscriptions_on_entity_ids_are_candidates_for_those_entities_only() -> None:
    mine = sub("urn:ngsi-ld:Subscription:mine",
               entities=[{"type": "OffStreetParking", "id": "urn:ngsi-ld:OffStreetParking:p1"}])
    index = SubscriptionIndex([mine])
    assert [s.id for s in index.candidates(Change.between("craiova", None, parking(1, 1), T0))
            ] == [mine.id]
    assert list(index.candidates(Change.between("craiova", None, parking(2, 1), T0))) == []
