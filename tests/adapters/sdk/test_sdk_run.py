"""The run against a real broker process: published entities are there and keep their
contract; bad records end in the dead-letter file with a reason; a second run resumes after
the checkpoint; the counters are kept in status.json."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from adapters.sdk import Entity, Pseudonymise, Pseudonymiser
from adapters.sdk.example import SDM_TRANSPORTATION, FleetAdapter
from adapters.sdk.run import Options, run, run_simulated
from adapters.sdk.validate import problems
from tests.adapters.sdk.readings import Readings, entity_id, write_readings
from tests.adapters.support import TEST_SECRET, BrokerProcess, checkpoint, dead_letters, status
from tests.adapters.support import entities as broker_entities


def options(broker: BrokerProcess, state: Path, **more: object) -> Options:
    return Options(broker=broker.url, state_dir=state, **more)  # type: ignore[arg-type]


@pytest.fixture
def broker(shared_broker: BrokerProcess) -> BrokerProcess:
    return shared_broker


async def test_simulated_fleet_is_published_and_valid(broker: BrokerProcess, adapter_state: Path,
                                                      adapter_secret: str, tenant: str) -> None:
    counters = await run_simulated(FleetAdapter(), {"simulator": {"trucks": 7}},
                                   options(broker, adapter_state, limit=250, batch_size=100,
                                           tenant=tenant))
    assert (counters.read, counters.rejected) == (250, 0)
    held = broker_entities(broker.url, "Vehicle", SDM_TRANSPORTATION, tenant=tenant)
    assert len(held) == 7
    for entity in held:
        assert problems({**entity, "@context": SDM_TRANSPORTATION}) == []
    plates = {e["vehiclePlateIdentifier"]["value"] for e in held}
    assert Pseudonymiser(TEST_SECRET.encode())("plate", "DJ01SAL") in plates
    assert checkpoint(adapter_state) == {"positions": 250}
    assert status(adapter_state)["state"] == "finished"


async def test_bad_records_are_dead_lettered_with_reasons(
        broker: BrokerProcess, adapter_state: Path, adapter_secret: str, tenant: str) -> None:
    counters = await run_simulated(FleetAdapter(), {"simulator": {"bad_every": 10}},
                                   options(broker, adapter_state, limit=100, tenant=tenant))
    letters = dead_letters(adapter_state)
    assert counters.rejected == len(letters) == 10
    assert [d["position"] for d in letters] == list(range(10, 101, 10))
    no_position = [d for d in letters if d["position"] % 20 == 10]
    impossible = [d for d in letters if d["position"] % 20 == 0]
    assert all(d["reason"] == f"fix {d['position']} lacks lat" for d in no_position)
    assert all("Vehicle: speed" in d["reason"] for d in impossible)
    assert all(d["raw"]["seq"] == d["position"] for d in letters)


async def test_a_second_run_resumes_after_the_checkpoint(
        broker: BrokerProcess, tmp_path: Path, adapter_state: Path, adapter_secret: str,
        tenant: str) -> None:
    path = tmp_path / "readings.jsonl"
    write_readings(path, 120, bad=frozenset({7}))
    first = await run(Readings(), {"path": str(path)},
                      options(broker, adapter_state, limit=50, batch_size=20, tenant=tenant))
    assert checkpoint(adapter_state) == {"readings.jsonl": 50}
    second = await run(Readings(), {"path": str(path)}, options(broker, adapter_state,
                                                                batch_size=20, tenant=tenant))
    assert (first.read, second.read) == (50, 70)
    held = {e["id"]
            for e in broker_entities(broker.url, "Vehicle", SDM_TRANSPORTATION, tenant=tenant)}
    assert held == {entity_id(n) for n in range(1, 121) if n != 7}
    assert [d["position"] for d in dead_letters(adapter_state)] == [7]


async def test_the_broker_refusal_of_one_entity_is_a_dead_letter(
        stopped_broker: BrokerProcess, tmp_path: Path, adapter_state: Path, adapter_secret: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A broker accepting contract types only refuses, in its 207, the one entity of a type
    # without a contract, which the adapter's own check lets pass: dead-lettered alone.
    monkeypatch.setenv("CETATE_VALIDATION", "strict+closed")
    broker = stopped_broker.start()

    class Unknown(Readings):
        def map(self, record: dict[str, Any], pseudonymise: Pseudonymise) -> Iterable[Entity]:
            for entity in super().map(record, pseudonymise):
                yield {**entity, "type": "MeterReading"} if record["seq"] == 3 else entity

    path = tmp_path / "readings.jsonl"
    write_readings(path, 5)
    counters = await run(Unknown(), {"path": str(path)}, options(broker, adapter_state))
    [letter] = dead_letters(adapter_state)
    assert (counters.read, counters.published, counters.rejected) == (5, 4, 1)
    assert letter["position"] == 3 and letter["reason"].startswith("broker: ")
    assert "no contract" in letter["reason"] and letter["entity"]["type"] == "MeterReading"
    held = {e["id"] for e in broker_entities(broker.url, "Vehicle", SDM_TRANSPORTATION)}
    assert held == {entity_id(n) for n in (1, 2, 4, 5)}


async def test_an_adapter_tripping_on_a_record_dead_letters_it(
        broker: BrokerProcess, tmp_path: Path, adapter_state: Path, adapter_secret: str,
        tenant: str) -> None:
    class Tripping(Readings):
        def map(self, record: dict[str, Any], pseudonymise: Pseudonymise) -> Iterable[Entity]:
            if record["seq"] == 2:
                raise KeyError("vendor_field")  # a bug on unexpected data, not a BadRecord
            return super().map(record, pseudonymise)

    path = tmp_path / "readings.jsonl"
    write_readings(path, 3)
    counters = await run(Tripping(), {"path": str(path)},
                         options(broker, adapter_state, tenant=tenant))
    [letter] = dead_letters(adapter_state)
    assert (counters.published, letter["position"]) == (2, 2)
    assert letter["reason"] == "the adapter failed on this record: KeyError('vendor_field')"


async def test_a_batch_over_the_broker_body_limit_goes_in_halves(
        stopped_broker: BrokerProcess, tmp_path: Path, adapter_state: Path, adapter_secret: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CETATE_MAX_BODY_BYTES", "20000")  # ~30 of these entities
    broker = stopped_broker.start()
    path = tmp_path / "readings.jsonl"
    write_readings(path, 120)
    counters = await run(Readings(), {"path": str(path)},
                         options(broker, adapter_state, batch_size=100))
    assert (counters.published, counters.rejected) == (120, 0)
    assert len(broker_entities(broker.url, "Vehicle", SDM_TRANSPORTATION)) == 120
