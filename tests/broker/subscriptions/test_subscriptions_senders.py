"""The delivery edges against real receivers: an aiohttp server on a loopback port, and the
local Mosquitto (subscribed to with the same MQTT client library)."""

from __future__ import annotations

import asyncio
import datetime
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import orjson
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from broker.errors import BadRequestData
from broker.ld.netpolicy import AddressPolicy
from broker.ld.termmap import CORE_TERMS
from broker.subscriptions.http_sender import HttpSender, classify
from broker.subscriptions.mqtt_sender import MqttSender
from broker.subscriptions.notification import Outgoing, notification_body, prepare
from broker.subscriptions.resolve import check_endpoint_resolves
from broker.subscriptions.sender import Outcome
from broker.subscriptions.subscription import parse_subscription
from tests.broker.subscriptions.conftest import LOOPBACK, Receiver

NOW = "2026-12-01T10:00:00.000Z"
DATA = [{"id": "urn:ngsi-ld:OffStreetParking:p1", "type": "OffStreetParking",
         "availableSpotNumber": {"type": "Property", "value": 12}}]


def outgoing(uri: str, *, tenant: str = "craiova", notifier: list[dict[str, str]] | None = None,
             timeout_ms: int | None = None, accept: str = "application/json") -> Outgoing:
    endpoint: dict[str, Any] = {"uri": uri, "accept": accept,
                                "receiverInfo": [{"key": "X-Api-Key", "value": "k1"}]}
    if notifier:
        endpoint["notifierInfo"] = notifier
    if timeout_ms:
        endpoint["timeout"] = timeout_ms
    sub = parse_subscription({"type": "Subscription", "entities": [{"type": "OffStreetParking"}],
                              "notification": {"endpoint": endpoint}}, CORE_TERMS, NOW,
                             tenant=tenant)
    body = notification_body(sub, DATA, notification_id="urn:ngsi-ld:Notification:n1",
                             notified_at=NOW)
    return prepare(sub, body)


@pytest.fixture
async def http() -> AsyncIterator[HttpSender]:
    sender = HttpSender(LOOPBACK, timeout=2.0)
    yield sender
    await sender.aclose()


# -- HTTP ------------------------------------------------------------------------------------

async def test_http_delivers_body_and_headers(http: HttpSender, receiver: Receiver) -> None:
    result = await http.send(outgoing(receiver.url + "/notify?city=craiova"))
    assert result.outcome is Outcome.DELIVERED and result.status == 200
    (got,) = receiver.received
    assert got.path == "/notify"
    assert got.body["id"] == "urn:ngsi-ld:Notification:n1" and got.body["data"] == DATA
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["NGSILD-Tenant"] == "craiova"
    assert got.headers["X-Api-Key"] == "k1"
    assert 'rel="http://www.w3.org/ns/json-ld#context"' in got.headers["Link"]
    assert got.headers["Host"] == receiver.url.removeprefix("http://")


async def test_http_ld_json(http: HttpSender, receiver: Receiver) -> None:
    await http.send(outgoing(receiver.url + "/n", accept="application/ld+json"))
    (got,) = receiver.received
    assert got.headers["Content-Type"] == "application/ld+json"
    assert "@context" in got.body and "Link" not in got.headers


def answer(status: int, headers: dict[str, str] | None = None) -> Any:
    async def behave(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=status, headers=headers)
    return behave


@pytest.mark.parametrize(("status", "outcome"), [
    (200, Outcome.DELIVERED), (204, Outcome.DELIVERED), (500, Outcome.RETRY),
    (503, Outcome.RETRY), (429, Outcome.RETRY), (408, Outcome.RETRY),
    (400, Outcome.FAILED), (404, Outcome.FAILED), (410, Outcome.FAILED),
    (301, Outcome.FAILED),
])
async def test_http_status_classes(http: HttpSender, receiver: Receiver, status: int,
                                   outcome: Outcome) -> None:
    headers = {"Location": "http://example.org/"} if status == 301 else None
    receiver.behave = answer(status, headers)
    result = await http.send(outgoing(receiver.url + "/n"))
    assert result.outcome is outcome and result.status == status
    assert classify(status) is outcome


async def test_http_retry_after(http: HttpSender, receiver: Receiver) -> None:
    receiver.behave = answer(503, {"Retry-After": "7"})
    result = await http.send(outgoing(receiver.url + "/n"))
    assert result.outcome is Outcome.RETRY and result.retry_after == 7.0


async def test_http_hanging_receiver_times_out(http: HttpSender, receiver: Receiver) -> None:
    release = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response()

    receiver.behave = hang
    start = time.monotonic()
    result = await http.send(outgoing(receiver.url + "/n", timeout_ms=200))
    assert result.outcome is Outcome.RETRY and "within 0.2 s" in result.detail
    assert time.monotonic() - start < 1.5
    release.set()


async def test_http_connection_refused_is_retried(http: HttpSender) -> None:
    result = await http.send(outgoing("http://127.0.0.1:9/n"))  # discard port: nothing listens
    assert result.outcome is Outcome.RETRY


async def test_http_refused_address_at_delivery(receiver: Receiver) -> None:
    strict = HttpSender(AddressPolicy(), timeout=2.0)
    try:
        result = await strict.send(outgoing(receiver.url + "/n"))
        named = await strict.send(outgoing(receiver.url.replace("127.0.0.1", "localhost")))
    finally:
        await strict.aclose()
    assert result.outcome is Outcome.FAILED and "refused address" in result.detail
    assert named.outcome is Outcome.FAILED and "localhost resolves to a refused" in named.detail
    assert receiver.received == []


async def test_http_by_name_when_allowed(http: HttpSender, receiver: Receiver) -> None:
    result = await http.send(outgoing(receiver.url.replace("127.0.0.1", "localhost") + "/n"))
    assert result.outcome is Outcome.DELIVERED
    assert receiver.received[0].headers["Host"].startswith("localhost:")


async def test_subscription_time_resolution_check() -> None:
    sub = parse_subscription({"type": "Subscription", "entities": [{"type": "T"}],
                              "notification": {"endpoint": {"uri": "http://localhost:8080/n"}}},
                             CORE_TERMS, NOW)
    with pytest.raises(BadRequestData, match="refused address"):
        await check_endpoint_resolves(sub.notification.endpoint, AddressPolicy())
    await check_endpoint_resolves(sub.notification.endpoint, LOOPBACK)
    unknown = parse_subscription({"type": "Subscription", "entities": [{"type": "T"}],
                                  "notification": {"endpoint": {
                                      "uri": "http://no-such-host.invalid/n"}}},
                                 CORE_TERMS, NOW)
    await check_endpoint_resolves(unknown.notification.endpoint, AddressPolicy())


# -- MQTT ------------------------------------------------------------------------------------

VERSIONS = {"mqtt3.1.1": aiomqtt.ProtocolVersion.V311, "mqtt5.0": aiomqtt.ProtocolVersion.V5}


@pytest.mark.parametrize("version", ["mqtt3.1.1", "mqtt5.0"])
@pytest.mark.parametrize("qos", [0, 1])
async def test_mqtt_publishes(mosquitto: str, version: str, qos: int) -> None:
    topic = f"cetate-test/{time.monotonic_ns()}/parking"
    sender = MqttSender(LOOPBACK, timeout=3.0)
    try:
        async with aiomqtt.Client("127.0.0.1", int(mosquitto.split(":")[1]),
                                  protocol=VERSIONS[version]) as listener:
            await listener.subscribe(topic, qos=1)
            out = outgoing(f"mqtt://{mosquitto}/{topic}",
                           notifier=[{"key": "MQTT-Version", "value": version},
                                     {"key": "MQTT-QoS", "value": str(qos)}])
            result = await sender.send(out)
            assert result.outcome is Outcome.DELIVERED
            message = await asyncio.wait_for(anext(listener.messages), 3.0)
    finally:
        await sender.aclose()
    assert message.topic.value == topic and message.qos == qos
    assert isinstance(message.payload, bytes)
    payload = orjson.loads(message.payload)
    assert payload["body"]["id"] == "urn:ngsi-ld:Notification:n1"
    assert payload["body"]["data"] == DATA
    assert payload["metadata"]["NGSILD-Tenant"] == "craiova"
    assert payload["metadata"]["X-Api-Key"] == "k1"


async def test_mqtt_reuses_one_connection(mosquitto: str) -> None:
    topic = f"cetate-test/{time.monotonic_ns()}/reuse"
    sender = MqttSender(LOOPBACK, timeout=3.0)
    try:
        async with aiomqtt.Client("127.0.0.1", int(mosquitto.split(":")[1])) as listener:
            await listener.subscribe(topic, qos=1)
            out = outgoing(f"mqtt://{mosquitto}/{topic}",
                           notifier=[{"key": "MQTT-QoS", "value": "1"}])
            results = await asyncio.gather(*(sender.send(out) for _ in range(20)))
            assert all(r.outcome is Outcome.DELIVERED for r in results)
            assert len(sender._connections) == 1
            received = [await asyncio.wait_for(anext(listener.messages), 3.0)
                        for _ in range(20)]
    finally:
        await sender.aclose()
    assert len(received) == 20


async def test_mqtt_broker_down_is_retried() -> None:
    sender = MqttSender(LOOPBACK, timeout=1.0)
    try:
        result = await sender.send(outgoing("mqtt://127.0.0.1:9/city/lights"))
    finally:
        await sender.aclose()
    assert result.outcome is Outcome.RETRY


async def test_mqtt_refused_address() -> None:
    sender = MqttSender(AddressPolicy(), timeout=1.0)
    try:
        result = await sender.send(outgoing("mqtt://127.0.0.1:1883/city/lights"))
    finally:
        await sender.aclose()
    assert result.outcome is Outcome.FAILED and "refused address" in result.detail


async def test_mqtt_reconnects_after_losing_the_connection(mosquitto: str) -> None:
    topic = f"cetate-test/{time.monotonic_ns()}/lost"
    sender = MqttSender(LOOPBACK, timeout=3.0)
    out = outgoing(f"mqtt://{mosquitto}/{topic}", notifier=[{"key": "MQTT-QoS", "value": "1"}])
    try:
        async with aiomqtt.Client("127.0.0.1", int(mosquitto.split(":")[1])) as listener:
            await listener.subscribe(topic, qos=1)
            assert (await sender.send(out)).outcome is Outcome.DELIVERED
            (conn,) = sender._connections.values()
            assert conn.client is not None
            conn.client._client.disconnect()  # as when the MQTT broker restarts
            await asyncio.wait_for(asyncio.shield(conn.client._disconnected), 3.0)
            assert (await sender.send(out)).outcome is Outcome.DELIVERED
            for _ in range(2):
                await asyncio.wait_for(anext(listener.messages), 3.0)
    finally:
        await sender.aclose()


async def test_http_endpoint_timeout_beyond_the_default(receiver: Receiver) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.3)
        await receiver.record(request)
        return web.Response()

    receiver.behave = slow
    sender = HttpSender(LOOPBACK, timeout=0.1)  # the default would give up first
    try:
        result = await sender.send(outgoing(receiver.url + "/n", timeout_ms=2000))
    finally:
        await sender.aclose()
    assert result.outcome is Outcome.DELIVERED


# -- HTTPS: the connection goes to the checked address, TLS still checks the name ----------

def _self_signed(tmp: Any) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


async def test_https_pinned_address_keeps_the_name_for_tls(tmp_path: Any) -> None:
    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    rec = Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", rec.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    client_ctx = ssl.create_default_context(cafile=cert)
    sender = HttpSender(LOOPBACK, timeout=3.0, verify=client_ctx)
    try:
        ok = await sender.send(outgoing(f"https://localhost:{port}/n"))
        # The certificate names localhost, not the address: TLS refuses the IP literal.
        wrong = await sender.send(outgoing(f"https://127.0.0.1:{port}/n"))
    finally:
        await sender.aclose()
        await runner.cleanup()
    assert ok.outcome is Outcome.DELIVERED, ok.detail
    assert rec.received[0].headers["Host"] == f"localhost:{port}"
    assert wrong.outcome is Outcome.RETRY and len(rec.received) == 1
