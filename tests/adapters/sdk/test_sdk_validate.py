"""Validation as the broker reads: the example's entity passes, a broken one is named."""

from __future__ import annotations

from adapters.sdk import Pseudonymiser, Raw
from adapters.sdk.example import SDM_TRANSPORTATION, FleetAdapter, FleetSimulator
from adapters.sdk.run import with_context
from adapters.sdk.validate import problems

PSEUDONYMISE = Pseudonymiser(b"k" * 32)


def vehicle(**change: object) -> dict[str, object]:
    fix = {**FleetSimulator({"seed": 1}).fix(5), **change}
    adapter = FleetAdapter()
    [record] = adapter.parse(Raw("positions", 5, fix))
    [entity] = adapter.map(record, PSEUDONYMISE)
    return with_context(entity, adapter.context)


def test_the_example_entity_keeps_the_vehicle_contract() -> None:
    entity = vehicle()
    assert entity["@context"] == SDM_TRANSPORTATION
    assert problems(entity) == []


def test_an_impossible_value_is_named_by_the_contract() -> None:
    [reason] = problems(vehicle(speed_kmh=-40.0))
    assert reason.startswith("Vehicle: speed")


def test_what_the_broker_would_refuse_to_parse() -> None:
    entity = {**vehicle(), "id": "not a URI"}
    [reason] = problems(entity)
    assert "URI" in reason or "uri" in reason
