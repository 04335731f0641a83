"""A test adapter: a JSON-lines file of meter readings, one Vehicle entity per line (distinct
ids, so a lost record shows as a missing entity), with its seq and odometer value kept."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from adapters.sdk import Adapter, BadRecord, Config, Entity, Pseudonymise, Raw, Source
from adapters.sdk.example import SDM_TRANSPORTATION
from adapters.sdk.sources import Files


def write_readings(path: Path, count: int, *, bad: frozenset[int] = frozenset()) -> None:
    """`count` lines; those numbered in `bad` carry an impossible (negative) speed."""
    lines = [f'{{"seq": {n}, "plate": "DJ{n:05d}", "km": {n * 10}, '
             f'"speed": {-40 if n in bad else 20}}}' for n in range(1, count + 1)]
    path.write_text("\n".join(lines) + "\n")


def entity_id(seq: int) -> str:
    return f"urn:ngsi-ld:Vehicle:test-reading-{seq:06d}"


class Readings(Adapter):
    name = "readings"
    context = SDM_TRANSPORTATION

    def source(self, config: Config) -> Source:
        return Files(config["path"])

    def parse(self, raw: Raw) -> Iterable[dict[str, Any]]:
        if "seq" not in raw.data:
            raise BadRecord("no seq")
        return [raw.data]

    def map(self, record: dict[str, Any], pseudonymise: Pseudonymise) -> Iterable[Entity]:
        yield {"id": entity_id(record["seq"]), "type": "Vehicle",
               "vehicleType": {"type": "Property", "value": "van"},
               "category": {"type": "Property", "value": ["municipalServices"]},
               "location": {"type": "GeoProperty",
                            "value": {"type": "Point", "coordinates": [23.7965, 44.3190]}},
               "vehiclePlateIdentifier": {"type": "Property",
                                          "value": pseudonymise("plate", record["plate"])},
               "speed": {"type": "Property", "value": record["speed"]},
               "mileageFromOdometer": {"type": "Property", "value": record["km"]}}


ADAPTER = Readings
