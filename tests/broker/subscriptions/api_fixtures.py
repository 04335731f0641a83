"""Helpers of the subscription tests that drive the real API (test_subscriptions_api.py and
test_subscriptions_delivery.py): payloads, the calls they repeat, and waiting on the broker's
read-only members or on an MQTT listener instead of sleeping."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import unquote

import aiomqtt
import httpx
import orjson

SUBS = "/ngsi-ld/v1/subscriptions"
ENTITIES = "/ngsi-ld/v1/entities"
OPS = "/ngsi-ld/v1/entityOperations"
ERR = "https://uri.etsi.org/ngsi-ld/errors/"
LD = {"Content-Type": "application/ld+json"}
CONTEXT_REL = 'rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
NULL = "urn:ngsi-ld:null"
QUIET = 0.5  # seconds to wait when proving that nothing arrives

MQTT_VERSIONS = {"mqtt3.1.1": aiomqtt.ProtocolVersion.V311,
                 "mqtt5.0": aiomqtt.ProtocolVersion.V5}


def lamp_id(n: int) -> str:
    return f"urn:ngsi-ld:Streetlight:craiova-{n:03d}"


def lamp(n: int = 1, *, level: float = 0.8, where: tuple[float, float] = (23.7967, 44.3190),
         **extra: Any) -> dict[str, Any]:
    """A streetlight of Craiova (by default) as a client creates it."""
    return {
        "id": lamp_id(n),
        "type": "Streetlight",
        "powerState": {"type": "Property", "value": "on"},
        "dimmingLevel": {"type": "Property", "value": level},
        "location": {"type": "GeoProperty",
                     "value": {"type": "Point", "coordinates": list(where)}},
        "refStreetlightGroup": {"type": "Relationship",
                                "object": "urn:ngsi-ld:StreetlightGroup:calea-unirii"},
        **extra,
    }


def subscription(uri: str, *, notification: dict[str, Any] | None = None,
                 endpoint: dict[str, Any] | None = None, **members: Any) -> dict[str, Any]:
    """A subscription to every Streetlight notifying `uri`; `members` add or replace top-level
    members (entities=None drops it), `notification` / `endpoint` add to theirs."""
    body: dict[str, Any] = {"type": "Subscription", "entities": [{"type": "Streetlight"}]}
    body.update(members)
    body = {k: v for k, v in body.items() if v is not None}
    body["notification"] = {**(notification or {}),
                            "endpoint": {"uri": uri, **(endpoint or {})}}
    return body


def sub_id_of(response: httpx.Response) -> str:
    assert response.status_code == 201, response.text
    location = response.headers["Location"]
    assert location.startswith(SUBS + "/"), location
    return unquote(location[len(SUBS) + 1:])


async def subscribe(client: httpx.AsyncClient, body: dict[str, Any],
                    headers: dict[str, str] | None = None) -> str:
    """Create the subscription; its id."""
    return sub_id_of(await client.post(SUBS, json=body, headers=headers))


async def read_sub(client: httpx.AsyncClient, sub_id: str, **kw: Any) -> dict[str, Any]:
    response = await client.get(f"{SUBS}/{sub_id}", **kw)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def create(client: httpx.AsyncClient, entity: dict[str, Any],
                 headers: dict[str, str] | None = None) -> None:
    response = await client.post(ENTITIES, json=entity, headers=headers)
    assert response.status_code == 201, response.text


async def patch_attrs(client: httpx.AsyncClient, entity_id: str, fragment: dict[str, Any],
                      headers: dict[str, str] | None = None) -> None:
    response = await client.patch(f"{ENTITIES}/{entity_id}/attrs", json=fragment,
                                  headers=headers)
    assert response.status_code == 204, response.text


def assert_problem(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    problem: dict[str, Any] = response.json()
    assert problem["type"] == ERR + kind, problem
    assert problem["detail"]
    return problem


async def until(probe: Callable[[], Awaitable[Any]], timeout: float = 5.0,
                every: float = 0.02) -> Any:
    """Poll `probe` until it returns something truthy (e.g. a subscription's timesSent once the
    dispatcher has recorded a delivery, which it does after the receiver answered); that."""
    deadline = time.monotonic() + timeout
    while True:
        found = await probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing within {timeout} s (last: {found!r})")
        await asyncio.sleep(every)


async def delivered(client: httpx.AsyncClient, sub_id: str, times: int = 1,
                    headers: dict[str, str] | None = None) -> dict[str, Any]:
    """The subscription once its notification.timesSent has reached `times`."""
    async def probe() -> dict[str, Any] | None:
        body = await read_sub(client, sub_id, headers=headers)
        return body if body["notification"]["timesSent"] >= times else None
    found: dict[str, Any] = await until(probe)
    return found


class MqttListener:
    """A real MQTT client subscribed (QoS 1) to one topic of the local Mosquitto."""

    def __init__(self, client: aiomqtt.Client, topic: str) -> None:
        self.client = client
        self.topic = topic

    async def next(self, timeout: float = 5.0) -> tuple[aiomqtt.Message, Any]:
        """The next message and its payload as JSON."""
        message = await asyncio.wait_for(anext(self.client.messages), timeout)
        payload = message.payload
        assert isinstance(payload, (bytes, bytearray)), payload
        return message, orjson.loads(payload)

    async def nothing(self, within: float = QUIET) -> None:
        with contextlib.suppress(TimeoutError):
            message = await asyncio.wait_for(anext(self.client.messages), within)
            raise AssertionError(f"unexpected message on {message.topic}: {message.payload!r}")


@contextlib.asynccontextmanager
async def mqtt_listener(mosquitto: str, name: str, version: str = "mqtt5.0"
                        ) -> AsyncIterator[MqttListener]:
    """A listener on a topic of its own (cetate-test/<unique>/<name>)."""
    host, port = mosquitto.rsplit(":", 1)
    topic = f"cetate-test/{time.monotonic_ns()}/{name}"
    async with aiomqtt.Client(host, int(port), protocol=MQTT_VERSIONS[version]) as client:
        await client.subscribe(topic, qos=1)
        yield MqttListener(client, topic)
