"""The lighting adapter end to end: the Luminis CMS simulator -> the adapter -> a real broker
process. The entities are there and keep their contracts; bad vendor data ends in the
dead-letter file with a reason, nothing of it published; an adapter killed mid-stream and
restarted leaves the broker holding exactly what the CMS holds; a dimming or switching change
made on the broker reaches the CMS and its outcome is recorded on the entity."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import httpx

from adapters.lighting.adapter import STREETLIGHTING, CmsFeed, LightingAdapter
from adapters.lighting.simulator import Lighting, start
from adapters.sdk import Raw
from adapters.sdk.run import Options, run, run_simulated
from adapters.sdk.validate import problems
from tests.adapters.support import (
    WAIT,
    BrokerProcess,
    checkpoint,
    dead_letters,
    eventually,
    run_cli,
    spawn_cli,
)
from tests.adapters.support import entities as held
from tests.process import free_port

DEVICE = "https://smart-data-models.github.io/dataModel.Device/context.jsonld"
LINK = f'<{STREETLIGHTING}>; rel="http://www.w3.org/ns/json-ld#context"; ' \
       f'type="application/ld+json"'


def small(seed: int) -> Lighting:
    """2 cabinets, 6 groups, 30 lamps."""
    return Lighting(seed=seed, cabinets_count=2, lamps_per_group=5)




@contextlib.asynccontextmanager
async def serving(cms: Lighting) -> AsyncIterator[str]:
    runner, url = await start(cms)
    try:
        yield url
    finally:
        await runner.cleanup()


def lighting(url: str) -> dict[str, list[dict[str, Any]]]:
    """What the broker holds, by type."""
    found = {t: held(url, t, STREETLIGHTING) for t in
             ("Streetlight", "StreetlightGroup", "StreetlightControlCabinet")}
    found["Device"] = held(url, "Device", DEVICE)
    return found


def assert_mirrors(broker: dict[str, list[dict[str, Any]]], cms: Lighting) -> None:
    """The broker holds one entity per CMS object, each with the CMS's latest state."""
    lights = {e["id"]: e for e in broker["Streetlight"]}
    devices = {e["id"]: e for e in broker["Device"]}
    assert len(lights) == len(broker["Streetlight"]) == len(cms.controllers)
    assert len(devices) == len(cms.controllers)
    assert len(broker["StreetlightGroup"]) == len(cms.groups)
    assert len(broker["StreetlightControlCabinet"]) == len(cms.cabinets)
    for ctl in cms.controllers.values():
        light = lights[f"urn:ngsi-ld:Streetlight:craiova-{ctl['lampId']}"]
        assert light["lifetimePowerConsumption"]["value"] == ctl["energyKWh"]
        assert light["observationDateTime"]["value"] == ctl["reportedAt"]
        device = devices[f"urn:ngsi-ld:Device:craiova-{ctl['controllerId']}"]
        assert device["dateLastValueReported"]["value"] == ctl["reportedAt"]


async def test_simulated_run_publishes_every_type_valid(broker: BrokerProcess,
                                                        adapter_state: Path,
                                                        adapter_secret: str) -> None:
    simulator = {"cabinets": 2, "lamps_per_group": 5, "tick": 0, "fast_forward": False}
    counters = await run_simulated(LightingAdapter(), {"simulator": simulator},
                                   Options(broker=broker.url, state_dir=adapter_state, limit=38,
                                           write_back=False))
    assert (counters.read, counters.rejected) == (38, 0)
    found = lighting(broker.url)
    assert {t: len(v) for t, v in found.items()} == {
        "Streetlight": 30, "Device": 30, "StreetlightGroup": 6, "StreetlightControlCabinet": 2}
    for kind, entities in found.items():
        context = DEVICE if kind == "Device" else STREETLIGHTING
        for entity in entities:
            assert problems({**entity, "@context": context}) == [], entity["id"]
    groups = {e["id"] for e in found["StreetlightGroup"]}
    cabinets = {e["id"] for e in found["StreetlightControlCabinet"]}
    for light in found["Streetlight"]:
        assert light["refStreetlightGroup"]["object"] in groups
        assert light["refStreetlightControlCabinet"]["object"] in cabinets
    assert checkpoint(adapter_state) == {"cms": small(7).seq}  # the feed's end


def test_the_command_line_form_outside_checks_use(broker: BrokerProcess) -> None:
    done = run_cli("run", "lighting", "--simulate", "--broker", broker.url, "--limit", "300",
                   "--no-progress")
    assert done.returncode == 0, done.stderr
    counters = json.loads(done.stdout.splitlines()[-1])
    assert (counters["read"], counters["rejected"]) == (300, 0)
    assert len(held(broker.url, "Streetlight", STREETLIGHTING)) == 240


async def test_bad_vendor_data_is_dead_lettered_and_nothing_of_it_published(
        broker: BrokerProcess, adapter_state: Path, adapter_secret: str) -> None:
    cms = small(3)
    for kind in ("impossible", "unknown-ref", "encoding", "truncated", "latin1"):
        cms.inject(kind, 1)
    async with serving(cms) as url:
        counters = await run(LightingAdapter(), {"cms": url, "interval": 0.05},
                             Options(broker=broker.url, state_dir=adapter_state,
                                     limit=38 + 3 + 2, write_back=False))
    assert counters.rejected == 5
    letters = dead_letters(adapter_state)
    reasons = sorted(letter["reason"] for letter in letters)
    assert len(reasons) == 5
    assert sum("is not JSON" in r for r in reasons) == 2  # the truncated and the ISO-8859-2 page
    assert "dimLevel: 250.0 is impossible (expected 0..100)" in reasons
    assert "groupId: 'GRP-99-9' is not a cabinet/group the CMS describes" in reasons
    assert "address: not valid UTF-8 text (wrong encoding at the source)" in reasons
    bad = [letter for letter in letters if letter["raw"] and isinstance(letter["raw"], dict)]
    assert {letter["raw"]["data"]["controllerId"] for letter in bad} == {
        "LC-BAD-0001", "LC-BAD-0002", "LC-BAD-0003"}
    found = lighting(broker.url)
    ids = {e["id"] for kind in found.values() for e in kind}
    assert not any("BAD" in i for i in ids)  # neither the Streetlight nor the Device of one
    assert_mirrors(found, cms)


async def test_killed_mid_stream_then_restarted_nothing_lost_nothing_doubled(
        broker: BrokerProcess, adapter_state: Path, tmp_path: Path) -> None:
    cms = Lighting(seed=5, cabinets_count=3, lamps_per_group=5, page=3)  # 57 changes, by 3
    async with serving(cms) as url:
        config = tmp_path / "lighting.json"
        config.write_text(json.dumps({"cms": url, "interval": 0.1}))
        args = ("run", "lighting", "--config", str(config), "--broker", broker.url,
                "--state", str(adapter_state), "--batch-size", "4", "--no-write-back",
                "--no-progress")
        first = spawn_cli(*args)
        try:
            await eventually(lambda: int(checkpoint(adapter_state).get("cms", 0)) >= 12,
                             "a first checkpoint")
            first.send_signal(signal.SIGKILL)
            first.wait()
        finally:
            if first.poll() is None:
                first.kill()
        reached = int(checkpoint(adapter_state)["cms"])
        assert reached < cms.seq, "the adapter was to be killed mid-stream"
        cms.tick(3)  # the city goes on while the adapter is down
        cms.page = 50  # and the rest comes quicker
        second = spawn_cli(*args)
        try:
            await eventually(lambda: checkpoint(adapter_state).get("cms") == cms.seq,
                             "the restarted adapter reaching the end of the feed",
                             timeout=2 * WAIT)  # a process start on a loaded machine
        finally:
            second.send_signal(signal.SIGTERM)
            try:
                second.wait(20)
            except subprocess.TimeoutExpired:
                second.kill()
                raise
    assert_mirrors(lighting(broker.url), cms)


async def test_a_change_on_the_broker_is_sent_to_the_cms_and_its_outcome_recorded(
        broker: BrokerProcess, adapter_state: Path, adapter_secret: str) -> None:
    cms = small(8)
    async with serving(cms) as url:
        options = Options(broker=broker.url, state_dir=adapter_state, linger=0.1)
        task = asyncio.create_task(run(LightingAdapter(), {"cms": url, "interval": 0.1},
                                       options))
        try:
            await _dim_and_refuse(broker.url, cms, task)
        finally:
            options.stop.set()  # as SIGTERM stops it: the batch held is sent, then it ends
            try:
                await asyncio.wait_for(asyncio.shield(task), 15)
            except TimeoutError:
                task.cancel()
                raise AssertionError("the adapter did not stop within 15 s") from None


async def _dim_and_refuse(broker: str, cms: Lighting, task: asyncio.Task[Any]) -> None:
    light = "urn:ngsi-ld:Streetlight:craiova-L-000001"
    other = "urn:ngsi-ld:Streetlight:craiova-L-000002"
    async with httpx.AsyncClient(base_url=broker, headers={"Link": LINK}) as http:

        async def entity(entity_id: str) -> dict[str, Any]:
            answer = await http.get(f"/ngsi-ld/v1/entities/{entity_id}")
            return dict(answer.json()) if answer.status_code == 200 else {}

        async def annotated(entity_id: str, words: str) -> bool:
            notes = (await entity(entity_id)).get("annotations", {}).get("value", [])
            return any(words in note for note in notes)

        await eventually(lambda: len(held(broker, "Streetlight", STREETLIGHTING)) == 30,
                         "the lamps published", task=task)
        await asyncio.sleep(0.5)  # the adapter's own publications notified (and skipped)
        assert cms.commands == 0  # its own publications sent no command
        # city IT dims lamp 1 to 30 %
        patch = await http.patch(f"/ngsi-ld/v1/entities/{light}/attrs",
                                 json={"illuminanceLevel": {"type": "Property", "value": 0.3}})
        assert patch.status_code == 204, patch.text
        await eventually(lambda: cms.controllers["LC-000001"]["dimLevel"] == 30,
                         "the CMS dimming the lamp", task=task)
        await eventually(lambda: annotated(light, "command dim:30 executed"),
                         "the outcome on the Streetlight", task=task)
        await eventually(lambda: _holds(entity(light), "powerState", "low"),
                         "the lamp's new state published from the CMS", task=task)
        # lamp 2's controller is unreachable: switching it off is refused by the CMS
        cms.controllers["LC-000002"]["faults"] = ["COMM_LOSS"]
        cms._changed("controller", "LC-000002")
        await eventually(lambda: _holds(entity(other), "powerState", "on"), "lamp 2 on",
                         task=task)
        patch = await http.patch(f"/ngsi-ld/v1/entities/{other}/attrs",
                                 json={"powerState": {"type": "Property", "value": "off"}})
        assert patch.status_code == 204, patch.text
        await eventually(lambda: annotated(other, "rejected"), "the refusal recorded",
                         task=task)
        notes = (await entity(other))["annotations"]["value"]
        assert "controller unreachable (COMM_LOSS)" in notes[0]
        assert cms.controllers["LC-000002"]["state"] == "ON"
        await eventually(lambda: _holds(entity(other), "powerState", "on"),
                         "the state the lamp really has, back on the broker", task=task)
        assert cms.commands == 2


async def _holds(entity: Awaitable[dict[str, Any]], name: str, value: Any) -> bool:
    return (await entity).get(name, {}).get("value") == value


async def test_an_adapter_started_before_the_cms_waits_for_it() -> None:
    port = free_port()
    known: set[str] = set()
    feed = CmsFeed(f"http://127.0.0.1:{port}", known, interval=0.1, polls=1)

    async def first_raw() -> Raw:
        async for raw in feed.read({}):
            return raw
        raise AssertionError("the feed ended empty")

    first = asyncio.create_task(first_raw())
    await asyncio.sleep(0.4)
    assert not first.done()  # no CMS yet: the catalogue is awaited, nothing raised
    cms = small(4)
    runner, _ = await start(cms, port=port)
    try:
        raw = await asyncio.wait_for(first, 10)
    finally:
        await runner.cleanup()
    assert raw.stream == "cms" and raw.position == raw.data["seq"] and not raw.error
    assert known == set(cms.cabinets) | set(cms.groups)


async def test_a_change_made_while_the_cms_is_down_reaches_it_when_it_is_back(
        broker: BrokerProcess, adapter_state: Path, adapter_secret: str) -> None:
    cms = small(9)
    port = free_port()
    runner, url = await start(cms, port=port)
    options = Options(broker=broker.url, state_dir=adapter_state, linger=0.1)
    task = asyncio.create_task(run(LightingAdapter(), {"cms": url, "interval": 0.1}, options))
    light = "urn:ngsi-ld:Streetlight:craiova-L-000003"
    try:
        await eventually(lambda: len(held(broker.url, "Streetlight", STREETLIGHTING)) == 30,
                         "the lamps published", task=task)
        await runner.cleanup()  # the CMS goes down
        async with httpx.AsyncClient(base_url=broker.url, headers={"Link": LINK}) as http:
            patch = await http.patch(f"/ngsi-ld/v1/entities/{light}/attrs", json={
                "illuminanceLevel": {"type": "Property", "value": 0.45}})
        assert patch.status_code == 204, patch.text
        await asyncio.sleep(1.0)  # the notification fails: answered 503, to be sent again
        assert cms.controllers["LC-000003"]["dimLevel"] == 100
        runner, _ = await start(cms, port=port)  # back, on the same address
        await eventually(lambda: cms.controllers["LC-000003"]["dimLevel"] == 45,
                         "the command, once the broker sent the notification again", task=task)
    finally:
        options.stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), 15)
        finally:
            await runner.cleanup()
