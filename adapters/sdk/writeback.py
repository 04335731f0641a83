"""Write-back: changes made on the broker (city IT dims a lamp with a PATCH) sent back to the
vendor's system through `Adapter.on_entity_change`.

The SDK runs a small receiver (aiohttp) and creates a subscription on the broker (POST
/ngsi-ld/v1/subscriptions, clause 5.8.1) on `write_back.types` and `.attributes`, notified to
it in the normalized format. Each notified entity goes to on_entity_change; the attributes it
returns (the outcome: accepted, refused, when) are appended to the entity (POST .../attrs).
Delivery is at least once: a notification whose hook fails with anything but BadRecord (the
vendor is down) is answered 503, so the broker sends it again with its backoff. The adapter's
own publications are notified too: an entity whose watched attributes still hold what the
adapter last published is its own echo, and skipped. The subscription is deleted at the end.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import httpx
from aiohttp import web

from adapters.sdk.errors import BadRecord
from adapters.sdk.hooks import Adapter, Config, Entity, WriteBack
from adapters.sdk.publish import broker_headers

log = logging.getLogger("cetate.adapter")

SUBSCRIPTIONS = "/ngsi-ld/v1/subscriptions"
NOTIFY_PATH = "/notify"
ABSENT = object()


def _value(attribute: Any) -> Any:
    if isinstance(attribute, dict):
        for member in ("value", "object", "languageMap", "vocab", "json", "valueList",
                       "objectList"):
            if member in attribute:
                return attribute[member]
    return attribute


class WriteBackReceiver:
    """`async with` it around a run (adapters.sdk.run does, when the adapter sets write_back)."""

    def __init__(self, adapter: Adapter, config: Config, options: Any, tenant: str) -> None:
        assert adapter.write_back is not None
        self.adapter, self.config, self.spec = adapter, config, adapter.write_back
        self.counters = options.counters
        self.host = str(config.get("write_back_host", "127.0.0.1"))
        self.port = int(config.get("write_back_port", 0))
        self.public_url = str(config.get("write_back_url", ""))  # if the broker sees us elsewhere
        headers = {"Accept": "application/json",
                   **broker_headers(tenant, options.api_key, options.token)}
        self.broker = httpx.AsyncClient(base_url=options.broker.rstrip("/"), headers=headers,
                                        timeout=10)
        self.runner: web.AppRunner | None = None
        self.subscription = ""
        self.url = ""
        self.published: dict[str, dict[str, Any]] = {}  # id -> watched values last published

    async def __aenter__(self) -> WriteBackReceiver:
        app = web.Application()
        app.router.add_post(NOTIFY_PATH, self._notified)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, self.host, self.port).start()
        port = self.runner.addresses[0][1]
        self.url = self.public_url or f"http://{self.host}:{port}{NOTIFY_PATH}"
        await self._subscribe()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.subscription:
            try:
                await self.broker.delete(f"{SUBSCRIPTIONS}/{self.subscription}")
            except httpx.HTTPError as error:
                log.warning("could not delete subscription %s: %s", self.subscription, error)
        await self.broker.aclose()
        if self.runner is not None:
            await self.runner.cleanup()

    def subscription_body(self) -> dict[str, Any]:
        spec: WriteBack = self.spec
        body: dict[str, Any] = {
            "id": f"urn:ngsi-ld:Subscription:adapter-{self.adapter.name}-{uuid.uuid4().hex[:12]}",
            "type": "Subscription",
            "description": f"write-back of the {self.adapter.name} adapter",
            "entities": [{"type": t} for t in spec.types],
            "notification": {"format": "normalized",
                             "endpoint": {"uri": self.url, "accept": "application/json"}},
            "@context": self.adapter.context,
        }
        if spec.attributes:
            body["watchedAttributes"] = list(spec.attributes)
        return body

    async def _subscribe(self) -> None:
        body = self.subscription_body()
        try:
            response = await self.broker.post(SUBSCRIPTIONS, json=body,
                                              headers={"Content-Type": "application/ld+json"})
        except httpx.HTTPError as error:
            log.warning("write-back off: cannot reach %s (%s)", SUBSCRIPTIONS, error)
            return
        if response.status_code != 201:
            log.warning("write-back off: the broker answered %d to the subscription: %s",
                        response.status_code, response.text[:300])
            return
        self.subscription = body["id"]
        log.info("write-back: subscription %s notifies %s", self.subscription, self.url)

    def remember(self, entities: Iterable[Entity]) -> None:
        """What the adapter published, so that its echo is not sent back to the vendor."""
        for entity in entities:
            self.published[entity["id"]] = {a: _value(entity.get(a, ABSENT))
                                           for a in self._watched(entity)}

    def _watched(self, entity: Mapping[str, Any]) -> list[str]:
        if self.spec.attributes:
            return list(self.spec.attributes)
        return [k for k in entity if k not in ("id", "type", "@context", *self.spec.outcome)]

    def is_echo(self, entity: Mapping[str, Any]) -> bool:
        last = self.published.get(str(entity.get("id")))
        if last is None:
            return False
        return all(_value(entity.get(a, ABSENT)) == last.get(a, ABSENT)
                   for a in self._watched(entity))

    async def _notified(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.Response(status=400)
        for entity in body.get("data", []) if isinstance(body, dict) else []:
            if self.is_echo(entity):
                continue
            try:
                outcome = await self.adapter.on_entity_change(entity, self.config)
            except BadRecord as bad:
                log.warning("write-back of %s refused: %s", entity.get("id"), bad.reason)
                continue
            except Exception as error:  # vendor down: the broker sends it again later
                log.warning("write-back of %s failed, to be retried: %r", entity.get("id"),
                            error)
                return web.Response(status=503)
            self.counters.written_back += 1
            self.published[str(entity.get("id"))] = {a: _value(entity.get(a, ABSENT))
                                                    for a in self._watched(entity)}
            if outcome:
                await self._record(str(entity["id"]), outcome)
        return web.Response(status=200)

    async def _record(self, entity_id: str, outcome: Mapping[str, Any]) -> None:
        body = {**outcome, "@context": self.adapter.context}
        # Append (clause 5.6.3): creates the outcome attributes or overwrites them; an update
        # (PATCH) would refuse attributes the entity does not have yet.
        response = await self.broker.post(f"/ngsi-ld/v1/entities/{entity_id}/attrs",
                                          json=body,
                                          headers={"Content-Type": "application/ld+json"})
        if response.status_code != 204:
            log.warning("write-back outcome of %s not recorded: %d %s", entity_id,
                        response.status_code, response.text[:300])
