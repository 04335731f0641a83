"""Write-back with the real subscription API: city IT changes an entity on the broker, the SDK's
receiver is notified, the adapter sends the change to the vendor, and the outcome is recorded on
the entity; the adapter's own publications are not echoed back to the vendor."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import httpx
from aiohttp import web

from adapters.sdk import Config, Entity, Pseudonymise, WriteBack
from adapters.sdk.example import SDM_TRANSPORTATION
from adapters.sdk.run import Options, run
from tests.adapters.sdk.test_sdk_push_sources import Hooked
from tests.adapters.support import BrokerProcess
from tests.process import free_port

LINK = {"Link": f'<{SDM_TRANSPORTATION}>; rel="http://www.w3.org/ns/json-ld#context"'}


class Commanded(Hooked):
    write_back: ClassVar[WriteBack | None] = WriteBack(
        types=("Vehicle",), attributes=("serviceStatus",), outcome=("description",))

    def map(self, record: dict[str, Any], pseudonymise: Pseudonymise) -> Iterable[Entity]:
        for entity in super().map(record, pseudonymise):
            yield {**entity, "serviceStatus": {"type": "Property", "value": "onRoute"}}

    async def on_entity_change(self, entity: Entity, config: Config) -> Mapping[str, Any] | None:
        status = entity["serviceStatus"]["value"]
        async with httpx.AsyncClient() as vendor:
            answer = await vendor.post(config["cms"], json={"vehicle": entity["id"],
                                                            "status": status})
        return {"description": {"type": "Property",
                                "value": f"command {status}: {answer.json()['result']}"}}


async def test_a_change_on_the_broker_goes_back_to_the_vendor(
        broker: BrokerProcess, adapter_state: Path, adapter_secret: str) -> None:
    commands: list[dict[str, Any]] = []
    arrived = asyncio.Event()

    async def command(request: web.Request) -> web.Response:
        commands.append(await request.json())
        arrived.set()
        return web.json_response({"result": "accepted"})

    cms = web.Application()
    cms.router.add_post("/commands", command)
    runner = web.AppRunner(cms)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    cms_url = f"http://127.0.0.1:{runner.addresses[0][1]}/commands"
    port = free_port()
    options = Options(broker=broker.url, state_dir=adapter_state, limit=2, linger=0.05)
    running = asyncio.create_task(run(Commanded(), {"port": port, "cms": cms_url}, options))
    hook = f"http://127.0.0.1:{port}/readings"
    try:
        async with httpx.AsyncClient(timeout=20) as http:
            for _ in range(300):
                try:
                    assert (await http.post(hook, json={"seq": 1})).status_code == 200
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.02)
            subs = await http.get(f"{broker.url}/ngsi-ld/v1/subscriptions")
            assert len(subs.json()) == 1
            vehicle = f"{broker.url}/ngsi-ld/v1/entities/urn:ngsi-ld:Vehicle:test-reading-000001"
            patched = await http.patch(f"{vehicle}/attrs/serviceStatus", headers=LINK,
                                       json={"type": "Property", "value": "broken"})
            assert patched.status_code == 204, patched.text
            await asyncio.wait_for(arrived.wait(), 15)
            for _ in range(200):
                got = (await http.get(vehicle, headers=LINK)).json()
                if "description" in got:
                    break
                await asyncio.sleep(0.05)
            assert got["description"]["value"] == "command broken: accepted"
            assert commands == [{"vehicle": "urn:ngsi-ld:Vehicle:test-reading-000001",
                                 "status": "broken"}]  # the adapter's own upsert: no echo
            assert (await http.post(hook, json={"seq": 2})).status_code == 200
        counters = await asyncio.wait_for(running, 20)
        assert counters.written_back == 1
        async with httpx.AsyncClient(timeout=20) as http:
            left = await http.get(f"{broker.url}/ngsi-ld/v1/subscriptions")
        assert left.json() == []  # the run deleted its subscription
    finally:
        running.cancel()
        await runner.cleanup()
