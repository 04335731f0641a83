"""Notifications delivered by a real broker to real receivers: an aiohttp server and the local
Mosquitto (ETSI GS CIM 009 v1.9.1 clauses 5.2.12, 5.2.14, 5.2.15, 5.3.1, 5.11, 4.5; the MQTT
binding). Every trigger, filter and format, the endpoint options, tenants, batches, throttling,
periodic subscriptions and at-least-once redelivery; the read-only members they leave behind.

Waits are on the receiver's events (Receiver.wait_for), the MQTT listener's messages, or the
subscription's read-only members (api_fixtures.until); a fixed pause (QUIET) only proves that
nothing more arrives.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import re
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from broker.settings import Settings
from tests.broker.subscriptions.api_fixtures import (
    CONTEXT_REL,
    ENTITIES,
    LD,
    NULL,
    OPS,
    QUIET,
    SUBS,
    create,
    delivered,
    lamp,
    lamp_id,
    mqtt_listener,
    patch_attrs,
    read_sub,
    sub_id_of,
    subscribe,
    subscription,
    until,
)
from tests.broker.subscriptions.conftest import Receiver, serving_receiver
from tests.conftest import CORE

NOTIFICATION_ID = re.compile(r"urn:ngsi-ld:Notification:[0-9a-f-]{36}")
INSTANT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
LIGHTING = {"Streetlight": "https://example.org/lighting/Streetlight",
            "powerState": "https://example.org/lighting/powerState"}
CLUJ = (23.5899, 46.7712)


# With attributes: creating an entity without any fires no attribute trigger (match.py).
SPOT = {"id": "urn:ngsi-ld:ParkingSpot:p1", "type": "ParkingSpot",
        "occupancy": {"type": "Property", "value": "free"}}


def off() -> dict[str, Any]:
    return {"powerState": {"type": "Property", "value": "off"}}


def level(value: float) -> dict[str, Any]:
    return {"dimmingLevel": {"type": "Property", "value": value}}


def epoch(instant: str) -> float:
    return datetime.fromisoformat(instant.replace("Z", "+00:00")).timestamp()


def data(receiver: Receiver) -> list[dict[str, Any]]:
    """Every entity the receiver was notified of, in arrival order."""
    return [entity for r in receiver.received for entity in r.body["data"]]


async def quiet(receiver: Receiver, count: int) -> None:
    """Wait for `count` notifications, then prove no more come."""
    await receiver.wait_for(count)
    await asyncio.sleep(QUIET)
    assert len(receiver.received) == count, [r.body["data"] for r in receiver.received]


# -- the notification (clause 5.3.1) and its HTTP message --------------------------------------

async def test_notification_body_and_headers(client: httpx.AsyncClient,
                                             receiver: Receiver) -> None:
    sub_id = await subscribe(client, subscription(receiver.url + "/city/lights"))
    await create(client, lamp(1))
    await receiver.wait_for(1)
    (got,) = receiver.received
    assert got.path == "/city/lights"
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["Link"] == f"<{CORE}>; {CONTEXT_REL}"
    assert "NGSILD-Tenant" not in got.headers
    assert got.headers["User-Agent"].startswith("cetate")
    body = got.body
    assert set(body) == {"id", "type", "subscriptionId", "notifiedAt", "data"}
    assert NOTIFICATION_ID.fullmatch(body["id"]), body["id"]
    assert body["type"] == "Notification"
    assert body["subscriptionId"] == sub_id
    assert INSTANT.fullmatch(body["notifiedAt"]), body["notifiedAt"]
    assert abs(epoch(body["notifiedAt"]) - datetime.now(UTC).timestamp()) < 60
    assert body["data"] == [lamp(1)]  # normalized, no system attributes by default

    state = (await delivered(client, sub_id))["notification"]
    assert state["timesSent"] == 1 and state["timesFailed"] == 0
    assert state["status"] == "ok"
    assert state["lastNotification"] == state["lastSuccess"]
    assert epoch(state["lastSuccess"]) >= epoch(body["notifiedAt"]) - 0.001
    assert "lastFailure" not in state


# -- triggers (clause 5.2.12 notificationTrigger; broker/subscriptions/match.py) ---------------

def _step(entity: dict[str, Any]) -> str:
    """Which write of _lifecycle a notified entity shows."""
    if "deletedAt" in entity:
        return "deleted"
    fault = entity.get("fault")
    if fault is not None:
        return "fault removed" if fault["value"] == NULL else "fault added"
    return "switched off" if entity["powerState"]["value"] == "off" else "created"


async def _lifecycle(client: httpx.AsyncClient) -> None:
    """A streetlight created, one attribute updated, one added then removed, then deleted:
    five writes, each firing a different set of triggers."""
    url = f"{ENTITIES}/{lamp_id(1)}"
    await create(client, lamp(1))
    await patch_attrs(client, lamp_id(1), off())
    added = await client.post(url + "/attrs", json={
        "fault": {"type": "Property", "value": "lamp broken"}})
    assert added.status_code == 204, added.text
    assert (await client.delete(url + "/attrs/fault")).status_code == 204
    assert (await client.delete(url)).status_code == 204


TRIGGERS: dict[str, list[str]] = {
    "entityCreated": ["created"],
    "entityUpdated": ["switched off", "fault added", "fault removed"],
    "entityDeleted": ["deleted"],
    "attributeCreated": ["created", "fault added"],
    "attributeUpdated": ["switched off"],
    "attributeDeleted": ["fault removed"],
}


@pytest.mark.parametrize("trigger", TRIGGERS)
async def test_each_trigger(client: httpx.AsyncClient, receiver: Receiver,
                            trigger: str) -> None:
    await subscribe(client, subscription(receiver.url, notificationTrigger=[trigger]))
    await _lifecycle(client)
    await quiet(receiver, len(TRIGGERS[trigger]))
    assert sorted(_step(e) for e in data(receiver)) == sorted(TRIGGERS[trigger])


async def test_default_and_every_trigger(client: httpx.AsyncClient) -> None:
    async with serving_receiver() as default, serving_receiver() as every:
        await subscribe(client, subscription(default.url))
        await subscribe(client, subscription(every.url, notificationTrigger=list(TRIGGERS)))
        await _lifecycle(client)
        # Clause 5.2.12: by default attributeCreated and attributeUpdated.
        await quiet(default, 3)
        assert sorted(_step(e) for e in data(default)) == sorted(
            ["created", "switched off", "fault added"])
        # One notification per write, however many triggers it fires.
        await quiet(every, 5)
        assert sorted(_step(e) for e in data(every)) == sorted(
            ["created", "switched off", "fault added", "fault removed", "deleted"])


async def test_deletions_as_notified(client: httpx.AsyncClient, receiver: Receiver) -> None:
    await subscribe(client, subscription(
        receiver.url, notificationTrigger=["attributeDeleted", "entityDeleted"]))
    await _lifecycle(client)
    await receiver.wait_for(2)
    by_step = {_step(e): e for e in data(receiver)}
    # Clause 5.2.1: a deleted attribute is notified with the NGSI-LD Null as its value.
    assert by_step["fault removed"]["fault"] == {"type": "Property", "value": NULL}
    gone = by_step["deleted"]
    assert gone["id"] == lamp_id(1) and gone["type"] == "Streetlight"
    assert INSTANT.fullmatch(gone["deletedAt"])
    assert gone["powerState"]["value"] == NULL
    assert gone["refStreetlightGroup"] == {"type": "Relationship", "object": NULL}


async def test_watched_attributes(client: httpx.AsyncClient, receiver: Receiver) -> None:
    await subscribe(client, subscription(receiver.url, watchedAttributes=["dimmingLevel"]))
    await create(client, lamp(1, level=0.8))
    await patch_attrs(client, lamp_id(1), off())  # not watched
    await patch_attrs(client, lamp_id(1), level(0.2))
    await quiet(receiver, 2)
    assert sorted(e["dimmingLevel"]["value"] for e in data(receiver)) == [0.2, 0.8]


async def test_watched_attributes_without_entities(client: httpx.AsyncClient,
                                                   receiver: Receiver) -> None:
    await subscribe(client, subscription(receiver.url, entities=None,
                                         watchedAttributes=["occupancy"]))
    await create(client, lamp(1))  # no occupancy
    await create(client, SPOT)
    await quiet(receiver, 1)
    assert [e["id"] for e in data(receiver)] == ["urn:ngsi-ld:ParkingSpot:p1"]


# -- filters: entities, q, geoQ, scopeQ (clauses 5.2.33, 4.9, 4.10, 4.19) ----------------------

async def test_entity_selectors(client: httpx.AsyncClient, receiver: Receiver) -> None:
    selectors = {
        "/by-id": [{"type": "Streetlight", "id": lamp_id(2)}],
        "/by-pattern": [{"type": "Streetlight", "idPattern": "craiova-00[13]$"}],
        "/any-of": [{"type": "ParkingSpot,Bench"}],
        "/all-of": [{"type": "(Streetlight;Device)"}],
    }
    for path, entities in selectors.items():
        await subscribe(client, subscription(receiver.url + path, entities=entities))
    for n in (1, 2, 3):
        await create(client, lamp(n))
    await create(client, SPOT)
    await create(client, {**lamp(9), "id": "urn:ngsi-ld:Streetlight:smart-9",
                          "type": ["Streetlight", "Device"]})
    await quiet(receiver, 5)
    notified: dict[str, set[str]] = {}
    for r in receiver.received:
        notified.setdefault(r.path, set()).update(e["id"] for e in r.body["data"])
    assert notified == {
        "/by-id": {lamp_id(2)},
        "/by-pattern": {lamp_id(1), lamp_id(3)},
        "/any-of": {"urn:ngsi-ld:ParkingSpot:p1"},
        "/all-of": {"urn:ngsi-ld:Streetlight:smart-9"},
    }


async def test_q(client: httpx.AsyncClient, receiver: Receiver) -> None:
    await subscribe(client, subscription(receiver.url, q="dimmingLevel>0.5"))
    await create(client, lamp(1, level=0.3))
    await create(client, lamp(2, level=0.9))
    await patch_attrs(client, lamp_id(1), level(0.7))  # now matches
    await patch_attrs(client, lamp_id(2), level(0.1))  # no longer does
    await quiet(receiver, 2)
    assert sorted((e["id"], e["dimmingLevel"]["value"]) for e in data(receiver)) == [
        (lamp_id(1), 0.7), (lamp_id(2), 0.9)]


async def test_geo_q(client: httpx.AsyncClient, receiver: Receiver) -> None:
    await subscribe(client, subscription(receiver.url + "/near-craiova", geoQ={
        "geometry": "Point", "coordinates": [23.7967, 44.3190],
        "georel": "near;maxDistance==2000"}))
    cluj_box = [[[23.4, 46.6], [23.8, 46.6], [23.8, 46.9], [23.4, 46.9], [23.4, 46.6]]]
    await subscribe(client, subscription(receiver.url + "/in-cluj", geoQ={
        "geometry": "Polygon", "coordinates": cluj_box, "georel": "within"}))
    await create(client, lamp(1))
    await create(client, lamp(2, where=CLUJ))
    await create(client, lamp(3, where=(26.1025, 44.4268)))  # Bucharest: neither
    await quiet(receiver, 2)
    assert {(r.path, r.body["data"][0]["id"]) for r in receiver.received} == {
        ("/near-craiova", lamp_id(1)), ("/in-cluj", lamp_id(2))}


async def test_scope_q(client: httpx.AsyncClient, receiver: Receiver) -> None:
    await subscribe(client, subscription(receiver.url, scopeQ="/Craiova/#"))
    await create(client, lamp(1, scope="/Craiova/Centru"))
    await create(client, lamp(2, scope="/Cluj"))
    await create(client, lamp(3))  # no scope
    await quiet(receiver, 1)
    assert [e["id"] for e in data(receiver)] == [lamp_id(1)]


# -- what the notification carries -------------------------------------------------------------

async def test_notification_attributes(client: httpx.AsyncClient, receiver: Receiver) -> None:
    await subscribe(client, subscription(
        receiver.url, notification={"attributes": ["powerState", "location"]}))
    await create(client, lamp(1))
    await receiver.wait_for(1)
    (entity,) = data(receiver)
    assert set(entity) == {"id", "type", "powerState", "location"}


FORMATS: dict[str, dict[str, Any]] = {
    "normalized": {"powerState": {"type": "Property", "value": "on"},
                   "refStreetlightGroup": {"type": "Relationship",
                                           "object": "urn:ngsi-ld:StreetlightGroup:calea-unirii"},
                   "dimmingLevel": {"type": "Property", "value": 0.8}},
    "keyValues": {"powerState": "on",
                  "refStreetlightGroup": "urn:ngsi-ld:StreetlightGroup:calea-unirii",
                  "dimmingLevel": 0.8,
                  "location": {"type": "Point", "coordinates": [23.7967, 44.3190]}},
    "concise": {"powerState": "on",
                "refStreetlightGroup": {"object": "urn:ngsi-ld:StreetlightGroup:calea-unirii"},
                "dimmingLevel": 0.8},
}


@pytest.mark.parametrize("fmt", FORMATS)
async def test_formats(client: httpx.AsyncClient, receiver: Receiver, fmt: str) -> None:
    await subscribe(client, subscription(receiver.url, notification={"format": fmt}))
    await create(client, lamp(1))
    await receiver.wait_for(1)
    (entity,) = data(receiver)
    assert entity["id"] == lamp_id(1) and entity["type"] == "Streetlight"
    for name, expected in FORMATS[fmt].items():
        assert entity[name] == expected, name


@pytest.mark.parametrize("fmt", ["normalized", "concise"])
async def test_show_changes(client: httpx.AsyncClient, receiver: Receiver, fmt: str) -> None:
    await subscribe(client, subscription(
        receiver.url, notificationTrigger=["attributeCreated", "attributeUpdated",
                                           "attributeDeleted"],
        notification={"format": fmt, "showChanges": True}))
    await create(client, lamp(1, fault={"type": "Property", "value": "flicker"}))
    await receiver.wait_for(1)
    (created,) = data(receiver)
    assert "previousValue" not in str(created)  # nothing came before a creation
    await patch_attrs(client, lamp_id(1), {
        **off(), "refStreetlightGroup": {"type": "Relationship",
                                         "object": "urn:ngsi-ld:StreetlightGroup:nord"}})
    await receiver.wait_for(2)
    updated = data(receiver)[1]
    kind = {"type": "Property"} if fmt == "normalized" else {}
    rel = {"type": "Relationship"} if fmt == "normalized" else {}
    assert updated["powerState"] == {**kind, "value": "off", "previousValue": "on"}
    assert updated["refStreetlightGroup"] == {
        **rel, "object": "urn:ngsi-ld:StreetlightGroup:nord",
        "previousObject": "urn:ngsi-ld:StreetlightGroup:calea-unirii"}
    assert "previousValue" not in str(updated["dimmingLevel"])  # untouched by this write
    assert (await client.delete(f"{ENTITIES}/{lamp_id(1)}/attrs/fault")).status_code == 204
    await receiver.wait_for(3)
    removed = data(receiver)[2]
    assert removed["fault"]["value"] == NULL
    assert removed["fault"]["previousValue"] == "flicker"


async def test_sys_attrs(client: httpx.AsyncClient) -> None:
    async with serving_receiver() as plain, serving_receiver() as with_sys:
        await subscribe(client, subscription(plain.url))
        await subscribe(client, subscription(with_sys.url, notification={"sysAttrs": True}))
        await create(client, lamp(1))
        await plain.wait_for(1)
        await with_sys.wait_for(1)
        (bare,) = data(plain)
        assert "createdAt" not in bare and "createdAt" not in bare["powerState"]
        (entity,) = data(with_sys)
        assert INSTANT.fullmatch(entity["createdAt"]) and INSTANT.fullmatch(entity["modifiedAt"])
        assert INSTANT.fullmatch(entity["powerState"]["createdAt"])
        assert entity["powerState"]["modifiedAt"] >= entity["powerState"]["createdAt"]


async def test_lang(client: httpx.AsyncClient, receiver: Receiver) -> None:
    await subscribe(client, subscription(receiver.url, lang="en"))
    await create(client, lamp(1, name={"type": "LanguageProperty",
                                       "languageMap": {"ro": "Lampă", "en": "Lamp"}}))
    await receiver.wait_for(1)
    (entity,) = data(receiver)
    # Clause 4.15: a LanguageProperty is notified as a Property in the language asked for.
    assert entity["name"] == {"type": "Property", "value": "Lamp", "lang": "en"}


# -- endpoint: accept, @context, receiverInfo (clauses 5.2.15, 6.3.5) --------------------------

async def _hosted(client: httpx.AsyncClient, server: TestServer) -> str:
    hosted = await client.post("/ngsi-ld/v1/jsonldContexts", json={"@context": LIGHTING})
    assert hosted.status_code == 201, hosted.text
    return f"http://127.0.0.1:{server.port}{hosted.headers['Location']}"


def _lighting_terms(entity: dict[str, Any]) -> None:
    assert entity["type"] == "Streetlight"
    assert entity["powerState"] == {"type": "Property", "value": "on"}
    assert "dimmingLevel" in entity  # a core (default vocabulary) term


@pytest.mark.parametrize("accept", ["application/json", "application/ld+json"])
async def test_accept_and_context(client: httpx.AsyncClient, server: TestServer,
                                  receiver: Receiver, accept: str) -> None:
    ctx_url = await _hosted(client, server)
    link = {"Link": f"<{ctx_url}>; {CONTEXT_REL}"}
    await subscribe(client, subscription(receiver.url, endpoint={"accept": accept}),
                    headers=link)
    await create(client, lamp(1), headers=link)
    await receiver.wait_for(1)
    (got,) = receiver.received
    assert got.headers["Content-Type"] == accept
    if accept == "application/json":
        assert got.headers["Link"] == f"<{ctx_url}>; {CONTEXT_REL}"
        assert "@context" not in got.body
    else:
        assert "Link" not in got.headers
        assert got.body["@context"] == [ctx_url, CORE]
    # The entity was written with the same terms: they come back compacted.
    _lighting_terms(got.body["data"][0])


async def test_context_of_another_requester(client: httpx.AsyncClient, server: TestServer,
                                            receiver: Receiver) -> None:
    link = {"Link": f"<{await _hosted(client, server)}>; {CONTEXT_REL}"}
    # The subscription speaks the core context only: the lighting terms arrive as IRIs.
    await subscribe(client, subscription(receiver.url,
                                         entities=[{"type": LIGHTING["Streetlight"]}]))
    await create(client, lamp(1), headers=link)
    await receiver.wait_for(1)
    (entity,) = data(receiver)
    assert entity["type"] == LIGHTING["Streetlight"]
    assert LIGHTING["powerState"] in entity and "powerState" not in entity


async def test_inline_context_is_hosted_for_the_link(client: httpx.AsyncClient,
                                                     receiver: Receiver) -> None:
    body = {**subscription(receiver.url), "@context": [LIGHTING, CORE]}
    sub_id_of(await client.post(f"{SUBS}", json=body, headers=LD))
    await create(client, {**lamp(1), "@context": [LIGHTING, CORE]}, headers=LD)
    await receiver.wait_for(1)
    (got,) = receiver.received
    _lighting_terms(got.body["data"][0])
    # An inline @context has no URL of its own: the broker hosts a copy and links to it.
    match = re.fullmatch(r"<[^>]*(/ngsi-ld/v1/jsonldContexts/[^>]+)>; " + re.escape(CONTEXT_REL),
                         got.headers["Link"])
    assert match, got.headers["Link"]
    hosted = await client.get(match[1])
    assert hosted.status_code == 200, hosted.text
    assert LIGHTING in hosted.json()["@context"] or hosted.json()["@context"] == LIGHTING


async def test_receiver_info_headers(client: httpx.AsyncClient, receiver: Receiver) -> None:
    await subscribe(client, subscription(receiver.url, endpoint={"receiverInfo": [
        {"key": "Authorization", "value": "Bearer dispatch-centre"},
        {"key": "X-City", "value": "craiova"}]}))
    await create(client, lamp(1))
    await receiver.wait_for(1)
    headers = receiver.received[0].headers
    assert headers["Authorization"] == "Bearer dispatch-centre"
    assert headers["X-City"] == "craiova"


async def test_tenant_header(client: httpx.AsyncClient, receiver: Receiver) -> None:
    craiova = {"NGSILD-Tenant": "craiova"}
    sub_id = await subscribe(client, subscription(receiver.url), headers=craiova)
    await create(client, lamp(1))  # the default tenant: not this subscription's
    await create(client, lamp(2), headers={"NGSILD-Tenant": "cluj"})
    await create(client, lamp(3), headers=craiova)
    await quiet(receiver, 1)
    (got,) = receiver.received
    assert got.headers["NGSILD-Tenant"] == "craiova"
    assert [e["id"] for e in got.body["data"]] == [lamp_id(3)]
    assert (await delivered(client, sub_id, headers=craiova))["notification"]["timesSent"] == 1


# -- batches: one notification per write (clause 5.3.1 data holds several entities) -----------

async def test_batch_is_one_notification(client: httpx.AsyncClient, receiver: Receiver) -> None:
    await subscribe(client, subscription(receiver.url))
    created = await client.post(OPS + "/create", json=[*(lamp(n) for n in range(1, 6)), SPOT])
    assert created.status_code == 201, created.text
    await receiver.wait_for(1)
    assert sorted(e["id"] for e in receiver.received[0].body["data"]) == [
        lamp_id(n) for n in range(1, 6)]
    updated = await client.post(OPS + "/update", json=[
        {"id": lamp_id(n), "type": "Streetlight", **off()} for n in (1, 2, 3)])
    assert updated.status_code == 204, updated.text
    await quiet(receiver, 2)
    second = receiver.received[1].body["data"]
    assert sorted(e["id"] for e in second) == [lamp_id(n) for n in (1, 2, 3)]
    assert {e["powerState"]["value"] for e in second} == {"off"}


# -- time: throttling, periodic, expiry, pausing ------------------------------------------------

async def test_throttling_holds_back_not_drops(client: httpx.AsyncClient,
                                               receiver: Receiver) -> None:
    await subscribe(client, subscription(receiver.url, throttling=1))
    await create(client, lamp(1, level=0.1))
    await receiver.wait_for(1)
    await patch_attrs(client, lamp_id(1), level(0.2))
    await patch_attrs(client, lamp_id(1), level(0.3))
    await receiver.wait_for(3, timeout=6)
    times = sorted(epoch(r.body["notifiedAt"]) for r in receiver.received)
    # Clause 5.2.12: no notification before `throttling` seconds since the last one; this
    # broker sends the held-back ones then, one per window, so no change is lost.
    assert times[1] - times[0] >= 0.999 and times[2] - times[1] >= 0.999, times
    assert sorted(e["dimmingLevel"]["value"] for e in data(receiver)) == [0.1, 0.2, 0.3]


async def test_periodic_time_interval(client: httpx.AsyncClient, receiver: Receiver) -> None:
    await create(client, lamp(1))
    await create(client, lamp(2))
    await create(client, SPOT)
    sub_id = await subscribe(client, subscription(
        receiver.url, timeInterval=1, q='powerState=="on"',
        notification={"format": "keyValues", "attributes": ["powerState"]}))
    await receiver.wait_for(2, timeout=6)
    first, second = receiver.received[:2]
    both = [{"id": lamp_id(n), "type": "Streetlight", "powerState": "on"} for n in (1, 2)]
    for got in (first, second):
        assert got.body["subscriptionId"] == sub_id
        assert sorted(got.body["data"], key=lambda e: e["id"]) == both
    assert first.body["id"] != second.body["id"]
    assert epoch(second.body["notifiedAt"]) - epoch(first.body["notifiedAt"]) >= 0.9
    # A change fires no notification of its own; the next tick reports what matches then.
    await patch_attrs(client, lamp_id(1), off())

    async def only_the_second() -> bool:
        return [e["id"] for e in receiver.received[-1].body["data"]] == [lamp_id(2)]
    await until(only_the_second, timeout=4)


async def test_expired_sends_nothing(client: httpx.AsyncClient, receiver: Receiver) -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=0.5)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    sub_id = await subscribe(client, subscription(receiver.url, expiresAt=soon))

    async def expired() -> bool:
        return (await read_sub(client, sub_id))["status"] == "expired"
    await until(expired, timeout=3)
    await create(client, lamp(1))
    await asyncio.sleep(QUIET)
    assert receiver.received == []
    assert (await read_sub(client, sub_id))["notification"]["timesSent"] == 0


async def test_paused_sends_nothing_until_resumed(client: httpx.AsyncClient,
                                                  receiver: Receiver) -> None:
    sub_id = await subscribe(client, subscription(receiver.url, isActive=False))
    await create(client, lamp(1))
    await asyncio.sleep(QUIET)
    assert receiver.received == []
    # Resumed, with a new format: the next change is notified, the one made meanwhile is not.
    resumed = await client.patch(f"{SUBS}/{sub_id}", json={
        "isActive": True, "notification": {"format": "keyValues"}})
    assert resumed.status_code == 204, resumed.text
    await patch_attrs(client, lamp_id(1), off())
    await quiet(receiver, 1)
    (entity,) = data(receiver)
    assert entity["powerState"] == "off"


async def test_deleted_subscription_sends_nothing(client: httpx.AsyncClient,
                                                  receiver: Receiver) -> None:
    sub_id = await subscribe(client, subscription(receiver.url))
    assert (await client.delete(f"{SUBS}/{sub_id}")).status_code == 204
    await create(client, lamp(1))
    await asyncio.sleep(QUIET)
    assert receiver.received == []


# -- at least once: failures, retries, and the read-only members --------------------------------

async def test_retried_after_500_with_the_same_id(client: httpx.AsyncClient,
                                                  receiver: Receiver) -> None:
    async def fail_first(request: web.Request) -> web.StreamResponse:
        await receiver.record(request)
        return web.Response(status=500 if len(receiver.received) == 1 else 200)
    receiver.behave = fail_first
    sub_id = await subscribe(client, subscription(receiver.url))
    await create(client, lamp(1))
    await receiver.wait_for(2, timeout=6)
    first, again = receiver.received[:2]
    assert again.body["id"] == first.body["id"]  # receivers drop duplicates by id
    assert again.body["data"] == first.body["data"]
    state = (await delivered(client, sub_id))["notification"]
    assert state["timesSent"] == 1 and state["timesFailed"] == 1
    assert state["lastFailure"] < state["lastSuccess"] == state["lastNotification"]
    assert state["status"] == "ok"
    await asyncio.sleep(QUIET)
    assert len(receiver.received) == 2


async def test_refused_notification_marks_failed(client: httpx.AsyncClient,
                                                 receiver: Receiver) -> None:
    async def refuse_first(request: web.Request) -> web.StreamResponse:
        await receiver.record(request)
        return web.Response(status=400 if len(receiver.received) == 1 else 200)
    receiver.behave = refuse_first
    sub_id = await subscribe(client, subscription(receiver.url))
    await create(client, lamp(1))

    async def failed() -> dict[str, Any] | None:
        state: dict[str, Any] = (await read_sub(client, sub_id))["notification"]
        return state if state.get("status") == "failed" else None
    state = await until(failed)
    # A 4xx is not retried (http_sender.classify): failed for good.
    assert state["timesFailed"] == 1 and state["timesSent"] == 0
    assert state["lastFailure"] == state["lastNotification"]
    assert "lastSuccess" not in state
    await asyncio.sleep(QUIET)
    assert len(receiver.received) == 1
    # The next notification succeeds: the status is the last attempt's.
    await patch_attrs(client, lamp_id(1), off())
    after = (await delivered(client, sub_id))["notification"]
    assert after["status"] == "ok" and after["timesFailed"] == 1
    assert after["lastSuccess"] > after["lastFailure"]


# -- MQTT (the MQTT binding: topic from the URI path, notifierInfo, metadata + body) -----------

@pytest.mark.parametrize("version", ["mqtt3.1.1", "mqtt5.0"])
@pytest.mark.parametrize("qos", [0, 1])
async def test_mqtt_delivery(client: httpx.AsyncClient, mosquitto: str, version: str,
                             qos: int) -> None:
    async with mqtt_listener(mosquitto, "streetlights", version) as listener:
        sub_id = await subscribe(client, subscription(
            f"mqtt://{mosquitto}/{listener.topic}",
            endpoint={"notifierInfo": [{"key": "MQTT-Version", "value": version},
                                       {"key": "MQTT-QoS", "value": str(qos)}],
                      "receiverInfo": [{"key": "X-City", "value": "craiova"}]}))
        await create(client, lamp(1))
        message, payload = await listener.next()
        assert str(message.topic) == listener.topic
        assert message.qos == qos
        if version == "mqtt5.0":
            assert message.properties is not None
            assert getattr(message.properties, "ContentType", None) == "application/json"
        assert set(payload) == {"metadata", "body"}
        metadata = payload["metadata"]
        assert metadata["Content-Type"] == "application/json"
        assert metadata["Link"] == f"<{CORE}>; {CONTEXT_REL}"
        assert metadata["X-City"] == "craiova"
        body = payload["body"]
        assert NOTIFICATION_ID.fullmatch(body["id"]) and body["type"] == "Notification"
        assert body["subscriptionId"] == sub_id and INSTANT.fullmatch(body["notifiedAt"])
        assert body["data"] == [lamp(1)]
        await listener.nothing()
    state = (await delivered(client, sub_id))["notification"]
    assert state["status"] == "ok" and state["timesSent"] == 1


async def test_mqtt_tenant_ld_json_and_batch(client: httpx.AsyncClient, mosquitto: str) -> None:
    craiova = {"NGSILD-Tenant": "craiova"}
    async with mqtt_listener(mosquitto, "tenant") as listener:
        await subscribe(client, subscription(
            f"mqtt://{mosquitto}/{listener.topic}", notification={"format": "keyValues"},
            endpoint={"accept": "application/ld+json"}), headers=craiova)
        await create(client, lamp(9))  # the default tenant: nothing
        created = await client.post(OPS + "/create", json=[lamp(1), lamp(2)], headers=craiova)
        assert created.status_code == 201, created.text
        _, payload = await listener.next()
        assert payload["metadata"]["NGSILD-Tenant"] == "craiova"
        assert payload["metadata"]["Content-Type"] == "application/ld+json"
        assert "Link" not in payload["metadata"]
        body = payload["body"]
        assert body["@context"] == CORE
        assert sorted((e["id"], e["powerState"]) for e in body["data"]) == [
            (lamp_id(1), "on"), (lamp_id(2), "on")]
        await listener.nothing()


async def test_mqtt_topic_from_the_path(client: httpx.AsyncClient, mosquitto: str) -> None:
    async with mqtt_listener(mosquitto, "a") as first, mqtt_listener(mosquitto, "b") as second:
        await subscribe(client, subscription(f"mqtt://{mosquitto}/{first.topic}",
                                             entities=[{"type": "Streetlight"}]))
        await subscribe(client, subscription(f"mqtt://{mosquitto}/{second.topic}",
                                             entities=[{"type": "ParkingSpot"}]))
        await create(client, SPOT)
        message, payload = await second.next()
        assert str(message.topic) == second.topic
        assert payload["body"]["data"][0]["id"] == "urn:ngsi-ld:ParkingSpot:p1"
        await first.nothing()


# -- more writes: merge, replace, batch delete and upsert, tenants writing at once --------------

async def test_merge_and_replace_delete_attributes(client: httpx.AsyncClient,
                                                   receiver: Receiver) -> None:
    await subscribe(client, subscription(receiver.url, notificationTrigger=["attributeDeleted"]))
    await create(client, lamp(1, fault={"type": "Property", "value": "flicker"}))
    url = f"{ENTITIES}/{lamp_id(1)}"
    # Merge (clause 5.6.17): the NGSI-LD Null removes an attribute.
    merged = await client.patch(url, json={"fault": NULL, **off()})
    assert merged.status_code == 204, merged.text
    await receiver.wait_for(1)
    (first,) = data(receiver)
    assert first["fault"] == {"type": "Property", "value": NULL}
    assert first["powerState"]["value"] == "off"
    # Replace (clause 5.6.18): attributes left out are deleted.
    replaced = await client.put(url, json={"type": "Streetlight", **off()})
    assert replaced.status_code == 204, replaced.text
    await quiet(receiver, 2)
    second = data(receiver)[1]
    for name in ("dimmingLevel", "location", "refStreetlightGroup"):
        assert name in second, name
    assert second["dimmingLevel"]["value"] == NULL
    assert second["refStreetlightGroup"]["object"] == NULL


async def test_batch_delete_and_upsert(client: httpx.AsyncClient) -> None:
    async with serving_receiver() as created, serving_receiver() as deleted:
        await subscribe(client, subscription(created.url, notificationTrigger=["entityCreated"]))
        await subscribe(client, subscription(deleted.url, notificationTrigger=["entityDeleted"],
                                             notification={"attributes": ["powerState"]}))
        upserted = await client.post(OPS + "/upsert", json=[lamp(n) for n in (1, 2, 3)])
        assert upserted.status_code == 201, upserted.text
        await created.wait_for(1)
        assert sorted(e["id"] for e in data(created)) == [lamp_id(n) for n in (1, 2, 3)]
        removed = await client.post(OPS + "/delete", json=[lamp_id(1), lamp_id(2)])
        assert removed.status_code == 204, removed.text
        await quiet(deleted, 1)
        gone = data(deleted)
        assert sorted(e["id"] for e in gone) == [lamp_id(1), lamp_id(2)]
        for entity in gone:  # notification.attributes applies to a deleted entity too
            assert set(entity) == {"id", "type", "deletedAt", "powerState"}
        assert len(created.received) == 1


async def test_tenants_writing_at_once_stay_apart(client: httpx.AsyncClient) -> None:
    # Subscription ids are unique per tenant only: the same id in two tenants.
    same = "urn:ngsi-ld:Subscription:same-in-both"
    async with serving_receiver() as craiova, serving_receiver() as cluj:
        for tenant, rec in (("craiova", craiova), ("cluj", cluj)):
            await subscribe(client, subscription(rec.url, id=same),
                            headers={"NGSILD-Tenant": tenant})
        writes = [create(client, lamp(n), headers={"NGSILD-Tenant": tenant})
                  for n in range(1, 11) for tenant in ("craiova", "cluj")]
        await asyncio.gather(*writes)  # concurrent writes share the store's write groups
        for tenant, rec in (("craiova", craiova), ("cluj", cluj)):
            await until(functools.partial(_all_of, rec, 10))
            assert {r.headers["NGSILD-Tenant"] for r in rec.received} == {tenant}
            assert sorted(e["id"] for e in data(rec)) == [lamp_id(n) for n in range(1, 11)]


async def _all_of(receiver: Receiver, count: int) -> bool:
    return len(data(receiver)) >= count


# -- the subscription's own @context (jsonldContext, clause 5.2.12) ----------------------------

async def test_jsonld_context_member(client: httpx.AsyncClient, server: TestServer,
                                     receiver: Receiver) -> None:
    ctx_url = await _hosted(client, server)
    # Made in the core context, notified in the one jsonldContext names.
    await subscribe(client, subscription(receiver.url, jsonldContext=ctx_url,
                                         entities=[{"type": LIGHTING["Streetlight"]}]))
    await create(client, lamp(1), headers={"Link": f"<{ctx_url}>; {CONTEXT_REL}"})
    await receiver.wait_for(1)
    (got,) = receiver.received
    assert got.headers["Link"] == f"<{ctx_url}>; {CONTEXT_REL}"
    _lighting_terms(got.body["data"][0])


# -- endpoint timing: timeout, cooldown, Retry-After (clause 5.2.15) ---------------------------

async def test_endpoint_timeout_is_a_failed_attempt(client: httpx.AsyncClient,
                                                    receiver: Receiver) -> None:
    async def slow_first(request: web.Request) -> web.StreamResponse:
        await receiver.record(request)
        if len(receiver.received) == 1:
            await asyncio.sleep(3.0)  # longer than the endpoint's timeout
        return web.Response(status=200)
    receiver.behave = slow_first
    # 1 s, not less: a loaded CI machine once took over 300 ms to deliver the prompt retry too
    sub_id = await subscribe(client, subscription(receiver.url, endpoint={"timeout": 1000}))
    await create(client, lamp(1))
    await receiver.wait_for(2, timeout=10)
    assert receiver.received[0].body["id"] == receiver.received[1].body["id"]
    state = (await delivered(client, sub_id))["notification"]
    assert state["timesFailed"] == 1 and state["status"] == "ok"


@pytest.mark.parametrize("wait", ["cooldown", "Retry-After"])
async def test_retry_waits(client: httpx.AsyncClient, receiver: Receiver, wait: str) -> None:
    seen: list[float] = []

    async def busy_first(request: web.Request) -> web.StreamResponse:
        seen.append(asyncio.get_running_loop().time())
        await receiver.record(request)
        if len(receiver.received) == 1:
            return web.Response(status=503, headers={"Retry-After": "2"}
                                if wait == "Retry-After" else {})
        return web.Response(status=200)
    receiver.behave = busy_first
    endpoint = {"cooldown": 2000} if wait == "cooldown" else {}
    await subscribe(client, subscription(receiver.url, endpoint=endpoint))
    await create(client, lamp(1))
    await receiver.wait_for(2, timeout=6)
    # The first retry after a failure would come after 0.5-1 s of backoff: this one waited.
    assert seen[1] - seen[0] >= 1.9, seen


async def test_periodic_paused_sends_nothing(client: httpx.AsyncClient) -> None:
    await create(client, lamp(1))
    async with serving_receiver() as paused, serving_receiver() as witness:
        await subscribe(client, subscription(paused.url, timeInterval=1, isActive=False))
        await subscribe(client, subscription(witness.url, timeInterval=1))
        # Both are looked at on each tick: by the active one's second notification, what a
        # first tick owed the paused one would have arrived too.
        await witness.wait_for(2, timeout=5)
        assert paused.received == []


async def test_periodic_ticks_read_subscriptions_only_when_they_change(
        client: httpx.AsyncClient, server: TestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each second's tick reads the subscriptions' version, and every subscription only when
    that changed: a pause made after ticking began is still seen at the next tick."""
    from broker.http.state import BROKER

    store = server.app[BROKER].store
    reads = []
    every = store.subscriptions

    async def counted() -> Any:
        reads.append(1)
        return await every()
    monkeypatch.setattr(store, "subscriptions", counted)  # the real store, its reads counted
    await create(client, lamp(1))
    async with serving_receiver() as receiver:
        sub_id = await subscribe(client, subscription(receiver.url, timeInterval=1))
        await receiver.wait_for(1, timeout=5)
        before = len(reads)
        await receiver.wait_for(3, timeout=8)
        assert len(reads) == before  # two more ticks at least, and no re-read
        answer = await client.patch(f"/ngsi-ld/v1/subscriptions/{sub_id}",
                                    json={"isActive": False})
        assert answer.status_code == 204, answer.text
        await asyncio.sleep(2.5)  # what a tick before the pause owed has arrived by now
        seen = len(receiver.received)
        await asyncio.sleep(2.5)  # an active 1 s subscription would notify twice meanwhile
        assert len(receiver.received) == seen  # paused: the change was read
        assert len(reads) == before + 1


async def test_two_replicas_tick_a_periodic_subscription_once(
        client: httpx.AsyncClient, settings: Settings) -> None:
    """A second broker on the same database ticks too; each tick is won by one of them (the
    loser reads the winner's time back), so a 1 s interval notifies about once a second."""
    from broker.app import create_app

    other = TestServer(create_app(settings), host="127.0.0.1")
    await other.start_server()
    try:
        await create(client, lamp(1))
        async with serving_receiver() as receiver:
            await subscribe(client, subscription(receiver.url, timeInterval=1))
            await receiver.wait_for(4, timeout=10)
        # Both replicas tick each second; had both won a tick, two notifications would come
        # within milliseconds of each other. A slow machine only makes the gaps longer.
        times = sorted(epoch(r.body["notifiedAt"]) for r in receiver.received)
        assert all(b - a >= 0.5 for a, b in itertools.pairwise(times)), times
        ids = [r.body["id"] for r in receiver.received]
        assert len(set(ids)) == len(ids)
    finally:
        await other.close()


async def test_deleted_entities_filtered_as_they_were(client: httpx.AsyncClient,
                                                      receiver: Receiver) -> None:
    await subscribe(client, subscription(receiver.url, notificationTrigger=["entityDeleted"],
                                         q="dimmingLevel>0.5"))
    await create(client, lamp(1, level=0.3))
    await create(client, lamp(2, level=0.9))
    for n in (1, 2):
        assert (await client.delete(f"{ENTITIES}/{lamp_id(n)}")).status_code == 204
    await quiet(receiver, 1)
    assert [e["id"] for e in data(receiver)] == [lamp_id(2)]


async def test_ld_json_inline_context_in_the_body(client: httpx.AsyncClient,
                                                  receiver: Receiver) -> None:
    body = {**subscription(receiver.url, endpoint={"accept": "application/ld+json"}),
            "@context": [LIGHTING, CORE]}
    sub_id_of(await client.post(SUBS, json=body, headers=LD))
    await create(client, {**lamp(1), "@context": [LIGHTING, CORE]}, headers=LD)
    await receiver.wait_for(1)
    (got,) = receiver.received
    assert got.headers["Content-Type"] == "application/ld+json"
    assert got.body["@context"] == [LIGHTING, CORE]
    _lighting_terms(got.body["data"][0])


async def test_show_changes_with_lang(client: httpx.AsyncClient, receiver: Receiver) -> None:
    await subscribe(client, subscription(receiver.url, lang="en",
                                         notificationTrigger=["attributeUpdated"],
                                         notification={"showChanges": True}))
    await create(client, lamp(1, name={"type": "LanguageProperty",
                                       "languageMap": {"ro": "Lampă", "en": "Lamp"}}))
    await patch_attrs(client, lamp_id(1), {"name": {
        "type": "LanguageProperty", "languageMap": {"ro": "Felinar", "en": "Street lamp"}}})
    await quiet(receiver, 1)
    (entity,) = data(receiver)
    assert entity["name"] == {"type": "Property", "value": "Street lamp", "lang": "en",
                              "previousValue": "Lamp"}


async def test_concurrent_updates_all_notified(client: httpx.AsyncClient,
                                               receiver: Receiver) -> None:
    await subscribe(client, subscription(receiver.url, notificationTrigger=["attributeUpdated"]))
    await create(client, lamp(1))
    levels = [n / 100 for n in range(30)]
    await asyncio.gather(*(patch_attrs(client, lamp_id(1), level(v)) for v in levels))
    # Writes committed together may share a notification; every change is in one of them.
    await until(functools.partial(_all_of, receiver, len(levels)))
    assert sorted(e["dimmingLevel"]["value"] for e in data(receiver)) == levels
    assert len({r.body["id"] for r in receiver.received}) == len(receiver.received)


# -- subscriptions changed while in use ---------------------------------------------------------

async def test_updated_selectors_apply_to_the_next_write(client: httpx.AsyncClient,
                                                         receiver: Receiver) -> None:
    sub_id = await subscribe(client, subscription(receiver.url))
    await create(client, lamp(1))
    await receiver.wait_for(1)
    patched = await client.patch(f"{SUBS}/{sub_id}", json={
        "entities": [{"type": "ParkingSpot"}], "notification": {"attributes": ["occupancy"]}})
    assert patched.status_code == 204, patched.text
    await create(client, lamp(2))
    await create(client, SPOT)
    await quiet(receiver, 2)
    assert data(receiver)[1] == {"id": SPOT["id"], "type": "ParkingSpot",
                                 "occupancy": SPOT["occupancy"]}


async def test_deleted_subscription_stops_its_retries(client: httpx.AsyncClient,
                                                      receiver: Receiver) -> None:
    async def always_down(request: web.Request) -> web.StreamResponse:
        await receiver.record(request)
        return web.Response(status=503)
    receiver.behave = always_down
    sub_id = await subscribe(client, subscription(receiver.url))
    await create(client, lamp(1))
    await receiver.wait_for(1)
    assert (await client.delete(f"{SUBS}/{sub_id}")).status_code == 204
    seen = len(receiver.received)
    await asyncio.sleep(1.5)  # longer than the first retry's backoff (0.5-1 s)
    assert len(receiver.received) == seen


# -- receivers that cannot be reached -----------------------------------------------------------

def _closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("scheme", ["http", "mqtt"])
async def test_unreachable_receiver_counts_failures(client: httpx.AsyncClient,
                                                    scheme: str) -> None:
    uri = f"{scheme}://127.0.0.1:{_closed_port()}/city/lights"
    sub_id = await subscribe(client, subscription(uri))
    await create(client, lamp(1))

    async def failed() -> dict[str, Any] | None:
        state: dict[str, Any] = (await read_sub(client, sub_id))["notification"]
        return state if state.get("status") == "failed" else None
    state = await until(failed)
    assert state["timesFailed"] >= 1 and state["timesSent"] == 0
    assert state["lastFailure"] == state["lastNotification"]


async def test_redirect_is_not_followed(client: httpx.AsyncClient) -> None:
    async with serving_receiver() as elsewhere, serving_receiver() as redirecting:
        async def redirect(request: web.Request) -> web.StreamResponse:
            await redirecting.record(request)
            return web.Response(status=307, headers={"Location": elsewhere.url + "/stolen"})
        redirecting.behave = redirect
        sub_id = await subscribe(client, subscription(redirecting.url, endpoint={
            "receiverInfo": [{"key": "Authorization", "value": "Bearer secret"}]}))
        await create(client, lamp(1))

        async def failed() -> bool:
            return (await read_sub(client, sub_id))["notification"].get("status") == "failed"
        await until(failed)
        await asyncio.sleep(QUIET)
        assert len(redirecting.received) == 1 and elsewhere.received == []


DELETED: dict[str, dict[str, Any]] = {
    "normalized": {"powerState": {"type": "Property", "value": NULL},
                   "refStreetlightGroup": {"type": "Relationship", "object": NULL},
                   "name": {"type": "LanguageProperty", "languageMap": {"@none": NULL}}},
    "keyValues": {"powerState": NULL, "refStreetlightGroup": NULL,
                  "name": {"@none": NULL}},
    "concise": {"powerState": {"value": NULL}, "refStreetlightGroup": {"object": NULL},
                "name": {"languageMap": {"@none": NULL}}},
}


@pytest.mark.parametrize("fmt", DELETED)
async def test_deleted_entity_in_each_format(client: httpx.AsyncClient, receiver: Receiver,
                                             fmt: str) -> None:
    await subscribe(client, subscription(receiver.url, notificationTrigger=["entityDeleted"],
                                         notification={"format": fmt}))
    await create(client, lamp(1, name={"type": "LanguageProperty",
                                       "languageMap": {"ro": "Lampă", "en": "Lamp"}}))
    assert (await client.delete(f"{ENTITIES}/{lamp_id(1)}")).status_code == 204
    await receiver.wait_for(1)
    (entity,) = data(receiver)
    # Clause 5.2.1: deleted elements are notified with the NGSI-LD Null (a languageMap's
    # {"@none": "urn:ngsi-ld:null"}).
    for name, expected in DELETED[fmt].items():
        assert entity[name] == expected, name


async def test_watched_attributes_narrow_entity_triggers(client: httpx.AsyncClient,
                                                         receiver: Receiver) -> None:
    await subscribe(client, subscription(
        receiver.url, watchedAttributes=["fault"], notificationTrigger=[
            "entityCreated", "entityDeleted", "entityUpdated"],
        notification={"attributes": ["powerState"]}))
    await create(client, lamp(1))  # no fault: not created as far as this one is concerned
    await create(client, lamp(2, fault={"type": "Property", "value": "flicker"}))
    await patch_attrs(client, lamp_id(1), off())  # not watched
    await patch_attrs(client, lamp_id(2), {"fault": {"type": "Property", "value": "dark"}})
    for n in (1, 2):
        assert (await client.delete(f"{ENTITIES}/{lamp_id(n)}")).status_code == 204
    await quiet(receiver, 3)
    steps = sorted(("deleted" if "deletedAt" in e else "changed", e["id"])
                   for e in data(receiver))
    assert steps == [("changed", lamp_id(2)), ("changed", lamp_id(2)),
                     ("deleted", lamp_id(2))]
    # notification.attributes picks what is shown, whatever the change was to.
    for entity in data(receiver):
        assert set(entity) - {"deletedAt"} == {"id", "type", "powerState"}


async def test_endpoint_query_string_is_kept(client: httpx.AsyncClient,
                                             receiver: Receiver) -> None:
    queries: list[str] = []

    async def keep_query(request: web.Request) -> web.StreamResponse:
        queries.append(request.rel_url.raw_query_string)
        await receiver.record(request)
        return web.Response(status=204)  # any 2xx is a delivery
    receiver.behave = keep_query
    sub_id = await subscribe(client, subscription(receiver.url + "/hook?city=craiova&k=a%2Fb"))
    await create(client, lamp(1))
    await receiver.wait_for(1)
    assert receiver.received[0].path == "/hook" and queries == ["city=craiova&k=a%2Fb"]
    assert (await delivered(client, sub_id))["notification"]["status"] == "ok"


async def test_large_batch_split_in_notifications(client: httpx.AsyncClient,
                                                  receiver: Receiver) -> None:
    await subscribe(client, subscription(receiver.url, notificationTrigger=["entityCreated"]))
    small: list[dict[str, Any]] = [{"id": lamp_id(n), "type": "Streetlight",
                                    "powerState": {"type": "Property", "value": "on"}}
                                   for n in range(1001)]
    created = await client.post(OPS + "/create", json=small)
    assert created.status_code == 201, created.text
    await quiet(receiver, 2)
    # A notification carries at most 1000 entities (plan.MAX_ENTITIES_PER_NOTIFICATION).
    assert sorted(len(r.body["data"]) for r in receiver.received) == [1, 1000]
    assert sorted(e["id"] for e in data(receiver)) == sorted(e["id"] for e in small)


@pytest.mark.parametrize("other", ["attributeUpdated", "attributeCreated"])
async def test_deletion_kept_when_the_write_also_fires_another_trigger(
        client: httpx.AsyncClient, receiver: Receiver, other: str) -> None:
    await subscribe(client, subscription(receiver.url,
                                         notificationTrigger=[other, "attributeDeleted"]))
    await create(client, lamp(1, fault={"type": "Property", "value": "flicker"}))
    if other == "attributeCreated":
        await receiver.wait_for(1)  # the creation itself
        receiver.received.clear()
    # One merge (clause 5.6.17) deletes fault and updates powerState or adds status.
    change = off() if other == "attributeUpdated" else {
        "status": {"type": "Property", "value": "ok"}}
    merged = await client.patch(f"{ENTITIES}/{lamp_id(1)}", json={"fault": NULL, **change})
    assert merged.status_code == 204, merged.text
    await receiver.wait_for(1)
    (entity,) = data(receiver)
    assert entity["fault"] == {"type": "Property", "value": NULL}


async def test_hanging_receiver_delays_no_other(client: httpx.AsyncClient) -> None:
    release = asyncio.Event()
    async with serving_receiver() as hanging, serving_receiver() as healthy:
        async def hang(request: web.Request) -> web.StreamResponse:
            await release.wait()
            await hanging.record(request)
            return web.Response(status=200)
        hanging.behave = hang
        try:
            await subscribe(client, subscription(hanging.url))
            await subscribe(client, subscription(healthy.url))
            for n in range(1, 11):
                await create(client, lamp(n))
            # The healthy receiver's lane goes on while the other's deliveries hang.
            await healthy.wait_for(10, timeout=3)
            assert hanging.received == []
        finally:
            release.set()
        await hanging.wait_for(10, timeout=10)  # and its backlog arrives once it answers
        assert sorted(e["id"] for e in data(hanging)) == [lamp_id(n) for n in range(1, 11)]


async def test_periodic_in_a_tenant(client: httpx.AsyncClient) -> None:
    craiova = {"NGSILD-Tenant": "craiova"}
    await create(client, lamp(1), headers=craiova)
    await create(client, lamp(2))  # the default tenant's: never in craiova's notifications
    async with serving_receiver() as lights, serving_receiver() as benches:
        await subscribe(client, subscription(benches.url, timeInterval=1,
                                             entities=[{"type": "Bench"}]), headers=craiova)
        await subscribe(client, subscription(lights.url, timeInterval=1), headers=craiova)
        await lights.wait_for(2, timeout=5)
        for got in lights.received:
            assert got.headers["NGSILD-Tenant"] == "craiova"
            assert [e["id"] for e in got.body["data"]] == [lamp_id(1)]
        # Clause 5.3.1: data holds at least one entity; with none matching nothing is sent.
        assert benches.received == []


async def test_sys_attrs_of_a_deleted_attribute(client: httpx.AsyncClient,
                                                receiver: Receiver) -> None:
    await subscribe(client, subscription(receiver.url, notificationTrigger=["attributeDeleted"],
                                         notification={"sysAttrs": True,
                                                       "attributes": ["fault"]}))
    await create(client, lamp(1, fault={"type": "Property", "value": "flicker"}))
    assert (await client.delete(f"{ENTITIES}/{lamp_id(1)}/attrs/fault")).status_code == 204
    await receiver.wait_for(1)
    (entity,) = data(receiver)
    fault = entity["fault"]
    assert fault["value"] == NULL
    # deletedAt is a system member, shown with the others (clause 5.2.1).
    assert INSTANT.fullmatch(fault["deletedAt"]) and fault["deletedAt"] >= fault["modifiedAt"]
    # (deletedAt is the planner's clock at commit, not the write's own time: they may differ
    # by the milliseconds between them, so only the order is checked.)
    assert fault["deletedAt"] >= entity["modifiedAt"]
