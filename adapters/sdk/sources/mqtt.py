"""An MQTT topic (aiomqtt), e.g. on-street parking sensors publishing to Mosquitto.

QoS 1. With a `client_id` the session is persistent (clean_session false): the MQTT broker
keeps the messages published while the adapter is down and delivers them when it returns.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping

import aiomqtt

from adapters.sdk.hooks import Position, Raw
from adapters.sdk.sources.base import BaseSource

log = logging.getLogger("cetate.adapter")


class MqttTopic(BaseSource):
    """Messages of `topic` (wildcards allowed) as Raw data {"topic": ..., "payload": ...}: the
    payload decoded as JSON (`payload="json"`), text, or bytes; `messages` bounds the count."""

    def __init__(self, topic: str, *, host: str = "127.0.0.1", port: int = 1883,
                 stream: str = "mqtt", client_id: str | None = None, payload: str = "json",
                 messages: int | None = None, username: str | None = None,
                 password: str | None = None) -> None:
        if payload not in ("json", "text", "bytes"):
            raise ValueError(f"payload must be json, text or bytes, not {payload!r}")
        self.topic, self.host, self.port, self.stream = topic, host, port, stream
        self.client_id, self.payload, self.messages = client_id, payload, messages
        self.username, self.password = username, password

    def _decode(self, body: bytes) -> tuple[object, str]:
        if self.payload == "bytes":
            return body, ""
        try:
            text = body.decode("utf-8")
            return (json.loads(text) if self.payload == "json" else text), ""
        except (UnicodeDecodeError, ValueError) as exc:
            return body.decode("utf-8", "replace")[:10_000], f"MQTT payload: {exc}"

    async def read(self, checkpoint: Mapping[str, Position]) -> AsyncIterator[Raw]:
        last = checkpoint.get(self.stream)
        counter = last if isinstance(last, int) else 0
        read = 0
        async with aiomqtt.Client(self.host, self.port, identifier=self.client_id,
                                  clean_session=False if self.client_id else None,
                                  username=self.username, password=self.password) as client:
            await client.subscribe(self.topic, qos=1)
            async for message in client.messages:
                body = message.payload if isinstance(message.payload, bytes) \
                    else str(message.payload).encode()
                payload, error = self._decode(body)
                counter += 1
                read += 1
                yield Raw(self.stream, counter, {"topic": str(message.topic), "payload": payload},
                          error)
                if self.messages is not None and read >= self.messages:
                    return
