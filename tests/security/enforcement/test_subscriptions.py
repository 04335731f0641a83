"""Subscriptions under access control: `subscribe` on their types for their fixed purpose, owned
by their creator, and each notification filtered at delivery with the owner's principal."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.broker.subscriptions.conftest import serving_receiver
from tests.security.enforcement.conftest import CETATE, LIGHTING, City
from tests.security.enforcement.test_reads import DEBT, LAMP, TAP

SUBSCRIPTIONS = "/ngsi-ld/v1/subscriptions"


def subscription(url: str, *types: str, purpose: str | None = None,
                 **members: Any) -> dict[str, Any]:  # members: q=, watchedAttributes=...
    body: dict[str, Any] = {"type": "Subscription",
                            "notification": {"endpoint": {"uri": url,
                                                          "accept": "application/json"}},
                            "@context": CETATE, **members}
    if types:
        body["entities"] = [{"type": t} for t in types]
    if purpose:
        body["purpose"] = purpose
    return body


async def subscribe(city: City, headers: dict[str, str], body: dict[str, Any],
                    tenant: str | None = None, status: int = 201) -> str:
    headers = {**headers, "Content-Type": "application/ld+json"}
    if tenant:
        headers["NGSILD-Tenant"] = tenant
    answer = await city.http.post(SUBSCRIPTIONS, content=json.dumps(body), headers=headers)
    assert answer.status_code == status, answer.text
    return answer.headers.get("Location", "").rsplit("/", 1)[-1]


async def test_a_notification_carries_only_what_its_owner_may_read(city: City) -> None:
    async with serving_receiver() as receiver:
        await subscribe(city, city.token("city-it"), subscription(receiver.url,
                                                                  "TaxObligation"), "tax")
        await city.create(DEBT, tenant="tax")
        await receiver.wait_for(1)
    (entity,) = receiver.received[0].body["data"]
    assert entity["id"] == DEBT["id"]
    assert "obligationCategory" in json.dumps(entity)
    assert "amountDue" not in json.dumps(entity) and "1200.5" not in json.dumps(entity)


async def test_entities_the_owner_may_not_see_are_dropped_at_delivery(city: City) -> None:
    async with serving_receiver() as receiver:
        # Public may subscribe by attribute (no type named); it is notified of lighting only.
        body = subscription(receiver.url, watchedAttributes=["validationResult", "status"])
        await subscribe(city, {}, {**body, "@context": [CETATE, LIGHTING]})
        await city.create(TAP)
        await city.create(LAMP, context=LIGHTING)
        await receiver.wait_for(1)
    assert [e["id"] for r in receiver.received for e in r.body["data"]] == [LAMP["id"]]
    assert "Person:ana" not in json.dumps(receiver.received[0].body)


async def test_the_purpose_is_fixed_granted_and_decides_delivery(city: City) -> None:
    operator = city.token("transport-operator", sub="rat", purposes=["transport-operations"])
    async with serving_receiver() as receiver:
        await subscribe(city, operator, subscription(receiver.url, "TicketValidation",
                                                     purpose="tax-collection"), status=403)
        await subscribe(city, city.token("transport-operator"),
                        subscription(receiver.url, "TicketValidation"), status=403)
        sub_id = await subscribe(city, operator, subscription(
            receiver.url, "TicketValidation", purpose="transport-operations"))
        shown = await city.http.get(f"{SUBSCRIPTIONS}/{sub_id}", headers=City.ask(operator))
        assert shown.json()["purpose"] == "transport-operations"
        patched = await city.http.patch(f"{SUBSCRIPTIONS}/{sub_id}",
                                        json={"purpose": "open-data"}, headers=operator)
        assert patched.status_code == 400
        await city.create(TAP)
        await receiver.wait_for(1)
    (entity,) = receiver.received[0].body["data"]
    assert entity["refTransitCard"]["object"].startswith("urn:ngsi-ld:Pseudonym:")
    assert "riderCategory" not in entity and "student" not in json.dumps(entity)


async def test_public_may_not_subscribe_to_ticketing(city: City) -> None:
    answer = await city.http.post(SUBSCRIPTIONS, content=json.dumps(
        subscription("http://127.0.0.1:9/x", "TicketValidation")),
        headers={"Content-Type": "application/ld+json"})
    assert answer.status_code == 403 and answer.json()["type"].endswith("Forbidden")


async def test_a_principal_sees_and_manages_only_its_own_subscriptions(city: City) -> None:
    mine, theirs = city.token("city-it", sub="ana"), city.token("city-it", sub="ion")
    sub_id = await subscribe(city, mine, subscription("http://127.0.0.1:9/x", "TicketValidation"))
    path = f"{SUBSCRIPTIONS}/{sub_id}"
    assert (await city.http.get(path, headers=mine)).status_code == 200
    assert (await city.http.get(path, headers=theirs)).status_code == 404
    assert (await city.http.patch(path, json={"description": "x"}, headers=theirs)
            ).status_code == 404
    assert (await city.http.delete(path, headers=theirs)).status_code == 404
    listed = await city.http.get(SUBSCRIPTIONS, params={"count": "true"}, headers=theirs)
    assert listed.json() == [] and listed.headers["NGSILD-Results-Count"] == "0"
    assert [s["id"] for s in (await city.http.get(SUBSCRIPTIONS, headers=mine)).json()] == \
        [sub_id]
    admin = city.token("admin")
    assert (await city.http.get(path, headers=admin)).status_code == 200
    assert (await city.http.patch(path, json={"description": "x"}, headers=mine)
            ).status_code == 204
    assert (await city.http.get(path, headers=mine)).json()["description"] == "x"
    assert (await city.http.delete(path, headers=mine)).status_code == 204


async def test_no_notification_tells_of_a_masked_attribute(city: City) -> None:
    async with serving_receiver() as probing, serving_receiver() as witness:
        lighting = {"@context": LIGHTING}
        for body in (subscription(probing.url, "Streetlight", q='owner=="urn:ngsi-ld:Person:ana"'),
                     subscription(probing.url, "Streetlight", watchedAttributes=["owner"]),
                     subscription(witness.url, "Streetlight",
                                  watchedAttributes=["owner", "status"])):
            await subscribe(city, {}, {**body, **lighting})
        await city.create(LAMP, context=LIGHTING)
        owner = {"owner": {"type": "Property", "value": "urn:ngsi-ld:Person:ion"}}
        status = {"status": {"type": "Property", "value": "broken"}}
        admin = {**city.token("admin"), "Content-Type": "application/ld+json"}
        for change in (owner, status):
            answer = await city.http.patch(f"/ngsi-ld/v1/entities/{LAMP['id']}/attrs",
                                           content=json.dumps({**change, "@context": LIGHTING}),
                                           headers=admin)
            assert answer.status_code == 204
        await witness.wait_for(2)  # the creation and the status change, not the owner change
        # The probing subscriptions' rows were written before the witness's last one.
        assert [r.body["data"][0].get("status", {}).get("value") for r in witness.received] \
            == ["ok", "broken"]
    assert probing.received == []


async def _notification_entries(city: City) -> list[dict[str, Any]]:
    from broker.http.audit import AUDIT
    from security.audit.entry import decode
    from security.audit.log import EntryQuery

    log = city.server.app[AUDIT]
    await log.flush()
    return [decode(e) for _, e in await log.query(EntryQuery(action="notification.send",
                                                             limit=100))]


async def test_a_notifications_audit_entry_names_its_owner_purpose_and_what_it_told(
        city: City) -> None:
    """The entry of a notification sent: as its subscription's owner (pseudonymised), for the
    subscription's purpose, of the entities sent (not those the owner's filter dropped), with
    the attributes masked and the rules that allowed it."""
    from broker.http.audit import AUDIT

    async with serving_receiver() as receiver:
        await subscribe(city, city.token("city-it"), subscription(receiver.url,
                                                                  "TaxObligation"), "tax")
        await city.create(DEBT, tenant="tax")
        await receiver.wait_for(1)
    async with serving_receiver() as public:
        body = subscription(public.url, watchedAttributes=["validationResult", "status"])
        public_id = await subscribe(city, {}, {**body, "@context": [CETATE, LIGHTING]})
        await city.create(TAP)
        await city.create(LAMP, context=LIGHTING)
        await public.wait_for(1)
    for _ in range(100):  # each attempt's outcome is recorded just after its delivery
        entries = await _notification_entries(city)
        if len(entries) >= 2:
            break
        await asyncio.sleep(0.05)
    (tax,) = [e for e in entries if e["tenant"] == "tax"]
    pseudonyms = city.server.app[AUDIT].pseudonyms
    assert tax["principal"] == {"subject": pseudonyms("user-1"), "roles": ["city-it"]}
    assert DEBT["id"] in tax["entities"]["ids"]
    assert any(m.endswith("amountDue") for m in tax["masked"]), tax["masked"]
    assert tax["rule"] != "open-default" and tax["decision"] == "allow"
    (lighting,) = [e for e in entries if public_id in e["entities"]["ids"]]
    assert lighting["entities"]["ids"] == [public_id, LAMP["id"]]  # the tap was dropped
    assert lighting["principal"]["subject"] == pseudonyms("public")
