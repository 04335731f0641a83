"""The ticketing adapter end to end: the RAT Craiova back-office simulator (GTFS feed and tap
log over HTTP) -> the adapter -> a real broker process. The entities are there and keep the
contracts, card UIDs appear only as keyed pseudonyms, the hourly aggregate counts exactly the
accepted taps; bad vendor data ends in the dead-letter file; an adapter killed mid-stream and
restarted leaves the broker holding exactly what the simulator produced; a subscription
receives the changes."""

from __future__ import annotations

import contextlib
import io
import json
import signal
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from adapters.sdk import Pseudonymiser
from adapters.sdk.hooks import Raw
from adapters.sdk.run import Options, run
from adapters.sdk.validate import problems
from adapters.ticketing.adapter import TicketingAdapter
from adapters.ticketing.aggregate import TRANSPORTATION_CONTEXT, hourly_entities
from adapters.ticketing.mapping import Feed, network_of
from adapters.ticketing.parse import GTFS_FILES, feed_files, feed_lines, parse_row, parse_tap
from adapters.ticketing.simulator import TicketingSimulator, TicketingSystem
from adapters.ticketing.sources import GtfsFeed
from tests.adapters.support import (
    TEST_SECRET,
    BrokerProcess,
    checkpoint,
    dead_letters,
    eventually,
    run_cli,
    spawn_cli,
)
from tests.adapters.support import entities as held
from tests.broker.subscriptions.conftest import serving_receiver

URBAN = "https://smart-data-models.github.io/dataModel.UrbanMobility/context.jsonld"
CETATE = "https://cetate.city/ns/context.jsonld"
GTFS_TYPES = "GtfsAgency,GtfsStop,GtfsRoute,GtfsTrip"


class Truth:
    """What the broker must hold after the simulator's whole log went through the adapter."""

    def __init__(self, system: TicketingSystem, pseudonymise: Pseudonymiser) -> None:
        files = feed_files(system.feed_zip())
        rows = [parse_row(line) for name in GTFS_FILES
                for line, error in feed_lines(name, files[name]) if not error]
        self.network = network_of(rows)
        taps = []
        for seq in range(1, system.taps + 1):
            with contextlib.suppress(Exception):
                taps.append(parse_tap(system.tap_line(seq)))
        known = [t for t in taps if t.stop_id in self.network.stops
                 and (t.product is None or t.product in self.network.products)]
        self.validations = {f"urn:ngsi-ld:TicketValidation:rat-craiova:{t.txn}" for t in known}
        self.cards = {f"urn:ngsi-ld:TransitCard:{pseudonymise('card', t.card_uid)}"
                      for t in known}
        self.hourly = {e["id"]: e["peopleCount"]["value"]
                       for e in hourly_entities(taps, self.network)}
        self.uids = {t.card_uid for t in taps}


def holding(url: str) -> dict[str, list[dict[str, Any]]]:
    return {"gtfs": held(url, GTFS_TYPES, URBAN),
            "FareProduct": held(url, "FareProduct", CETATE),
            "TransitCard": held(url, "TransitCard", CETATE),
            "TicketValidation": held(url, "TicketValidation", CETATE),
            "CrowdFlowObserved": held(url, "CrowdFlowObserved", TRANSPORTATION_CONTEXT)}


def mirrors(found: dict[str, list[dict[str, Any]]], truth: Truth) -> bool:
    validations = [e["id"] for e in found["TicketValidation"]]
    return (len(validations) == len(set(validations)) and set(validations) == truth.validations
            and {e["id"] for e in found["TransitCard"]} == truth.cards
            and {e["id"]: e["peopleCount"]["value"] for e in found["CrowdFlowObserved"]}
            == truth.hourly)




@contextlib.asynccontextmanager
async def serving(system: TicketingSystem) -> AsyncIterator[TicketingSimulator]:
    simulator = TicketingSimulator(system)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


def test_run_simulate_publishes_valid_pseudonymised_entities(
        broker: BrokerProcess, adapter_state: Path, tmp_path: Path) -> None:
    settings: dict[str, Any] = {"seed": 7, "taps": 300, "interval": 30.0}
    config = tmp_path / "ticketing.json"
    config.write_text(json.dumps({"simulator": settings}))
    done = run_cli("run", "ticketing", "--simulate", "--broker", broker.url, "--limit", "1000",
                   "--state", str(adapter_state), "--config", str(config), "--no-progress")
    assert done.returncode == 0, done.stderr
    counters = json.loads(done.stdout.splitlines()[-1])
    assert counters["rejected"] == 0 and dead_letters(adapter_state) == []
    truth = Truth(TicketingSystem(**settings), Pseudonymiser(TEST_SECRET.encode()))
    found = holding(broker.url)
    assert mirrors(found, truth)
    assert sorted(e["type"] for e in found["gtfs"]).count("GtfsStop") == 14
    assert len(found["FareProduct"]) == 7
    assert len(found["CrowdFlowObserved"]) == len(truth.hourly) > 14
    assert sum(truth.hourly.values()) == sum(
        1 for seq in range(1, 301) if TicketingSystem(**settings).tap(seq)["result"] == "OK")
    contexts = {"gtfs": URBAN, "CrowdFlowObserved": TRANSPORTATION_CONTEXT}
    for kind, entities in found.items():
        for entity in entities:
            assert problems({**entity, "@context": contexts.get(kind, CETATE)}) == [], entity
    text = json.dumps(found)
    assert not any(uid in text or uid.lower() in text for uid in truth.uids)


def test_run_simulate_stops_at_the_limit(broker: BrokerProcess, adapter_state: Path) -> None:
    done = run_cli("run", "ticketing", "--simulate", "--broker", broker.url, "--limit", "120",
                   "--state", str(adapter_state), "--no-progress")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["read"] == 120


async def test_bad_vendor_data_ends_in_the_dead_letter_file(
        broker: BrokerProcess, adapter_state: Path, adapter_secret: str) -> None:
    system = TicketingSystem(seed=7, taps=400, interval=30.0, bad_every=40, bad=frozenset({
        "latin1-stops", "short-row", "bad-coordinates", "unknown-stop", "broken-json"}))
    async with serving(system) as simulator:
        await run(TicketingAdapter(), {"url": simulator.url, "follow": False},
                  Options(broker=broker.url, state_dir=adapter_state, linger=0.1))
    letters = dead_letters(adapter_state)
    reasons = [letter["reason"] for letter in letters]

    def one(words: str) -> dict[str, Any]:
        [found] = [letter for letter in letters if words in letter["reason"]]
        return found

    assert one("stops.txt line 16: not UTF-8")["stream"].startswith("gtfs@")
    assert one("stop_lat '144.30000' is not a coordinate")["stream"].startswith("gtfs@")
    assert one("routes.txt line 6: 4 fields, the header has 8 (truncated line?)")
    broken = [letter for letter in letters if "tap: not JSON" in letter["reason"]]
    unknown = [letter for letter in letters if "unknown stop 'S99'" in letter["reason"]]
    # taps 40, 80... are both cut short and at S99: the JSON breaks first
    assert [b["position"] for b in broken] == list(range(40, 401, 40))
    assert unknown == []
    assert len(letters) == 3 + 10, reasons
    found = holding(broker.url)
    ids = {e["id"] for kind in found.values() for e in kind}
    assert not any(i.endswith(("S15", "S16", ":E2")) for i in ids)
    validations = {e["id"] for e in found["TicketValidation"]}
    assert len(validations) == 390
    assert not any(i.endswith(f"-{seq:08d}") for i in validations for seq in range(40, 401, 40))


async def test_unknown_stops_are_dead_letters(broker: BrokerProcess, adapter_state: Path,
                                              adapter_secret: str) -> None:
    system = TicketingSystem(seed=8, taps=200, interval=30.0, bad_every=25,
                             bad=frozenset({"unknown-stop"}))
    async with serving(system) as simulator:
        await run(TicketingAdapter(), {"url": simulator.url, "follow": False,
                                       "streams": ["taps"]},
                  Options(broker=broker.url, state_dir=adapter_state, linger=0.1))
    letters = dead_letters(adapter_state)
    assert [(d["stream"], d["position"]) for d in letters] == [("taps", n)
                                                              for n in range(25, 201, 25)]
    assert all("unknown stop 'S99' (not in the GTFS feed's stops.txt)" in d["reason"]
               for d in letters)
    assert len(held(broker.url, "TicketValidation", CETATE)) == 192
    assert held(broker.url, GTFS_TYPES, URBAN) == []  # streams without "gtfs": feed read only


async def test_a_new_feed_version_is_read_again_the_same_one_resumes() -> None:
    async def lines(system: TicketingSystem, done: dict[str, Any]) -> list[Raw]:
        async with serving(system) as simulator:
            feed = GtfsFeed(f"{simulator.url}/gtfs/feed.zip", Feed(), lambda network: None)
            return [raw async for raw in feed.read(done)]

    first = await lines(TicketingSystem(), {})
    assert len(first) == 74 and len({raw.stream for raw in first}) == 1
    done = {first[0].stream: first[-1].position}
    assert await lines(TicketingSystem(), done) == []
    assert await lines(TicketingSystem(), {first[0].stream: first[40].position}) == first[41:]
    changed = await lines(TicketingSystem(bad=frozenset({"bad-coordinates"})), done)
    assert len(changed) == 75 and changed[0].stream != first[0].stream
    # the same files zipped again (another zip timestamp) are the same version
    data = TicketingSystem().feed_zip()
    again = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as old, zipfile.ZipFile(again, "w") as new:
        for name in old.namelist():
            new.writestr(zipfile.ZipInfo(name, date_time=(2027, 2, 3, 4, 5, 6)), old.read(name))
    assert again.getvalue() != data
    assert GtfsFeed.lines(GtfsFeed("", Feed(), print), again.getvalue())[0].stream == \
        first[0].stream


async def test_killed_mid_stream_then_restarted_nothing_lost_nothing_doubled(
        broker: BrokerProcess, adapter_state: Path, tmp_path: Path) -> None:
    system = TicketingSystem(seed=9, taps=600, interval=30.0)
    truth = Truth(system, Pseudonymiser(TEST_SECRET.encode()))
    async with serving(system) as simulator:
        config = tmp_path / "ticketing.json"
        config.write_text(json.dumps({"url": simulator.url, "follow": False, "page": 50}))
        args = ("run", "ticketing", "--config", str(config), "--broker", broker.url,
                "--state", str(adapter_state), "--batch-size", "20", "--no-progress")
        first = spawn_cli(*args)
        try:
            await eventually(lambda: int(checkpoint(adapter_state).get("taps", 0)) >= 100,
                             "100 taps checkpointed")
            first.send_signal(signal.SIGKILL)
            first.wait()
        finally:
            if first.poll() is None:
                first.kill()
        assert int(checkpoint(adapter_state)["taps"]) < 600, "to be killed mid-stream"
        assert not mirrors(holding(broker.url), truth)
        second = spawn_cli(*args)
        try:
            await eventually(lambda: second.poll() is not None, "the restarted run's end", 60)
        finally:
            if second.poll() is None:
                second.kill()
        assert second.returncode == 0, second.stderr.read() if second.stderr else ""
    found = holding(broker.url)
    assert mirrors(found, truth)
    assert len(found["TicketValidation"]) == 600
    assert dead_letters(adapter_state) == []


async def test_a_subscription_receives_the_changes(broker: BrokerProcess, adapter_state: Path,
                                                   adapter_secret: str) -> None:
    async with serving_receiver() as receiver:
        async with httpx.AsyncClient(base_url=broker.url, timeout=10) as http:
            answer = await http.post("/ngsi-ld/v1/subscriptions", json={
                "id": "urn:ngsi-ld:Subscription:ticketing-hourly", "type": "Subscription",
                "entities": [{"type": "CrowdFlowObserved"}],
                "notification": {"endpoint": {"uri": f"{receiver.url}/notify",
                                              "accept": "application/json"}},
                "@context": TRANSPORTATION_CONTEXT},
                headers={"Content-Type": "application/ld+json"})
        assert answer.status_code == 201, answer.text
        system = TicketingSystem(seed=7, taps=200, interval=30.0)
        async with serving(system) as simulator:
            await run(TicketingAdapter(), {"url": simulator.url, "follow": False,
                                           "streams": ["hours"]},
                      Options(broker=broker.url, state_dir=adapter_state, linger=0.1))
        truth = Truth(system, Pseudonymiser(TEST_SECRET.encode()))

        def notified() -> dict[str, int]:
            return {e["id"]: e["peopleCount"]["value"]
                    for n in receiver.received for e in n.body["data"]}

        await eventually(lambda: notified() == truth.hourly, "every hourly count notified")
        assert all(n.body["subscriptionId"] == "urn:ngsi-ld:Subscription:ticketing-hourly"
                   for n in receiver.received)
