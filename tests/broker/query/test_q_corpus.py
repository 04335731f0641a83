"""A corpus of q expressions in the style of the specification's examples (clauses 4.9, 5.7.2,
6.4.3.2: Vehicle, OffStreetParking, sensors), each parsed, evaluated by qlang.matches and run as
SQL on a real SQLite store: both must give the expected entities."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.query.qlang import expand_names, matches, parse_q, unparse
from broker.store.protocol import EntityQuery
from broker.store.sqlite import SQLiteStore

D = "https://uri.etsi.org/ngsi-ld/default-context/"
T0 = "2026-11-23T10:00:00.000Z"


def expand(name: str) -> str:
    return name if ":" in name else D + name


def prop(value: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value, **extra}


def rel(target: str, **extra: Any) -> dict[str, Any]:
    return {"type": "Relationship", "object": target, **extra}


def thing(ident: str, kind: str, **attrs: Any) -> dict[str, Any]:
    def instances(value: Any) -> list[dict[str, Any]]:
        return value if isinstance(value, list) else [value]
    return {"id": f"urn:ngsi-ld:{kind}:{ident}", "type": [D + kind], "createdAt": T0,
            "modifiedAt": T0, "attrs": {expand(k): instances(v) for k, v in attrs.items()}}


FIXTURES = [
    thing("A4567", "Vehicle",
          brandName=prop("Mercedes"),
          speed=[prop(55, observedAt="2017-07-29T12:00:04.000Z", unitCode="KMH",
                      **{D + "source": prop("Speedometer")}),
                 prop(54.5, datasetId="urn:ngsi-ld:Property:gps", unitCode="KMH")],
          isParked=rel("urn:ngsi-ld:OffStreetParking:Downtown1",
                       observedAt="2017-07-29T12:00:04.000Z",
                       **{D + "providedBy": rel("urn:ngsi-ld:Person:Bob")}),
          address=prop({"street": "Ulrichstrasse", "city": "Berlin",
                        "sensor": {"rawdata": 40}}),
          category=prop(["commercial", "office"])),
    thing("B9211", "Vehicle",
          brandName=prop("Volvo"), speed=prop(120, observedAt="2017-07-29T12:05:00.000Z"),
          address=prop({"street": "Calea Unirii", "city": "Craiova"}),
          category=prop("municipalServices")),
    thing("Downtown1", "OffStreetParking",
          name=prop("Downtown One"), availableSpotNumber=prop(121), totalSpotNumber=prop(200),
          isMonitoredBy=rel("urn:ngsi-ld:Camera:C1")),
    thing("sensor-1", "TemperatureSensor",
          temperature=prop(22.5, observedAt="2026-11-23T09:00:00.000Z", unitCode="CEL"),
          capacity=prop(5)),
    thing("sensor-2", "TemperatureSensor", temperature=prop(-4), capacity=prop(50)),
]
IDS = {e["id"].rsplit(":", 1)[1]: e for e in FIXTURES}

CORPUS = [
    ('brandName=="Mercedes"', ["A4567"]),
    ('brandName!="Mercedes"', ["B9211"]),  # only where brandName exists
    ("isParked==urn:ngsi-ld:OffStreetParking:Downtown1", ["A4567"]),
    ('isParked=="urn:ngsi-ld:OffStreetParking:Downtown1"', ["A4567"]),
    ("isParked.providedBy==urn:ngsi-ld:Person:Bob", ["A4567"]),
    ("isMonitoredBy", ["Downtown1"]),
    ("!isMonitoredBy;availableSpotNumber", []),
    ("speed>50;isParked", ["A4567"]),
    ("speed>100|brandName==\"Mercedes\"", ["A4567", "B9211"]),
    ("speed==50..60", ["A4567"]),
    ("speed==54.5", ["A4567"]),  # the gps instance
    ("speed.unitCode==\"KMH\"", ["A4567"]),
    ("speed.datasetId==urn:ngsi-ld:Property:gps", ["A4567"]),
    ("speed.source==\"Speedometer\"", ["A4567"]),
    ("speed.observedAt>=2017-07-29T12:01:00Z", ["B9211"]),
    ("speed.observedAt==2017-07-29T14:00:04+02:00", ["A4567"]),  # the same instant
    ("isParked.observedAt<2017-07-30", ["A4567"]),  # a date
    ("availableSpotNumber>=100;totalSpotNumber<300", ["Downtown1"]),
    ("(temperature>=20;temperature<=25)|capacity<=10", ["sensor-1"]),
    ("temperature==20..25|capacity>=50", ["sensor-1", "sensor-2"]),
    ("temperature<0", ["sensor-2"]),
    ("temperature.observedAt>=2026-11-23T00:00:00Z", ["sensor-1"]),
    ("temperature.unitCode==\"CEL\"", ["sensor-1"]),
    ('address[city]=="Berlin"', ["A4567"]),
    ('address[city]=="Berlin","Craiova"', ["A4567", "B9211"]),
    ('address[street]~="(?i)^calea"', ["B9211"]),
    ("address[sensor][rawdata]==40", ["A4567"]),
    ("address[sensor]", ["A4567"]),
    ('category=="commercial","office"', ["A4567"]),
    ('category=="municipalServices"', ["B9211"]),
    ('category!="commercial"', ["B9211"]),
    ('name~="Down"', ["Downtown1"]),
    ('name!~="Down"', []),
    ('brandName~="(?i)merc"', ["A4567"]),
    (f"{D}brandName==\"Volvo\"", ["B9211"]),
]


@pytest.fixture(scope="module")
def corpus_store(tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[tuple[SQLiteStore, asyncio.AbstractEventLoop]]:
    path: Path = tmp_path_factory.mktemp("corpus") / "c.db"
    store = SQLiteStore(str(path), synchronous="OFF", readers=1)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(store.open())

    def put(e: dict[str, Any]) -> Any:
        return lambda _: (e, None)
    loop.run_until_complete(store.apply_many("", [(e["id"], put(e)) for e in FIXTURES]))
    yield store, loop
    loop.run_until_complete(store.close())
    loop.close()


@pytest.mark.parametrize(("q", "expected"), CORPUS, ids=[c[0] for c in CORPUS])
def test_corpus(corpus_store: tuple[SQLiteStore, asyncio.AbstractEventLoop], q: str,
                expected: list[str]) -> None:
    tree = parse_q(q)
    assert parse_q(unparse(tree)) == tree
    expanded = expand_names(tree, expand)
    by_evaluator = sorted(name for name, e in IDS.items() if matches(expanded, e))
    assert by_evaluator == sorted(expected)
    store, loop = corpus_store
    result = loop.run_until_complete(store.query_entities("", EntityQuery(q=expanded,
                                                                          limit=100)))
    assert sorted(e["id"].rsplit(":", 1)[1] for e in result.entities) == sorted(expected)
