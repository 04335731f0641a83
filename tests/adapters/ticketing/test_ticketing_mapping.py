"""The ticketing adapter's pure core: GTFS lines and taps -> entities that keep the contracts,
card UIDs only as keyed pseudonyms, and the per-stop-hour aggregate with no card in it."""

from __future__ import annotations

import io
import json
import zipfile
from collections import Counter
from datetime import UTC, datetime

import pytest

from adapters.sdk import BadRecord, Pseudonymiser
from adapters.sdk.hooks import Raw
from adapters.sdk.validate import problems
from adapters.ticketing.adapter import HourTaps, TicketingAdapter
from adapters.ticketing.aggregate import count_by_stop_hour, hourly_entities
from adapters.ticketing.mapping import Feed, card_id, map_row, map_tap, network_of
from adapters.ticketing.parse import (
    GTFS_FILES,
    FeedLine,
    feed_files,
    feed_lines,
    parse_row,
    parse_tap,
)
from adapters.ticketing.simulator import STOPS, TicketingSystem
from tests.adapters.support import TEST_SECRET

PSEUDONYMISE = Pseudonymiser(TEST_SECRET.encode())


def rows_of(system: TicketingSystem) -> list:
    files = feed_files(system.feed_zip())
    out = []
    for name in GTFS_FILES:
        for line, error in feed_lines(name, files[name]):
            assert error == ""
            out.append(parse_row(line))
    return out


@pytest.fixture(scope="module")
def system() -> TicketingSystem:
    return TicketingSystem(seed=3, taps=600, interval=20.0)


def test_every_feed_row_maps_to_an_entity_that_keeps_its_contract(
        system: TicketingSystem) -> None:
    rows = rows_of(system)
    entities = [map_row(row, Feed()) for row in rows]
    kinds = Counter(e["type"] for e in entities)
    assert kinds == {"GtfsAgency": 1, "GtfsStop": len(STOPS), "GtfsRoute": 4, "GtfsTrip": 48,
                     "FareProduct": 7}
    for entity in entities:
        assert problems(entity) == [], entity["id"]
    stop = next(e for e in entities if e["id"] == "urn:ngsi-ld:GtfsStop:rat-craiova:S04")
    assert stop["name"]["value"] == "Calea Unirii"
    assert stop["location"]["value"] == {"type": "Point", "coordinates": [23.7965, 44.319]}
    tram = next(e for e in entities if e["id"] == "urn:ngsi-ld:GtfsRoute:rat-craiova:1")
    assert tram["routeType"]["value"] == "0"
    assert tram["operatedBy"] == {"type": "Relationship",
                                  "object": "urn:ngsi-ld:GtfsAgency:rat-craiova:RATC"}
    pass_ = next(e for e in entities if e["id"].endswith("FareProduct:rat-craiova:ABON-ELEV"))
    assert pass_["riderCategory"]["value"] == ["pupil"]
    assert pass_["amount"]["value"] == 0.0 and pass_["priceCurrency"]["value"] == "RON"


def test_gtfs_lines_bom_quotes_and_damage() -> None:
    content = ('\ufeffstop_id,stop_name,stop_lat,stop_lon\r\n'
               'A,"Piaţa ""Mihai Viteazu""\nPeron 2",44.3193,23.7967\r\n'
               'B,Calea Unirii\r\n').encode() + 'C,Piaţa Gării,44.33,23.81\r\n'.encode("cp1250")
    lines = list(feed_lines("stops.txt", content))
    assert [(line.line, error) for line, error in lines][:2] == [(2, ""), (4, "")]
    first = parse_row(lines[0][0])
    assert first.fields["stop_name"] == 'Piaţa "Mihai Viteazu"\nPeron 2'
    with pytest.raises(BadRecord, match=r"stops.txt line 4: 2 fields, the header has 4"):
        parse_row(lines[1][0])
    assert "stops.txt line 5: not UTF-8" in lines[2][1]
    with pytest.raises(BadRecord, match="not a readable zip"):
        feed_files(b"PK\x03\x04 cut")
    row = parse_row(FeedLine("stops.txt", 9, ("stop_id", "stop_name", "stop_lat", "stop_lon"),
                             "S9,Sala Polivalentă,144.3,23.79"))
    with pytest.raises(BadRecord, match=r"stop_lat '144\.3' is not a coordinate"):
        map_row(row, Feed())


def test_a_tap_becomes_a_card_and_a_validation_with_the_uid_only_keyed(
        system: TicketingSystem) -> None:
    network = network_of(rows_of(system))
    doc = system.tap(1)
    tap = parse_tap(json.dumps(doc))
    card, validation = map_tap(tap, network, PSEUDONYMISE)
    assert problems(card) == [] and problems(validation) == []
    hashed = PSEUDONYMISE("card", doc["card_uid"])
    assert card["id"] == f"urn:ngsi-ld:TransitCard:{hashed}" == card_id(doc["card_uid"],
                                                                        PSEUDONYMISE)
    assert card["cardIdHash"]["value"] == hashed
    assert validation["refTransitCard"]["object"] == card["id"]
    assert validation["hasStop"]["object"] == f"urn:ngsi-ld:GtfsStop:rat-craiova:{doc['stop_id']}"
    text = json.dumps([card, validation])
    assert doc["card_uid"] not in text and doc["card_uid"].lower() not in text
    assert "riderCategory" not in text  # art. 9 data stays with the fare product
    # Validators log local time without an offset: Romanian time, +02:00 in December.
    assert validation["dateValidated"]["value"] == doc["ts"] + "+02:00"


def test_summer_time_and_explicit_offsets() -> None:
    base = {"txn": "T1", "card_uid": "04A1B2C3D4E5F6", "validator": "V", "vehicle": "A001",
            "stop_id": "S03", "result": "OK"}
    assert parse_tap(json.dumps({**base, "ts": "2026-07-01T08:00:00"})).at.utcoffset() \
        .total_seconds() == 3 * 3600
    assert parse_tap(json.dumps({**base, "ts": "2026-07-01T05:00:00Z"})).at == \
        datetime(2026, 7, 1, 5, tzinfo=UTC)


@pytest.mark.parametrize(("change", "reason"), [
    ({"stop_id": "S99"}, "unknown stop 'S99'"),
    ({"product": "ABON-ANUL-2019"}, "unknown fare product"),
    ({"result": "MAYBE"}, "unknown media, card_status or result code"),
    ({"amount": "-3.00"}, "amount: negative"),
    ({"amount": "2.505"}, "amount: more than 2 decimals"),
    ({"direction": 2}, "direction: not 0 or 1"),
    ({"ts": "yesterday"}, "not an ISO 8601 time"),
    ({"card_uid": None}, "missing card_uid"),
])
def test_impossible_taps_are_bad_records(system: TicketingSystem, change: dict,
                                         reason: str) -> None:
    network = network_of(rows_of(system))
    with pytest.raises(BadRecord, match=reason):
        map_tap(parse_tap(json.dumps({**system.tap(5), **change})), network, PSEUDONYMISE)


def test_broken_json_is_a_bad_record() -> None:
    with pytest.raises(BadRecord, match="tap: not JSON"):
        parse_tap('{"txn": "T1", "card_uid": "04A1')


def test_hourly_aggregate_counts_boardings_and_names_no_card(system: TicketingSystem) -> None:
    network = network_of(rows_of(system))
    taps = [parse_tap(system.tap_line(seq)) for seq in range(1, system.taps + 1)]
    counts = count_by_stop_hour(taps, network)
    accepted = sum(1 for t in taps if t.result == "OK")
    assert sum(c.boardings for c in counts) == accepted
    assert len({c.hour for c in counts}) == 4  # 600 taps 20 s apart: 3 h 20 min
    entities = hourly_entities(taps, network)
    first = entities[0]
    assert first["type"] == "CrowdFlowObserved"
    assert first["id"] == "urn:ngsi-ld:CrowdFlowObserved:rat-craiova:S01:2026-12-01T03Z"
    assert first["dateObservedFrom"]["value"] == "2026-12-01T03:00:00+00:00"
    assert first["dateObservedTo"]["value"] == "2026-12-01T04:00:00+00:00"
    assert first["dateObserved"]["value"] == "2026-12-01T03:00:00+00:00/2026-12-01T04:00:00+00:00"
    assert first["seeAlso"]["value"] == ["urn:ngsi-ld:GtfsStop:rat-craiova:S01"]
    text = json.dumps(entities)
    assert "TransitCard" not in text and "card" not in text.lower()
    assert all(problems(e) == [] for e in entities)  # contracts/types/CrowdFlowObserved.json
    # An hour's taps, served again, count the same (what makes a replayed hour idempotent).
    assert hourly_entities(list(reversed(taps)), network) == entities


def test_the_simulator_is_deterministic_and_its_hours_partition_the_log() -> None:
    one, two = TicketingSystem(seed=5, taps=300, interval=30), TicketingSystem(seed=5, taps=300,
                                                                               interval=30)
    assert [one.tap_line(s) for s in range(1, 301)] == [two.tap_line(s) for s in range(1, 301)]
    assert one.feed_zip() == two.feed_zip()
    assert TicketingSystem(seed=6).tap_line(1) != one.tap_line(1)
    hours = one.closed_hours(300, None)
    seqs = [s for hour in hours for s in one.hour_seqs(hour)]
    assert seqs == list(range(1, 301))
    assert one.closed_hours(150, None) == hours[:1]  # the hour of tap 150 is still open


def test_the_adapter_reads_an_hour_record_skipping_its_broken_lines(
        system: TicketingSystem) -> None:
    adapter = TicketingAdapter()
    adapter.network = network_of(rows_of(system))
    lines = [system.tap_line(s) for s in range(1, 40)] + ['{"txn": "cut']
    [record] = adapter.parse(Raw("hours", 1796097600, {"hour": 1796097600, "taps": lines}))
    assert isinstance(record, HourTaps) and len(record) == 39
    assert adapter.map(record, PSEUDONYMISE)


def test_the_feed_zip_can_be_cut_short() -> None:
    data = TicketingSystem(bad=frozenset({"truncated-feed"})).feed_zip()
    with pytest.raises(BadRecord):
        feed_files(data)
    whole = io.BytesIO(TicketingSystem().feed_zip())
    assert "stop_times.txt" in zipfile.ZipFile(whole).namelist()
