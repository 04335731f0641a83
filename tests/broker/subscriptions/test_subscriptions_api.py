"""The subscription API over HTTP against a real broker (ETSI GS CIM 009 v1.9.1 clauses 5.8.1-5.8.5,
5.2.12, 5.2.14; the HTTP binding 6.10, 6.11): create, list, retrieve, update, delete, tenants,
the read-only members and @context handling. Deliveries are test_subscriptions_delivery.py's."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiohttp.test_utils import TestServer

from broker.app import create_app
from broker.settings import Settings
from tests.broker.subscriptions.api_fixtures import (
    CONTEXT_REL,
    LD,
    NULL,
    SUBS,
    assert_problem,
    read_sub,
    sub_id_of,
    subscribe,
    subscription,
    until,
)
from tests.conftest import CORE

RECEIVER = "http://127.0.0.1:9/notify"  # never called: these tests deliver nothing
LIGHTING = {"Streetlight": "https://example.org/lighting/Streetlight",
            "powerState": "https://example.org/lighting/powerState"}


def later(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture
async def closed_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A broker whose operator allowed no network: loopback receivers are refused."""
    server = TestServer(create_app(replace(settings, allowed_networks=())), host="127.0.0.1")
    await server.start_server()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}",
                                     timeout=10) as http:
            yield http
    finally:
        await server.close()


# -- create (5.8.1) and retrieve (5.8.4) ----------------------------------------------------

async def test_create_then_retrieve(client: httpx.AsyncClient) -> None:
    response = await client.post(SUBS, json=subscription(
        RECEIVER, watchedAttributes=["powerState"], q="dimmingLevel>0.5",
        subscriptionName="faults", description="streetlight faults for the dispatch centre",
        throttling=2, notification={"attributes": ["powerState"], "format": "keyValues"},
        endpoint={"accept": "application/ld+json",
                  "receiverInfo": [{"key": "X-City", "value": "craiova"}]}))
    sub_id = sub_id_of(response)
    assert re.fullmatch(r"urn:ngsi-ld:Subscription:[0-9a-f-]{36}", sub_id), sub_id
    got = await client.get(f"{SUBS}/{sub_id}")
    assert got.status_code == 200
    assert got.headers["Content-Type"].startswith("application/json")
    assert CORE in got.headers["Link"]
    body = got.json()
    assert body == {
        "id": sub_id, "type": "Subscription", "subscriptionName": "faults",
        "description": "streetlight faults for the dispatch centre",
        "entities": [{"type": "Streetlight"}], "watchedAttributes": ["powerState"],
        "notificationTrigger": ["attributeCreated", "attributeUpdated"],
        "q": "dimmingLevel>0.5", "isActive": True, "throttling": 2, "status": "active",
        "notification": {
            "attributes": ["powerState"], "format": "keyValues", "showChanges": False,
            "sysAttrs": False, "timesSent": 0, "timesFailed": 0,
            "endpoint": {"uri": RECEIVER, "accept": "application/ld+json",
                         "receiverInfo": [{"key": "X-City", "value": "craiova"}]}}}
    ld = await client.get(f"{SUBS}/{sub_id}", headers={"Accept": "application/ld+json"})
    assert ld.headers["Content-Type"].startswith("application/ld+json")
    assert ld.json()["@context"] == CORE
    assert "Link" not in ld.headers


async def test_create_with_id_and_every_selector(client: httpx.AsyncClient) -> None:
    sub_id = "urn:ngsi-ld:Subscription:parking-free"
    body = subscription(
        "mqtt://127.0.0.1:1883/city/parking", id=sub_id,
        entities=[{"type": "ParkingSpot", "id": "urn:ngsi-ld:ParkingSpot:p1"},
                  {"type": "ParkingSpot,OffStreetParking", "idPattern": "^urn:ngsi-ld:P"},
                  {"type": "(Streetlight;Device)"}],
        notificationTrigger=["entityCreated", "attributeDeleted"],
        geoQ={"geometry": "Point", "coordinates": [23.79, 44.31],
              "georel": "near;maxDistance==2000"},
        scopeQ="/Craiova/#", lang="ro,en;q=0.5", expiresAt="2099-01-01T00:00:00Z",
        endpoint={"notifierInfo": [{"key": "MQTT-Version", "value": "mqtt3.1.1"},
                                   {"key": "MQTT-QoS", "value": "1"}]})
    response = await client.post(SUBS, json=body)
    assert sub_id_of(response) == sub_id
    assert response.headers["Location"] == f"{SUBS}/{sub_id}"
    got = await read_sub(client, sub_id)
    assert got["entities"][0] == {"type": "ParkingSpot", "id": "urn:ngsi-ld:ParkingSpot:p1"}
    assert got["entities"][1]["idPattern"] == "^urn:ngsi-ld:P"
    assert set(got["entities"][1]["type"].split(",")) == {"ParkingSpot", "OffStreetParking"}
    assert set(got["entities"][2]["type"].strip("()").split(";")) == {"Streetlight", "Device"}
    assert got["notificationTrigger"] == ["entityCreated", "attributeDeleted"]
    assert got["geoQ"]["georel"] == "near;maxDistance==2000"
    assert got["geoQ"]["coordinates"] == [23.79, 44.31]
    assert got["geoQ"]["geoproperty"] == "location"
    assert got["scopeQ"] == "/Craiova/#" and got["lang"] == "ro,en;q=0.5"
    assert got["expiresAt"].startswith("2099-01-01T00:00:00")
    assert got["notification"]["endpoint"]["notifierInfo"] == [
        {"key": "MQTT-Version", "value": "mqtt3.1.1"}, {"key": "MQTT-QoS", "value": "1"}]


async def test_watched_attributes_alone_and_periodic(client: httpx.AsyncClient) -> None:
    watch = await subscribe(client, subscription(RECEIVER, entities=None,
                                                 watchedAttributes=["powerState"]))
    assert "entities" not in await read_sub(client, watch)
    periodic = await subscribe(client, subscription(RECEIVER, timeInterval=30))
    assert (await read_sub(client, periodic))["timeInterval"] == 30


async def test_repeated_id_is_already_exists(client: httpx.AsyncClient) -> None:
    body = subscription(RECEIVER, id="urn:ngsi-ld:Subscription:once")
    assert (await client.post(SUBS, json=body)).status_code == 201
    assert_problem(await client.post(SUBS, json=body), 409, "AlreadyExists")
    # Another tenant has its own ids.
    other = await client.post(SUBS, json=body, headers={"NGSILD-Tenant": "cluj"})
    assert other.status_code == 201, other.text


BAD_BODIES: dict[str, Any] = {
    "not an object": [subscription(RECEIVER)],
    "no type": {k: v for k, v in subscription(RECEIVER).items() if k != "type"},
    "wrong type": subscription(RECEIVER, type="Registration"),
    "unknown member": subscription(RECEIVER, watchedAttribute=["powerState"]),
    "null member": {**subscription(RECEIVER), "q": None},
    "null description": {**subscription(RECEIVER), "description": None},
    "no notification": {"type": "Subscription", "entities": [{"type": "Streetlight"}]},
    "no entities nor watchedAttributes": subscription(RECEIVER, entities=None),
    "empty entities": subscription(RECEIVER, entities=[]),
    "selector without type": subscription(RECEIVER, entities=[{"id": "urn:ngsi-ld:X:1"}]),
    "id with idPattern": subscription(RECEIVER, entities=[
        {"type": "Streetlight", "id": "urn:ngsi-ld:X:1", "idPattern": ".*"}]),
    "bad idPattern": subscription(RECEIVER, entities=[{"type": "Streetlight",
                                                       "idPattern": "(unclosed"}]),
    "bad type expression": subscription(RECEIVER, entities=[{"type": "Streetlight;;"}]),
    "expired expiresAt": subscription(RECEIVER, expiresAt="2020-01-01T00:00:00Z"),
    "bad expiresAt": subscription(RECEIVER, expiresAt="tomorrow"),
    "timeInterval with watchedAttributes": subscription(RECEIVER, timeInterval=10,
                                                        watchedAttributes=["powerState"]),
    "timeInterval with throttling": subscription(RECEIVER, timeInterval=10, throttling=5),
    "zero timeInterval": subscription(RECEIVER, timeInterval=0),
    "negative throttling": subscription(RECEIVER, throttling=-1),
    "unknown trigger": subscription(RECEIVER, notificationTrigger=["entityChanged"]),
    "empty triggers": subscription(RECEIVER, notificationTrigger=[]),
    "empty watchedAttributes": subscription(RECEIVER, watchedAttributes=[]),
    "bad q": subscription(RECEIVER, q="dimmingLevel>>0.5"),
    "bad geoQ": subscription(RECEIVER, geoQ={"geometry": "Point", "coordinates": [23.79],
                                             "georel": "near;maxDistance==10"}),
    "bad scopeQ": subscription(RECEIVER, scopeQ="Craiova"),
    "isActive not boolean": subscription(RECEIVER, isActive="yes"),
    "unknown format": subscription(RECEIVER, notification={"format": "compact"}),
    "showChanges with keyValues": subscription(
        RECEIVER, notification={"format": "keyValues", "showChanges": True}),
    "null notification member": subscription(RECEIVER, notification={"attributes": None}),
    "no endpoint": {"type": "Subscription", "entities": [{"type": "Streetlight"}],
                    "notification": {"format": "normalized"}},
    "no endpoint uri": {"type": "Subscription", "entities": [{"type": "Streetlight"}],
                        "notification": {"endpoint": {"accept": "application/json"}}},
    "ftp endpoint": subscription("ftp://127.0.0.1/notify"),
    "relative endpoint": subscription("/notify"),
    "unknown accept": subscription(RECEIVER, endpoint={"accept": "text/plain"}),
    "reserved receiverInfo header": subscription(
        RECEIVER, endpoint={"receiverInfo": [{"key": "Content-Type", "value": "text/plain"}]}),
    "header injection": subscription(
        RECEIVER, endpoint={"receiverInfo": [{"key": "X-A", "value": "a\r\nX-B: b"}]}),
    "MQTT QoS 2": subscription("mqtt://127.0.0.1:1883/city/lights", endpoint={
        "notifierInfo": [{"key": "MQTT-QoS", "value": "2"}]}),
    "MQTT version 4": subscription("mqtt://127.0.0.1:1883/city/lights", endpoint={
        "notifierInfo": [{"key": "MQTT-Version", "value": "mqtt4"}]}),
    "MQTT wildcard topic": subscription("mqtt://127.0.0.1:1883/city/+/lights"),
    "MQTT no topic": subscription("mqtt://127.0.0.1:1883"),
    "private address not allowed": subscription("http://10.1.2.3/notify"),
    "link-local address not allowed": subscription("http://169.254.169.254/latest"),
}


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
async def test_bad_subscription_is_bad_request_data(client: httpx.AsyncClient,
                                                    body: Any) -> None:
    assert_problem(await client.post(SUBS, json=body), 400, "BadRequestData")
    assert (await client.get(SUBS)).json() == []


@pytest.mark.parametrize("tail", ["a/b", "a%20b", "ä", "a?b", "a;b#c"])
async def test_location_of_unusual_ids(client: httpx.AsyncClient, tail: str) -> None:
    sub_id = f"urn:ngsi-ld:Subscription:{tail}"
    response = await client.post(SUBS, json=subscription(RECEIVER, id=sub_id))
    assert sub_id_of(response) == sub_id
    location = response.headers["Location"]
    assert (await client.get(location)).json()["id"] == sub_id
    assert (await client.patch(location, json={"isActive": False})).status_code == 204
    assert (await client.delete(location)).status_code == 204


async def test_invalid_json_and_bad_ids(client: httpx.AsyncClient) -> None:
    response = await client.post(SUBS, content=b"{not json",
                                 headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert_problem(await client.post(SUBS, json=subscription(RECEIVER, id="not a uri")), 400,
                   "BadRequestData")
    assert_problem(await client.get(f"{SUBS}/not%20a%20uri"), 400, "BadRequestData")


async def test_media_types(client: httpx.AsyncClient) -> None:
    plain = await client.post(SUBS, content=b"{}", headers={"Content-Type": "text/plain"})
    assert plain.status_code == 415, plain.text
    sub_id = await subscribe(client, subscription(RECEIVER))
    refused = await client.get(f"{SUBS}/{sub_id}", headers={"Accept": "text/csv"})
    assert refused.status_code == 406, refused.text
    geo = await client.get(SUBS, headers={"Accept": "application/geo+json"})
    assert geo.status_code == 406, geo.text
    anything = await client.get(f"{SUBS}/{sub_id}", headers={"Accept": "*/*"})
    assert anything.headers["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("uri", ["http://127.0.0.1:8080/notify", "http://[::1]:8080/notify",
                                 "http://localhost:8080/notify",
                                 "mqtt://127.0.0.1:1883/city/lights"])
async def test_loopback_refused_unless_allowed(closed_client: httpx.AsyncClient,
                                               uri: str) -> None:
    problem = assert_problem(await closed_client.post(SUBS, json=subscription(uri)), 400,
                             "BadRequestData")
    assert "address" in problem["detail"]
    assert (await closed_client.get(SUBS)).json() == []


async def test_public_endpoint_allowed_when_closed(closed_client: httpx.AsyncClient) -> None:
    # A public address literal passes at subscription time (documentation ranges such as
    # 203.0.113.0/24 are refused like private ones).
    sub_id = await subscribe(closed_client, subscription("http://93.184.216.34/notify"))
    assert (await read_sub(closed_client, sub_id))["notification"]["endpoint"]["uri"] == \
        "http://93.184.216.34/notify"
    # ... and an update cannot move it onto loopback.
    moved = await closed_client.patch(f"{SUBS}/{sub_id}", json={
        "notification": {"endpoint": {"uri": "http://127.0.0.1:9/notify"}}})
    assert_problem(moved, 400, "BadRequestData")
    assert (await read_sub(closed_client, sub_id))["notification"]["endpoint"]["uri"] == \
        "http://93.184.216.34/notify"


# -- the read-only members and status (5.2.12, 5.2.14) --------------------------------------

async def test_read_only_members_are_ignored_on_create(client: httpx.AsyncClient) -> None:
    body = subscription(RECEIVER, status="expired", createdAt="2000-01-01T00:00:00Z",
                        notification={"timesSent": 99, "timesFailed": 7, "status": "failed",
                                      "lastNotification": "2000-01-01T00:00:00Z",
                                      "lastSuccess": "2000-01-01T00:00:00Z",
                                      "lastFailure": "2000-01-01T00:00:00Z"})
    sub_id = await subscribe(client, body)
    got = await read_sub(client, sub_id, params={"options": "sysAttrs"})
    assert got["status"] == "active"
    notification = got["notification"]
    assert notification["timesSent"] == 0 and notification["timesFailed"] == 0
    for member in ("status", "lastNotification", "lastSuccess", "lastFailure"):
        assert member not in notification, member
    assert got["createdAt"] > "2020" and got["modifiedAt"] == got["createdAt"]
    plain = await read_sub(client, sub_id)
    assert "createdAt" not in plain and "modifiedAt" not in plain


async def test_status_active_paused_expired(client: httpx.AsyncClient) -> None:
    paused = await subscribe(client, subscription(RECEIVER, isActive=False))
    assert (await read_sub(client, paused))["status"] == "paused"
    soon = await subscribe(client, subscription(RECEIVER, expiresAt=later(0.6)))
    assert (await read_sub(client, soon))["status"] == "active"

    async def expired() -> bool:
        return (await read_sub(client, soon))["status"] == "expired"
    await until(expired, timeout=3)
    # An expired subscription is still there, and can be given a new life.
    revived = await client.patch(f"{SUBS}/{soon}", json={"expiresAt": later(3600)})
    assert revived.status_code == 204, revived.text
    assert (await read_sub(client, soon))["status"] == "active"


# -- list (5.8.3) ---------------------------------------------------------------------------

def _links(response: httpx.Response) -> dict[str, str]:
    found = {}
    for value in response.headers.get_list("Link"):
        match = re.fullmatch(r'<([^>]*)>; rel="(prev|next)"', value)
        if match:
            found[match[2]] = match[1]
    return found


async def test_list_pages_and_count(client: httpx.AsyncClient) -> None:
    ids = [await subscribe(client, subscription(RECEIVER, subscriptionName=f"s{n}"))
           for n in range(5)]
    everything = await client.get(SUBS)
    assert everything.status_code == 200
    assert [s["id"] for s in everything.json()] == ids  # creation order
    assert "NGSILD-Results-Count" not in everything.headers
    assert CORE in everything.headers["Link"]

    first = await client.get(SUBS, params={"limit": 2, "count": "true"})
    assert [s["id"] for s in first.json()] == ids[:2]
    assert first.headers["NGSILD-Results-Count"] == "5"
    links = _links(first)
    assert "prev" not in links
    assert "offset=2" in links["next"] and "limit=2" in links["next"]
    assert "count=true" in links["next"]  # other parameters carry over

    second = await client.get(links["next"])
    assert [s["id"] for s in second.json()] == ids[2:4]
    assert "offset=0" in _links(second)["prev"]
    last = await client.get(SUBS, params={"limit": 2, "offset": 4})
    assert [s["id"] for s in last.json()] == ids[4:]
    assert "next" not in _links(last) and "prev" in _links(last)
    beyond = await client.get(SUBS, params={"offset": 10})
    assert beyond.status_code == 200 and beyond.json() == []

    counted = await client.get(SUBS, params={"limit": 0, "count": "true"})
    assert counted.status_code == 200 and counted.json() == []
    assert counted.headers["NGSILD-Results-Count"] == "5"


async def test_list_bad_parameters(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get(SUBS, params={"limit": 0}), 400, "BadRequestData")
    assert_problem(await client.get(SUBS, params={"limit": -1}), 400, "BadRequestData")
    assert_problem(await client.get(SUBS, params={"offset": "x"}), 400, "BadRequestData")
    assert_problem(await client.get(SUBS, params={"limit": 100_000}), 403, "TooManyResults")


async def test_list_ld_json(client: httpx.AsyncClient) -> None:
    await subscribe(client, subscription(RECEIVER))
    response = await client.get(SUBS, headers={"Accept": "application/ld+json"})
    assert response.headers["Content-Type"].startswith("application/ld+json")
    (item,) = response.json()
    assert item["@context"] == CORE and item["type"] == "Subscription"


# -- update (5.8.2) -------------------------------------------------------------------------

async def test_update_merges(client: httpx.AsyncClient) -> None:
    sub_id = await subscribe(client, subscription(
        RECEIVER, q="dimmingLevel>0.5", watchedAttributes=["powerState"],
        notification={"attributes": ["powerState"]},
        endpoint={"receiverInfo": [{"key": "X-City", "value": "craiova"}]}))
    before = await read_sub(client, sub_id, params={"options": "sysAttrs"})
    await asyncio.sleep(0.01)  # a later millisecond for modifiedAt
    response = await client.patch(f"{SUBS}/{sub_id}", json={
        "notification": {"format": "concise"}, "watchedAttributes": ["dimmingLevel"],
        "subscriptionName": "renamed"})
    assert response.status_code == 204, response.text
    after = await read_sub(client, sub_id, params={"options": "sysAttrs"})
    # Replaced: the members given; kept: the others, and notification's members not given.
    assert after["watchedAttributes"] == ["dimmingLevel"]
    assert after["subscriptionName"] == "renamed"
    assert after["notification"]["format"] == "concise"
    assert after["notification"]["attributes"] == ["powerState"]
    assert after["notification"]["endpoint"] == before["notification"]["endpoint"]
    assert after["q"] == "dimmingLevel>0.5" and after["entities"] == before["entities"]
    assert after["createdAt"] == before["createdAt"]
    assert after["modifiedAt"] > before["modifiedAt"]

    # The endpoint is replaced whole.
    await client.patch(f"{SUBS}/{sub_id}", json={
        "notification": {"endpoint": {"uri": "http://127.0.0.1:10/other"}}})
    endpoint = (await read_sub(client, sub_id))["notification"]["endpoint"]
    assert endpoint == {"uri": "http://127.0.0.1:10/other", "accept": "application/json"}


@pytest.mark.parametrize("null", [None, NULL])
async def test_update_null_removes_a_member(client: httpx.AsyncClient, null: Any) -> None:
    sub_id = await subscribe(client, subscription(
        RECEIVER, q="dimmingLevel>0.5", throttling=5, notification={"attributes": ["a"]}))
    response = await client.patch(f"{SUBS}/{sub_id}", json={
        "q": null, "throttling": null, "notification": {"attributes": null}})
    assert response.status_code == 204, response.text
    got = await read_sub(client, sub_id)
    assert "q" not in got and "throttling" not in got
    assert "attributes" not in got["notification"]


async def test_update_read_only_members_ignored(client: httpx.AsyncClient) -> None:
    sub_id = await subscribe(client, subscription(RECEIVER))
    response = await client.patch(f"{SUBS}/{sub_id}", json={
        "status": "expired", "notification": {"timesSent": 50, "status": "failed",
                                              "lastSuccess": "2020-01-01T00:00:00Z"}})
    assert response.status_code == 204, response.text
    got = await read_sub(client, sub_id)
    assert got["status"] == "active"
    assert got["notification"]["timesSent"] == 0
    assert "status" not in got["notification"] and "lastSuccess" not in got["notification"]


async def test_update_pause_and_resume(client: httpx.AsyncClient) -> None:
    sub_id = await subscribe(client, subscription(RECEIVER))
    assert (await client.patch(f"{SUBS}/{sub_id}", json={"isActive": False})).status_code == 204
    assert (await read_sub(client, sub_id))["status"] == "paused"
    assert (await client.patch(f"{SUBS}/{sub_id}", json={"isActive": True})).status_code == 204
    assert (await read_sub(client, sub_id))["status"] == "active"


BAD_UPDATES: dict[str, Any] = {
    "not an object": [{"q": "a==1"}],
    "empty": {},
    "other id": {"id": "urn:ngsi-ld:Subscription:other"},
    "other type": {"type": "Entity"},
    "unknown member": {"watchedAttribute": ["a"]},
    "timeInterval with watchedAttributes": {"timeInterval": 10},
    "expired expiresAt": {"expiresAt": "2020-01-01T00:00:00Z"},
    "remove notification": {"notification": None},
    "remove endpoint": {"notification": {"endpoint": None}},
    "bad q": {"q": "a>>1"},
    "bad format": {"notification": {"format": "compact"}},
    "refused endpoint": {"notification": {"endpoint": {"uri": "http://10.1.2.3/notify"}}},
}


@pytest.mark.parametrize("fragment", BAD_UPDATES.values(), ids=BAD_UPDATES.keys())
async def test_bad_update_leaves_the_subscription(client: httpx.AsyncClient,
                                                  fragment: Any) -> None:
    sub_id = await subscribe(client, subscription(RECEIVER, watchedAttributes=["powerState"]))
    before = await read_sub(client, sub_id, params={"options": "sysAttrs"})
    assert_problem(await client.patch(f"{SUBS}/{sub_id}", json=fragment), 400,
                   "BadRequestData")
    assert await read_sub(client, sub_id, params={"options": "sysAttrs"}) == before


async def test_update_missing_is_not_found(client: httpx.AsyncClient) -> None:
    missing = f"{SUBS}/urn:ngsi-ld:Subscription:missing"
    assert_problem(await client.patch(missing, json={"isActive": False}), 404,
                   "ResourceNotFound")


# -- delete (5.8.5) -------------------------------------------------------------------------

async def test_delete_then_not_found(client: httpx.AsyncClient) -> None:
    keep = await subscribe(client, subscription(RECEIVER))
    sub_id = await subscribe(client, subscription(RECEIVER))
    response = await client.delete(f"{SUBS}/{sub_id}")
    assert response.status_code == 204 and response.content == b""
    assert_problem(await client.get(f"{SUBS}/{sub_id}"), 404, "ResourceNotFound")
    assert_problem(await client.delete(f"{SUBS}/{sub_id}"), 404, "ResourceNotFound")
    assert [s["id"] for s in (await client.get(SUBS)).json()] == [keep]
    # The id is free again.
    again = await client.post(SUBS, json=subscription(RECEIVER, id=sub_id))
    assert again.status_code == 201, again.text
    assert (await read_sub(client, sub_id))["notification"]["timesSent"] == 0


async def test_retrieve_missing_is_not_found(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get(f"{SUBS}/urn:ngsi-ld:Subscription:missing"), 404,
                   "ResourceNotFound")


# -- tenants (clause 4.14) ------------------------------------------------------------------

async def test_tenants_are_separate(client: httpx.AsyncClient) -> None:
    craiova = {"NGSILD-Tenant": "craiova"}
    sub_id = await subscribe(client, subscription(RECEIVER), headers=craiova)
    url = f"{SUBS}/{sub_id}"
    assert (await client.get(url, headers=craiova)).status_code == 200
    assert [s["id"] for s in (await client.get(SUBS, headers=craiova)).json()] == [sub_id]
    # Invisible from the default tenant and from another one.
    assert_problem(await client.get(url), 404, "ResourceNotFound")
    assert (await client.get(SUBS)).json() == []
    assert_problem(await client.get(url, headers={"NGSILD-Tenant": "cluj"}), 404,
                   "NonexistentTenant")
    assert_problem(await client.get(SUBS, headers={"NGSILD-Tenant": "cluj"}), 404,
                   "NonexistentTenant")
    # ... nor can they change or delete it.
    assert_problem(await client.patch(url, json={"isActive": False}), 404, "ResourceNotFound")
    assert_problem(await client.delete(url), 404, "ResourceNotFound")
    got = await read_sub(client, sub_id, headers=craiova)
    assert got["isActive"] is True
    assert (await client.delete(url, headers=craiova)).status_code == 204


async def test_bad_tenant_name(client: httpx.AsyncClient) -> None:
    response = await client.post(SUBS, json=subscription(RECEIVER),
                                 headers={"NGSILD-Tenant": "no such/tenant!"})
    assert_problem(response, 400, "BadRequestData")


# -- @context handling (clause 5.5.7, 6.3.5) ------------------------------------------------

async def _hosted(client: httpx.AsyncClient, server: TestServer) -> str:
    hosted = await client.post("/ngsi-ld/v1/jsonldContexts", json={"@context": LIGHTING})
    assert hosted.status_code == 201, hosted.text
    return f"http://127.0.0.1:{server.port}{hosted.headers['Location']}"


def _expanded(got: dict[str, Any]) -> None:
    assert got["entities"] == [{"type": LIGHTING["Streetlight"]}]
    assert got["watchedAttributes"] == [LIGHTING["powerState"]]
    assert got["notification"]["attributes"] == [LIGHTING["powerState"], "dimmingLevel"]
    assert LIGHTING["powerState"] in got["q"]


def _compacted(got: dict[str, Any]) -> None:
    assert got["entities"] == [{"type": "Streetlight"}]
    assert got["watchedAttributes"] == ["powerState"]
    assert got["notification"]["attributes"] == ["powerState", "dimmingLevel"]
    assert got["q"] == 'powerState=="off"'


def _lighting_sub() -> dict[str, Any]:
    return subscription(RECEIVER, watchedAttributes=["powerState"], q='powerState=="off"',
                        notification={"attributes": ["powerState", "dimmingLevel"]})


async def test_link_context_expands_and_compacts(client: httpx.AsyncClient,
                                                 server: TestServer) -> None:
    link = {"Link": f"<{await _hosted(client, server)}>; {CONTEXT_REL}"}
    sub_id = await subscribe(client, _lighting_sub(), headers=link)
    _expanded(await read_sub(client, sub_id))  # read with the core context only
    _compacted(await read_sub(client, sub_id, headers=link))
    ld = await client.get(f"{SUBS}/{sub_id}", headers={**link, "Accept": "application/ld+json"})
    body = ld.json()
    _compacted(body)
    assert link["Link"][1:].split(">")[0] in body["@context"]
    (listed,) = (await client.get(SUBS, headers=link)).json()
    _compacted(listed)


async def test_update_in_another_context_keeps_the_terms(client: httpx.AsyncClient,
                                                        server: TestServer) -> None:
    link = {"Link": f"<{await _hosted(client, server)}>; {CONTEXT_REL}"}
    body = _lighting_sub()
    body["geoQ"] = {"geometry": "Point", "coordinates": [23.79, 44.31],
                    "georel": "near;maxDistance==2000", "geoproperty": "powerState"}
    sub_id = await subscribe(client, body, headers=link)
    # Sent in the core context: the members it leaves alone keep their meaning.
    patched = await client.patch(f"{SUBS}/{sub_id}", json={"subscriptionName": "renamed"})
    assert patched.status_code == 204, patched.text
    got = await read_sub(client, sub_id, headers=link)
    _compacted(got)
    assert got["geoQ"]["geoproperty"] == "powerState"
    assert got["subscriptionName"] == "renamed"


async def test_ld_json_body_context(client: httpx.AsyncClient) -> None:
    body = {**_lighting_sub(), "@context": [LIGHTING, CORE]}
    sub_id = sub_id_of(await client.post(SUBS, json=body, headers=LD))
    _expanded(await read_sub(client, sub_id))
    # An update in the same context reads its terms the same way.
    patched = await client.patch(f"{SUBS}/{sub_id}", headers=LD, json={
        "watchedAttributes": ["powerState", "dimmingLevel"], "@context": [LIGHTING, CORE]})
    assert patched.status_code == 204, patched.text
    assert (await read_sub(client, sub_id))["watchedAttributes"] == [
        LIGHTING["powerState"], "dimmingLevel"]


async def test_context_rules_of_the_binding(client: httpx.AsyncClient,
                                            server: TestServer) -> None:
    link = {"Link": f"<{await _hosted(client, server)}>; {CONTEXT_REL}"}
    # application/ld+json carries its @context in the body: not with a Link header too.
    both = await client.post(SUBS, json={**_lighting_sub(), "@context": CORE},
                             headers={**LD, **link})
    assert both.status_code == 400, both.text
    # application/json takes no @context in the body.
    inline = await client.post(SUBS, json={**_lighting_sub(), "@context": CORE})
    assert inline.status_code == 400, inline.text
    assert (await client.get(SUBS)).json() == []
