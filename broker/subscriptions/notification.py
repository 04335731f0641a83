"""The Notification (clause 5.3.1) and the message that carries it. Pure.

    body = notification_body(sub, [match.entity], notification_id=new_notification_id(),
                             notified_at=now)
    out = prepare(sub, body, context_url=url)   # an Outgoing: what an outbox row keeps

The id is made once, when the notification is recorded, and kept across every retry and
restart: a receiver that gets the same notification twice (at-least-once delivery) sees the
same id and drops the copy.

HTTP (clause 6.3.x binding): the body is the notification; with Accept application/json the
@context travels in a Link header, with application/ld+json as "@context" in the body. A
tenant's notifications carry NGSILD-Tenant; receiverInfo entries become headers.
MQTT binding: the message is {"metadata": {the same headers}, "body": notification}.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

from broker.ld.core import CORE_CONTEXT_URL, is_core_context_url
from broker.subscriptions.endpoint import (
    DEFAULT_MQTT_VERSION,
    JSON,
    JSON_LD,
    endpoint_key,
)
from broker.subscriptions.subscription import Subscription

NOTIFICATION = "Notification"
ID_PREFIX = "urn:ngsi-ld:Notification:"
TENANT_HEADER = "NGSILD-Tenant"
USER_AGENT = "cetate (NGSI-LD context broker)"
CONTEXT_REL = "http://www.w3.org/ns/json-ld#context"


def link_header(url: str) -> str:
    """The JSON-LD context Link header (JSON-LD 1.1 §6.2; clause 6.3.5)."""
    return f'<{url}>; rel="{CONTEXT_REL}"; type="{JSON_LD}"'


def new_notification_id() -> str:
    return ID_PREFIX + str(uuid.uuid4())


def notification_body(sub: Subscription, data: list[dict[str, Any]], *, notification_id: str,
                      notified_at: str) -> dict[str, Any]:
    """Clause 5.3.1: id, type, subscriptionId, notifiedAt, data (entities already compacted
    with the subscription's notification @context)."""
    return {"id": notification_id, "type": NOTIFICATION, "subscriptionId": sub.id,
            "notifiedAt": notified_at, "data": data}


def context_url(sub: Subscription) -> str | None:
    """The URL a Link header can name for the subscription's @context: jsonldContext, or the
    one URL it was made with, or the core context. None when the context is inline or a list:
    the broker then hosts it (/ngsi-ld/v1/jsonldContexts) and passes that URL to prepare."""
    ctx = sub.notification_context
    if ctx is None:
        return CORE_CONTEXT_URL
    if isinstance(ctx, str):
        return ctx
    if isinstance(ctx, list):
        urls = [c for c in ctx if not (isinstance(c, str) and is_core_context_url(c))]
        if not urls:
            return CORE_CONTEXT_URL
        if len(urls) == 1 and isinstance(urls[0], str):
            return urls[0]
    return None


def body_context(sub: Subscription) -> Any:
    """The "@context" of an application/ld+json notification: the subscription's context with
    the core one last, as in responses (clause 5.5.7)."""
    ctx = sub.notification_context
    if ctx is None:
        return CORE_CONTEXT_URL
    items = ctx if isinstance(ctx, list) else [ctx]
    if any(isinstance(c, str) and is_core_context_url(c) for c in items):
        return ctx
    return [*items, CORE_CONTEXT_URL]


OWNER = "owner"  # the member of a stored subscription record naming its owner (a principal)


@dataclass(frozen=True, slots=True)
class Sent:
    """What a notification tells, for its audit entry: to whom (the subscription's owner and
    purpose), of which entities, what the owner's policy masked and by which rules."""

    owner: str | None  # the owner's subject; None: the public principal
    roles: tuple[str, ...]
    purpose: str | None
    entity_ids: tuple[str, ...]
    types: tuple[str, ...]
    masked: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A notification ready to send: all a sender needs and nothing it must look up, so a row
    of the outbox can be delivered after a restart without the subscription."""

    notification_id: str
    subscription_id: str
    tenant: str
    uri: str
    headers: tuple[tuple[str, str], ...]
    payload: bytes  # the HTTP body, or the whole MQTT message
    content_type: str = JSON
    mqtt_qos: int = 0
    mqtt_version: str = DEFAULT_MQTT_VERSION
    timeout: float | None = None  # seconds (endpoint.timeout); None: the sender's default
    cooldown: float | None = None  # seconds to wait after a failure (endpoint.cooldown)
    # what the audit entry of this notification records (set when a draft is rendered at
    # delivery); not stored with a prepared message
    audit: Sent | None = field(default=None, compare=False)

    @property
    def endpoint_key(self) -> str:
        return endpoint_key(self.uri)

    def to_json(self) -> dict[str, Any]:
        """For an outbox row (payload as UTF-8 text: it is JSON)."""
        return {"notificationId": self.notification_id, "subscriptionId": self.subscription_id,
                "tenant": self.tenant, "uri": self.uri, "headers": [list(h) for h in
                                                                   self.headers],
                "payload": self.payload.decode(), "contentType": self.content_type,
                "mqttQos": self.mqtt_qos, "mqttVersion": self.mqtt_version,
                "timeout": self.timeout, "cooldown": self.cooldown}

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> Outgoing:
        return cls(notification_id=row["notificationId"], subscription_id=row["subscriptionId"],
                   tenant=row["tenant"], uri=row["uri"],
                   headers=tuple((k, v) for k, v in row["headers"]),
                   payload=row["payload"].encode(), content_type=row["contentType"],
                   mqtt_qos=row["mqttQos"], mqtt_version=row["mqttVersion"],
                   timeout=row["timeout"], cooldown=row["cooldown"])


def prepare(sub: Subscription, body: dict[str, Any], *, link: str | None = None) -> Outgoing:
    """The message for `body` to the subscription's endpoint. `link` is the @context URL for
    the Link header (application/json); by default context_url(sub), which must not be None."""
    endpoint = sub.notification.endpoint
    headers: list[tuple[str, str]] = [("Content-Type", endpoint.accept)]
    if endpoint.accept == JSON_LD:
        content = {**body, "@context": body_context(sub)}
    else:
        url = link if link is not None else context_url(sub)
        if url is None:
            raise ValueError("The subscription's @context has no URL: host it and pass link=")
        headers.append(("Link", link_header(url)))
        content = body
    if sub.tenant:
        headers.append((TENANT_HEADER, sub.tenant))
    headers.extend(endpoint.receiver_info)
    if endpoint.is_mqtt:
        payload = orjson.dumps({"metadata": dict(headers), "body": content})
    else:
        if not any(k.lower() == "user-agent" for k, _ in headers):
            headers.append(("User-Agent", USER_AGENT))
        payload = orjson.dumps(content)
    return Outgoing(
        notification_id=body["id"], subscription_id=sub.id, tenant=sub.tenant,
        uri=endpoint.uri, headers=tuple(headers), payload=payload,
        content_type=endpoint.accept, mqtt_qos=endpoint.mqtt_qos,
        mqtt_version=endpoint.mqtt_version,
        timeout=endpoint.timeout_ms / 1000 if endpoint.timeout_ms is not None else None,
        cooldown=endpoint.cooldown_ms / 1000 if endpoint.cooldown_ms is not None else None,
    )
