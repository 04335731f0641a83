"""Push sources against the real thing: a webhook POST is answered only once its records are
on the broker; MQTT messages from the real Mosquitto (127.0.0.1:1883) are published."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest

from adapters.sdk import Config, Entity, Pseudonymise, Raw
from adapters.sdk.example import SDM_TRANSPORTATION
from adapters.sdk.run import Options, run
from adapters.sdk.sources import MqttTopic, Webhook
from tests.adapters.sdk.readings import Readings, entity_id
from tests.adapters.support import BrokerProcess, dead_letters, entities
from tests.process import free_port

MQTT = ("127.0.0.1", 1883)


class Pushed(Readings):
    """Readings arriving as JSON objects (webhook) or MQTT payloads."""

    def parse(self, raw: Raw) -> Iterable[dict[str, Any]]:
        data = raw.data.get("payload", raw.data) if "topic" in raw.data else raw.data
        return super().parse(Raw(raw.stream, raw.position, data))

    def map(self, record: dict[str, Any], pseudonymise: Pseudonymise) -> Iterable[Entity]:
        return super().map({"speed": 10, "km": record["seq"] * 10, "plate": "DJ01XYZ",
                            **record}, pseudonymise)


class Hooked(Pushed):
    def source(self, config: Config) -> Webhook:
        return Webhook(port=config["port"], path="/readings")


class Subscribed(Pushed):
    def source(self, config: Config) -> MqttTopic:
        return MqttTopic(config["topic"], host=MQTT[0], port=MQTT[1], stream="sensors")


@pytest.fixture
def broker(shared_broker: BrokerProcess) -> BrokerProcess:
    return shared_broker


async def test_webhook_post_is_answered_after_its_records_are_published(
        broker: BrokerProcess, adapter_state: Path, adapter_secret: str, tenant: str) -> None:
    port = free_port()
    options = Options(broker=broker.url, state_dir=adapter_state, limit=4, linger=0.05,
                      tenant=tenant)
    running = asyncio.create_task(run(Hooked(), {"port": port}, options))
    url = f"http://127.0.0.1:{port}/readings"
    async with httpx.AsyncClient(timeout=20) as http:
        for _ in range(200):  # the receiver starts with the run
            try:
                first = await http.post(url, json={"seq": 1})
                break
            except httpx.ConnectError:
                await asyncio.sleep(0.02)
        assert first.status_code == 200
        held = entities(broker.url, "Vehicle", SDM_TRANSPORTATION, tenant=tenant)
        assert [e["id"] for e in held] == [entity_id(1)]  # there before the vendor hears 200
        batch = await http.post(url, json=[{"seq": 2}, {"seq": 3}])
        assert batch.status_code == 200
        bad = await http.post(url, content=b"\xff not json")
        assert bad.status_code == 200  # dead-lettered: retrying it would not help
    counters = await asyncio.wait_for(running, 20)
    assert (counters.read, counters.published, counters.rejected) == (4, 3, 1)
    assert "not UTF-8 JSON" in dead_letters(adapter_state)[0]["reason"]


async def test_mqtt_messages_are_published(broker: BrokerProcess, adapter_state: Path,
                                           adapter_secret: str, tenant: str) -> None:
    base = f"cetate/test/{uuid.uuid4().hex}"
    try:
        async with aiomqtt.Client(*MQTT) as mqtt:
            for seq in (1, 2, 3):  # retained: the adapter gets them whenever it subscribes
                await mqtt.publish(f"{base}/{seq}", f'{{"seq": {seq}}}', qos=1, retain=True)
    except aiomqtt.MqttError as exc:
        pytest.skip(f"Mosquitto is not running at {MQTT}: {exc}")
    try:
        options = Options(broker=broker.url, state_dir=adapter_state, limit=3, linger=0.05,
                          tenant=tenant)
        counters = await asyncio.wait_for(run(Subscribed(), {"topic": f"{base}/#"}, options), 20)
    finally:
        async with aiomqtt.Client(*MQTT) as mqtt:
            for seq in (1, 2, 3):
                await mqtt.publish(f"{base}/{seq}", b"", retain=True)  # clears the retained
    assert counters.published == 3
    held = {e["id"] for e in entities(broker.url, "Vehicle", SDM_TRANSPORTATION, tenant=tenant)}
    assert held == {entity_id(n) for n in (1, 2, 3)}
