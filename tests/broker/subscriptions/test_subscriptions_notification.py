"""Notification bodies and messages (clause 5.3.1, HTTP and MQTT bindings), backoff and the
time rules of subscriptions. Pure."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest

from broker.ld.core import CORE_CONTEXT_URL
from broker.ld.termmap import CORE_TERMS
from broker.subscriptions.backoff import Backoff
from broker.subscriptions.notification import (
    Outgoing,
    context_url,
    new_notification_id,
    notification_body,
    prepare,
)
from broker.subscriptions.schedule import (
    cooldown_until,
    epoch,
    expired,
    instant,
    next_periodic,
    status,
    throttle_due,
)
from broker.subscriptions.subscription import Subscription, parse_subscription

NOW = "2026-12-01T10:00:00.000Z"
CTX = "https://example.org/city/context.jsonld"
DATA = [{"id": "urn:ngsi-ld:Streetlight:1", "type": "Streetlight",
         "powerState": {"type": "Property", "value": "fault"}}]
LINK = f'<{CTX}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'


def sub(endpoint: dict[str, Any], *, context: Any = CTX, tenant: str = "",
        **members: Any) -> Subscription:
    body = {"type": "Subscription", "id": "urn:ngsi-ld:Subscription:s1",
            "entities": [{"type": "Streetlight"}], "notification": {"endpoint": endpoint},
            **members}
    return parse_subscription(body, CORE_TERMS, NOW, context=context, tenant=tenant)


def body_of(s: Subscription) -> dict[str, Any]:
    return notification_body(s, DATA, notification_id="urn:ngsi-ld:Notification:n1",
                             notified_at=NOW)


def test_notification_id_is_a_fresh_urn() -> None:
    first, second = new_notification_id(), new_notification_id()
    assert re.fullmatch(r"urn:ngsi-ld:Notification:[0-9a-f-]{36}", first)
    assert first != second


def test_body_members() -> None:
    s = sub({"uri": "http://r.example.org/n"})
    assert body_of(s) == {"id": "urn:ngsi-ld:Notification:n1", "type": "Notification",
                          "subscriptionId": "urn:ngsi-ld:Subscription:s1",
                          "notifiedAt": NOW, "data": DATA}


def test_json_carries_context_in_link() -> None:
    s = sub({"uri": "http://r.example.org/n", "receiverInfo": [
        {"key": "Authorization", "value": "Bearer t"}, {"key": "X-City", "value": "Craiova"}]},
        tenant="craiova")
    out = prepare(s, body_of(s))
    headers = dict(out.headers)
    assert headers["Content-Type"] == "application/json"
    assert headers["Link"] == LINK
    assert headers["NGSILD-Tenant"] == "craiova"
    assert headers["Authorization"] == "Bearer t" and headers["X-City"] == "Craiova"
    assert "User-Agent" in headers
    payload = orjson.loads(out.payload)
    assert "@context" not in payload and payload["id"] == "urn:ngsi-ld:Notification:n1"
    assert out.notification_id == "urn:ngsi-ld:Notification:n1"
    assert out.endpoint_key == "http://r.example.org:80"


def test_ld_json_carries_context_in_body() -> None:
    s = sub({"uri": "http://r.example.org/n", "accept": "application/ld+json"})
    out = prepare(s, body_of(s))
    headers = dict(out.headers)
    assert headers["Content-Type"] == "application/ld+json"
    assert "Link" not in headers and "NGSILD-Tenant" not in headers
    assert orjson.loads(out.payload)["@context"] == [CTX, CORE_CONTEXT_URL]


def test_default_tenant_and_core_context() -> None:
    s = sub({"uri": "http://r.example.org/n"}, context=None)
    headers = dict(prepare(s, body_of(s)).headers)
    assert CORE_CONTEXT_URL in headers["Link"] and "NGSILD-Tenant" not in headers


@pytest.mark.parametrize(("context", "jsonld", "expected"), [
    (None, None, CORE_CONTEXT_URL),
    (CTX, None, CTX),
    ([CTX, CORE_CONTEXT_URL], None, CTX),
    ([CTX, "https://example.org/other.jsonld"], None, None),
    ({"powerState": "https://example.org/powerState"}, None, None),
    ({"inline": "https://example.org/x"}, CTX, CTX),
])
def test_context_url(context: Any, jsonld: str | None, expected: str | None) -> None:
    members = {"jsonldContext": jsonld} if jsonld else {}
    s = sub({"uri": "http://r.example.org/n"}, context=context, **members)
    assert context_url(s) == expected


def test_inline_context_needs_a_hosted_link() -> None:
    s = sub({"uri": "http://r.example.org/n"}, context={"a": "https://example.org/a"})
    with pytest.raises(ValueError, match="host it"):
        prepare(s, body_of(s))
    hosted = "http://broker.example.org/ngsi-ld/v1/jsonldContexts/abc"
    assert hosted in dict(prepare(s, body_of(s), link=hosted).headers)["Link"]


def test_mqtt_message_wraps_metadata_and_body() -> None:
    s = sub({"uri": "mqtt://user:secret@broker.example.org/craiova/lights",
             "receiverInfo": [{"key": "X-City", "value": "Craiova"}],
             "notifierInfo": [{"key": "MQTT-QoS", "value": "1"},
                              {"key": "MQTT-Version", "value": "mqtt3.1.1"}]},
            tenant="craiova")
    out = prepare(s, body_of(s))
    message = orjson.loads(out.payload)
    assert set(message) == {"metadata", "body"}
    assert message["metadata"]["Content-Type"] == "application/json"
    assert message["metadata"]["Link"] == LINK
    assert message["metadata"]["NGSILD-Tenant"] == "craiova"
    assert message["metadata"]["X-City"] == "Craiova"
    assert message["body"]["data"] == DATA
    assert out.mqtt_qos == 1 and out.mqtt_version == "mqtt3.1.1"
    assert out.endpoint_key == "mqtt://broker.example.org:1883"


def test_outgoing_json_round_trip() -> None:
    s = sub({"uri": "http://r.example.org/n", "timeout": 2500, "cooldown": 10000})
    out = prepare(s, body_of(s))
    assert out.timeout == 2.5 and out.cooldown == 10.0
    again = Outgoing.from_json(orjson.loads(orjson.dumps(out.to_json())))
    assert again == out


# -- backoff ---------------------------------------------------------------------------------

def test_backoff_grows_and_caps() -> None:
    b = Backoff(base=1, factor=2, cap=60, jitter=0)
    assert [b.delay(n, 0.7) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert b.delay(10_000, 0.5) == 60


def test_backoff_jitter_bounds() -> None:
    b = Backoff(base=10, cap=10, jitter=0.5)
    assert b.delay(1, 0.0) == 5.0 and b.delay(1, 0.999999) == pytest.approx(10.0, abs=1e-4)


def test_backoff_gives_up() -> None:
    b = Backoff(give_up_after=100, max_attempts=5)
    assert not b.gives_up(1, 0, 50)
    assert b.gives_up(1, 0, 100)
    assert b.gives_up(5, 0, 1)
    assert not Backoff(give_up_after=None).gives_up(10_000, 0, 1e12)


@pytest.mark.parametrize("bad", [{"base": 0}, {"factor": 0.5}, {"cap": 0.1, "base": 1},
                                 {"jitter": 2}])
def test_backoff_rejects_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**bad)


# -- schedule --------------------------------------------------------------------------------

def test_epoch_instant_round_trip() -> None:
    assert instant(epoch(NOW)) == NOW
    assert epoch("2026-12-01T10:00:01Z") - epoch(NOW) == 1.0


def test_throttling_delays_not_drops() -> None:
    s = sub({"uri": "http://r.example.org/n"}, throttling=30)
    t = epoch(NOW)
    assert throttle_due(s, None, t) == t
    assert throttle_due(s, t - 10, t) == t + 20
    assert throttle_due(s, t - 40, t) == t
    assert throttle_due(sub({"uri": "http://r.example.org/n"}), t, t) == t


def test_periodic_and_expiry() -> None:
    t = epoch(NOW)
    s = sub({"uri": "http://r.example.org/n"}, timeInterval=60,
            expiresAt="2026-12-01T11:00:00Z")
    assert next_periodic(s, None, t) == t
    assert next_periodic(s, t, t + 1) == t + 60
    assert next_periodic(s, t, t + 600) == t + 600  # missed ticks are not replayed
    assert next_periodic(s, t, t + 3600) is None and expired(s, t + 3600)
    assert status(s, t) == "active" and status(s, t + 3600) == "expired"
    assert next_periodic(sub({"uri": "http://r.example.org/n"}), None, t) is None


def test_cooldown() -> None:
    assert cooldown_until(100.0, 5.0) == 105.0
    assert cooldown_until(100.0, None) == 100.0
