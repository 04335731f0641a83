"""Notifications over MQTT (mqtt:// and mqtts://) with aiomqtt (the I/O edge).

The topic is the URI's path; user and password come from its userinfo; notifierInfo picks the
protocol (MQTT-Version: mqtt3.1.1 or mqtt5.0, the default) and the QoS (MQTT-QoS: 0, the
default, or 1: the broker acknowledges the message before it counts as delivered). One
connection per MQTT broker, protocol and credentials is opened on first use and reused; a
connection that breaks is dropped and the notification retried, the next one reconnecting.

Addresses: the host is resolved and every address checked at each (re)connection. For mqtt://
the connection goes to the checked address itself. For mqtts:// it goes to the name, so that
TLS verifies the broker's certificate against it; a DNS change between the check and the
connect (milliseconds) is the residual risk there.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import uuid
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from broker.ld.netpolicy import AddressPolicy
from broker.subscriptions.endpoint import DEFAULT_PORTS, mqtt_topic
from broker.subscriptions.notification import Outgoing
from broker.subscriptions.resolve import RefusedAddress, Unresolvable, checked_address
from broker.subscriptions.sender import Outcome, Result

DEFAULT_TIMEOUT = 10.0  # seconds to connect and publish (a PUBACK for QoS 1)
KEEPALIVE = 60  # seconds (MQTT 3.1.1 §3.1.2.10); the broker drops us after 1.5x silence
MAX_CONNECTIONS = 64  # MQTT brokers a city uses are few; the least recently used is closed
PROTOCOLS = {"mqtt3.1.1": aiomqtt.ProtocolVersion.V311, "mqtt5.0": aiomqtt.ProtocolVersion.V5}

Key = tuple[str, str, int, str | None, str | None, str]


@dataclass
class _Connection:
    client: aiomqtt.Client | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _lost(client: aiomqtt.Client) -> bool:
    """Whether aiomqtt has seen the connection go (its private future; absent: assume not)."""
    disconnected = getattr(client, "_disconnected", None)
    return isinstance(disconnected, asyncio.Future) and disconnected.done()


class MqttSender:
    """Publishes Outgoing notifications to mqtt(s) endpoints, reusing connections."""

    def __init__(self, policy: AddressPolicy, *, timeout: float = DEFAULT_TIMEOUT,
                 tls_context: ssl.SSLContext | None = None) -> None:
        self.policy = policy
        self.timeout = timeout
        self._tls = tls_context
        self._connections: dict[Key, _Connection] = {}
        self._prefix = f"cetate-{uuid.uuid4().hex[:10]}"

    async def send(self, out: Outgoing) -> Result:
        parts = urlsplit(out.uri)
        scheme = parts.scheme.lower()
        host = parts.hostname or ""
        port = parts.port or DEFAULT_PORTS[scheme]
        key: Key = (scheme, host, port, unquote(parts.username) if parts.username else None,
                    unquote(parts.password) if parts.password else None, out.mqtt_version)
        timeout = out.timeout or self.timeout
        try:
            async with asyncio.timeout(timeout):
                client = await self._connected(key)
                await client.publish(mqtt_topic(out.uri), out.payload, qos=out.mqtt_qos,
                                     properties=self._properties(out), timeout=timeout)
            return Result(Outcome.DELIVERED, f"published (QoS {out.mqtt_qos})")
        except RefusedAddress as exc:
            return Result(Outcome.FAILED, str(exc))
        except Unresolvable as exc:
            return Result(Outcome.RETRY, str(exc))
        except TimeoutError:
            await self._drop(key)
            return Result(Outcome.RETRY, f"MQTT broker gave no answer within {timeout} s")
        except (aiomqtt.MqttError, OSError) as exc:
            await self._drop(key)
            return Result(Outcome.RETRY, f"MQTT: {exc}")

    @staticmethod
    def _properties(out: Outgoing) -> Properties | None:
        if out.mqtt_version != "mqtt5.0":
            return None
        props = Properties(PacketTypes.PUBLISH)
        props.ContentType = "application/json"  # the message is {"metadata", "body"} JSON
        return props

    async def _connected(self, key: Key) -> aiomqtt.Client:
        while True:
            conn = self._connections.get(key)
            if conn is None:
                if len(self._connections) >= MAX_CONNECTIONS:
                    await self._drop(next(iter(self._connections)))
                conn = self._connections.setdefault(key, _Connection())
            async with conn.lock:  # one connect at a time per broker; the others reuse it
                if self._connections.get(key) is not conn:
                    continue  # dropped (a failure) while we waited: start over
                if conn.client is not None and not _lost(conn.client):
                    return conn.client
                if conn.client is not None:  # the broker closed it while idle: connect again
                    stale, conn.client = conn.client, None
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(stale.__aexit__(None, None, None), 1.0)
                conn.client = await self._connect(key)
                return conn.client

    async def _connect(self, key: Key) -> aiomqtt.Client:
        scheme, host, port, username, password, version = key
        address = await checked_address(host, port, self.policy)
        tls = None
        if scheme == "mqtts":
            tls = self._tls or ssl.create_default_context()
        client = aiomqtt.Client(
            address if tls is None else host, port, username=username, password=password,
            identifier=f"{self._prefix}-{uuid.uuid4().hex[:8]}",
            protocol=PROTOCOLS[version], keepalive=KEEPALIVE, timeout=self.timeout,
            tls_context=tls)
        await client.__aenter__()
        return client

    async def _drop(self, key: Key) -> None:
        conn = self._connections.pop(key, None)
        if conn is not None and conn.client is not None:
            client, conn.client = conn.client, None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.__aexit__(None, None, None), 1.0)

    async def aclose(self) -> None:
        for key in list(self._connections):
            await self._drop(key)
