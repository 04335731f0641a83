"""The parking adapter end to end: the simulator's three systems (sensors on a real Mosquitto,
the car parks' HTTP API, the SMS gateway's export files) -> the adapter -> a real broker
process. Entities are there, valid, with plates and phone numbers only as keyed pseudonyms;
bad vendor data ends in the dead-letter file with a reason; an adapter killed mid-stream and
restarted leaves the broker holding exactly what the simulator produced."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest

from adapters.parking.adapter import PARKING, SESSION_CONTEXT, ParkingAdapter
from adapters.parking.parse import normalise_msisdn, normalise_plate
from adapters.parking.simulator import ParkingSimulator
from adapters.sdk import Pseudonymiser
from adapters.sdk.run import Options, run
from adapters.sdk.validate import problems
from tests.adapters.support import (
    TEST_SECRET,
    WAIT,
    BrokerProcess,
    checkpoint,
    dead_letters,
    eventually,
    run_cli,
    spawn_cli,
)
from tests.adapters.support import entities as held
from tests.broker.subscriptions.conftest import serving_receiver

STOP_WITHIN = 15.0  # seconds a stopped adapter may take to send its last batch
SPACES, ZONES, CAR_PARKS = 120, 5, 4




async def _mosquitto() -> bool:
    try:
        async with aiomqtt.Client("127.0.0.1", 1883, timeout=2):
            return True
    except (aiomqtt.MqttError, OSError):
        return False


@pytest.fixture
async def simulator(tmp_path: Path) -> AsyncIterator[ParkingSimulator]:
    if not await _mosquitto():
        pytest.skip("no Mosquitto on 127.0.0.1:1883 (CI starts it)")
    sim = ParkingSimulator(seed=11, exports=tmp_path / "sms", ticks=2,
                           prefix=f"tests/parking/{uuid.uuid4().hex[:10]}")
    await sim.start()
    yield sim
    await sim.stop()


def parking(url: str) -> dict[str, list[dict[str, Any]]]:
    found = {t: held(url, t, PARKING) for t in ("ParkingSpot", "OnStreetParking",
                                                "OffStreetParking")}
    found["ParkingSession"] = held(url, "ParkingSession", SESSION_CONTEXT)
    return found


def mirrors(found: dict[str, list[dict[str, Any]]], sim: ParkingSimulator) -> bool:
    """The broker holds the simulator's every space, car park and session, once each."""
    truth = sim.state.truth()
    spots = {e["id"].rsplit("craiova-", 1)[1]: e["status"]["value"] for e in found["ParkingSpot"]}
    expected = {k: v.lower() for k, v in truth["spots"].items()}
    parks = {e["id"].rsplit("craiova-", 1)[1]: e["availableSpotNumber"]["value"]
             for e in found["OffStreetParking"]}
    sessions = [e["id"].rsplit("craiova-sms-", 1)[1] for e in found["ParkingSession"]]
    ended = sorted(e["id"].rsplit("craiova-sms-", 1)[1] for e in found["ParkingSession"]
                   if e["status"]["value"] == "completed")
    free = {e["id"].rsplit("zona-", 1)[1]: e.get("availableSpotNumber", {}).get("value")
            for e in found["OnStreetParking"]}
    free_truth = {zone: sum(s["zone"] == zone and s["event"] == "FREE"
                            for s in sim.state.spaces.values()) for zone in free}
    return (spots == expected and parks == truth["carparks"] and free == free_truth
            and ended == truth["ended"]
            and sorted(sessions) == sorted(truth["sessions"]) and len(set(sessions)) ==
            len(sessions) and len(found["OnStreetParking"]) == ZONES)


@contextlib.asynccontextmanager
async def running(sim: ParkingSimulator, broker: BrokerProcess, state: Path,
                  **config: Any) -> AsyncIterator[asyncio.Task[Any]]:
    """The adapter in this process, stopped as SIGTERM stops it (the batch held is sent)."""
    options = Options(broker=broker.url, state_dir=state, linger=0.1)
    task = asyncio.create_task(run(ParkingAdapter(), {**sim.config(), "interval": 0.2,
                                                      **config}, options))
    try:
        yield task
    finally:
        options.stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), STOP_WITHIN)
        except TimeoutError:
            task.cancel()
            raise AssertionError(f"the adapter did not stop within {STOP_WITHIN} s") from None


async def test_every_system_is_published_valid_and_pseudonymised(
        simulator: ParkingSimulator, broker: BrokerProcess, adapter_state: Path,
        adapter_secret: str) -> None:
    async with running(simulator, broker, adapter_state) as task:
        await eventually(lambda: mirrors(parking(broker.url), simulator),
                         "the broker holding what the simulator produced", task=task)
    found = parking(broker.url)
    assert [len(found[t]) for t in ("ParkingSpot", "OnStreetParking", "OffStreetParking",
                                    "ParkingSession")] == [SPACES, ZONES, CAR_PARKS, 12]
    for kind, entities in found.items():
        context = SESSION_CONTEXT if kind == "ParkingSession" else PARKING
        for entity in entities:
            assert problems({**entity, "@context": context}) == [], entity["id"]
    pseudonym = Pseudonymiser(TEST_SECRET.encode())
    by_id = {e["id"]: e for e in found["ParkingSession"]}
    text = json.dumps(found)
    for row in simulator.state.sessions:
        session = by_id[f"urn:ngsi-ld:ParkingSession:craiova-sms-{row['id']}"]
        assert session["plateHash"]["value"] == pseudonym("plate", normalise_plate(row["plate"]))
        assert session["msisdnHash"]["value"] == pseudonym("msisdn",
                                                           normalise_msisdn(row["msisdn"]))
        assert row["plate"] not in text and normalise_plate(row["plate"]) not in text
        assert normalise_msisdn(row["msisdn"])[3:] not in text  # not even without +40
    zones = {e["id"]: e for e in found["OnStreetParking"]}
    assert len(zones["urn:ngsi-ld:OnStreetParking:craiova-zona-A1"]["refParkingSpot"]["object"]
               ) == 24


async def test_the_command_line_form_outside_checks_use(broker: BrokerProcess) -> None:
    if not await _mosquitto():
        pytest.skip("no Mosquitto on 127.0.0.1:1883 (CI starts it)")
    done = await asyncio.to_thread(run_cli, "run", "parking", "--simulate", "--broker",
                                   broker.url, "--limit", "400", "--no-progress")
    assert done.returncode == 0, done.stderr
    counters = json.loads(done.stdout.splitlines()[-1])
    assert (counters["read"], counters["rejected"]) == (400, 0)
    found = parking(broker.url)
    assert len(found["OnStreetParking"]) == ZONES  # the catalogue comes first
    assert sum(len(v) for v in found.values()) > ZONES


async def test_bad_vendor_data_ends_in_the_dead_letter_file(
        simulator: ParkingSimulator, broker: BrokerProcess, adapter_state: Path,
        adapter_secret: str) -> None:
    async with running(simulator, broker, adapter_state) as task:
        await eventually(lambda: len(held(broker.url, "ParkingSpot", PARKING)) == SPACES,
                         "the spaces published", task=task)
        for kind in ("sensor-truncated", "sensor-impossible", "sensor-unknown-zone",
                     "carpark-impossible", "sms-truncated", "sms-encoding", "sms-impossible",
                     "sms-unknown-zone"):
            await simulator.inject(kind, 2 if kind == "sms-impossible" else 1)
        await eventually(lambda: len(dead_letters(adapter_state)) >= 9, "nine dead letters",
                         task=task)
        await eventually(lambda: mirrors(parking(broker.url), simulator),
                         "every good record published, the bad files' good rows too", task=task)
    letters = dead_letters(adapter_state)
    reasons = [letter["reason"] for letter in letters]
    assert len(letters) == 9, reasons

    def one(words: str) -> dict[str, Any]:
        [found] = [letter for letter in letters if words in letter["reason"]]
        return found

    assert one("payload: not JSON")["stream"] == "sensors"
    assert one("lat: 4.43 is impossible")["stream"] == "sensors"
    assert one("free: 1250 spaces free of a capacity of 1200")["stream"] == "carparks"
    assert one("(truncated?)")["stream"].endswith(".csv")
    assert one("bytes that are not utf-8")["stream"].endswith(".csv")
    assert one("amount_ron: -5.00 RON is impossible")
    assert one("duration_min: 4320 is impossible")
    assert sum("zone: 'Z9' is not a parking zone" in r for r in reasons) == 2
    # nothing of a bad record was published
    ids = {e["id"] for kind in parking(broker.url).values() for e in kind}
    assert not any("BAD" in i for i in ids)
    # and no dead letter holds a plate or a phone number in clear
    rows = [letter["raw"] for letter in letters if letter["stream"].endswith(".csv")]
    assert len(rows) == 5
    for row in rows:
        fields = row if isinstance(row, list) else [row["msisdn"], row["plate"]]
        assert fields[1 if isinstance(row, list) else 0] == "<masked>"
        assert fields[2 if isinstance(row, list) else 1] == "<masked>"
    text = json.dumps(letters)
    for session in simulator.state.sessions:
        assert session["plate"] not in text and session["msisdn"] not in text


async def test_killed_mid_stream_then_restarted_nothing_lost_nothing_doubled(
        simulator: ParkingSimulator, broker: BrokerProcess, adapter_state: Path,
        tmp_path: Path) -> None:
    for _ in range(6):
        await simulator.tick()  # eight export files in all, 48 sessions
    client = f"tests-parking-crash-{uuid.uuid4().hex[:8]}"  # a persistent MQTT session
    config = tmp_path / "parking.json"
    config.write_text(json.dumps({**simulator.config(), "interval": 0.2, "client_id": client}))
    # One record a batch for the first run: a checkpoint and a round trip per record, so that
    # the kill lands mid-stream even when the machine is fast (five a batch could finish all
    # eight exports between two looks at the checkpoint).
    args = ("run", "parking", "--config", str(config), "--broker", broker.url,
            "--state", str(adapter_state), "--no-progress")
    try:
        first = spawn_cli(*args, "--batch-size", "1")
        try:
            await eventually(lambda: sum(k.endswith(".csv")
                                         for k in checkpoint(adapter_state)) >= 2,
                             "a first export checkpointed")
            first.send_signal(signal.SIGKILL)
            first.wait()
        finally:
            if first.poll() is None:
                first.kill()
        exports = [k for k in checkpoint(adapter_state) if k.endswith(".csv")]
        assert len(exports) < 8, "the adapter was to be killed mid-stream"
        for _ in range(3):
            await simulator.tick()  # spaces change, cars come and go, sessions start
        second = spawn_cli(*args, "--batch-size", "5")
        try:
            await eventually(lambda: mirrors(parking(broker.url), simulator),
                             "the broker holding exactly what the simulator produced",
                             timeout=2 * WAIT)  # a process start on a loaded machine
        finally:
            second.send_signal(signal.SIGTERM)
            try:
                second.wait(20)
            except subprocess.TimeoutExpired:
                second.kill()
                raise
    finally:
        async with aiomqtt.Client("127.0.0.1", 1883, identifier=client, clean_session=True):
            pass  # the persistent session, discarded
    assert len(parking(broker.url)["ParkingSession"]) == 12 + 36 + 18


async def test_a_subscription_receives_the_changes(
        simulator: ParkingSimulator, broker: BrokerProcess, adapter_state: Path,
        adapter_secret: str) -> None:
    async with serving_receiver() as receiver, httpx.AsyncClient(base_url=broker.url) as http, \
            running(simulator, broker, adapter_state) as task:
        await eventually(lambda: mirrors(parking(broker.url), simulator), "the first state",
                         task=task)
        subscriptions = [
            {"id": "urn:ngsi-ld:Subscription:tests-spots", "type": "Subscription",
             "entities": [{"type": "ParkingSpot"}], "watchedAttributes": ["status"],
             "notification": {"format": "keyValues",
                              "endpoint": {"uri": f"{receiver.url}/spots"}},
             "@context": PARKING},
            {"id": "urn:ngsi-ld:Subscription:tests-sessions", "type": "Subscription",
             "entities": [{"type": "ParkingSession"}],
             "notification": {"format": "keyValues",
                              "endpoint": {"uri": f"{receiver.url}/sessions"}},
             "@context": SESSION_CONTEXT}]
        for body in subscriptions:
            answer = await http.post("/ngsi-ld/v1/subscriptions", json=body,
                                     headers={"Content-Type": "application/ld+json"})
            assert answer.status_code == 201, answer.text
        before = simulator.state.truth()
        await simulator.tick()
        after = simulator.state.truth()
        changed = {space: state.lower() for space, state in after["spots"].items()
                   if before["spots"][space] != state}
        new_sessions = set(after["sessions"]) - set(before["sessions"])
        assert changed and new_sessions

        def notified(path: str) -> dict[str, dict[str, Any]]:
            return {entity["id"]: entity for r in receiver.received if r.path == path
                    for entity in r.body["data"]}

        def arrived() -> bool:
            spots = notified("/spots")
            sessions = notified("/sessions")
            return all(spots.get(f"urn:ngsi-ld:ParkingSpot:craiova-{space}", {}).get("status")
                       == state for space, state in changed.items()) and all(
                f"urn:ngsi-ld:ParkingSession:craiova-sms-{s}" in sessions for s in new_sessions)

        await eventually(arrived, "the notifications of the changed spaces and new sessions",
                         task=task)
    text = json.dumps([r.body for r in receiver.received])
    for row in simulator.state.sessions:
        assert normalise_plate(row["plate"]) not in text  # pseudonyms only, also notified
    sessions = notified("/sessions")
    assert all(len(s["plateHash"]) == 64 for s in sessions.values())
