"""The parking simulator's records, parsed and mapped, pure: entities the broker accepts, plates
and phone numbers only as keyed pseudonyms, Romanian formats read right, bad data refused with
a reason that never quotes a plate or a phone number."""

from __future__ import annotations

import json
from typing import Any

import pytest

from adapters.parking import mapping, parse
from adapters.parking.simulator import ZONES, Parking
from adapters.sdk import Pseudonymiser
from adapters.sdk.errors import BadRecord
from adapters.sdk.validate import problems

PSEUDONYMISE = Pseudonymiser(b"test-key-of-thirty-two-bytes!!!!")
ZONE_CODES = frozenset(z[0] for z in ZONES)


def with_context(entity: dict[str, Any]) -> dict[str, Any]:
    return {**entity, "@context": mapping.context_of(entity)}


def row(**change: str) -> dict[str, str]:
    base = {"id": "SMS-20261201-000001", "msisdn": "0722 123 456", "plate": "DJ 12 ABC",
            "zone": "A1", "street": "Calea Unirii", "start": "2026-12-01 10:15:00",
            "duration_min": "60", "amount_ron": "3,00", "status": "ACTIV"}
    return {**base, **change}


def test_every_simulated_record_maps_to_entities_the_broker_accepts() -> None:
    city = Parking(seed=9)
    events, sessions = city.tick(3)
    zones = [parse.parse_zone(z) for z in city.zones_answer()["zones"]]
    entities = [mapping.on_street_parking(z) for z in zones]
    assert sum(len(e["refParkingSpot"]["object"]) for e in entities) == len(city.spaces)
    entities += [mapping.off_street_parking(parse.parse_car_park(p))
                 for p in city.car_park_answer()["carparks"]]
    entities += [mapping.parking_spot(parse.parse_sensor_event(payload), ZONE_CODES)
                 for _, payload in city.all_events() + events]
    entities += [mapping.parking_session(parse.parse_sms_row(s, n), PSEUDONYMISE, ZONE_CODES)
                 for n, s in enumerate(sessions, 1)]
    for entity in entities:
        assert problems(with_context(entity)) == [], entity["id"]
    assert {e["type"] for e in entities} == {"OnStreetParking", "OffStreetParking",
                                             "ParkingSpot", "ParkingSession"}
    assert len(sessions) == 18 and len(events) == 12


def test_same_seed_same_city() -> None:
    assert Parking(seed=4).tick(2) == Parking(seed=4).tick(2)
    assert Parking(seed=4).tick(2) != Parking(seed=5).tick(2)


@pytest.mark.parametrize("written", ["DJ 12 ABC", "dj-12-abc", "DJ12ABC", "Dj 12 aBc"])
def test_one_car_one_pseudonym_however_the_plate_is_written(written: str) -> None:
    session = mapping.parking_session(parse.parse_sms_row(row(plate=written), 1), PSEUDONYMISE)
    assert session["plateHash"]["value"] == PSEUDONYMISE("plate", "DJ12ABC")


@pytest.mark.parametrize("written", ["0722123456", "0722 123 456", "+40722123456",
                                     "0040722123456", "+40 722-123-456"])
def test_one_phone_one_pseudonym(written: str) -> None:
    session = mapping.parking_session(parse.parse_sms_row(row(msisdn=written), 1), PSEUDONYMISE)
    assert session["msisdnHash"]["value"] == PSEUDONYMISE("msisdn", "+40722123456")


def test_no_plate_or_phone_number_in_clear() -> None:
    session = mapping.parking_session(parse.parse_sms_row(row(), 1), PSEUDONYMISE)
    text = json.dumps(session)
    for clear in ("DJ12ABC", "DJ 12 ABC", "722123456", "0722 123 456"):
        assert clear not in text
    assert "vehiclePlateIdentifier" not in session
    other_key = Pseudonymiser(b"another-key-of-thirty-two-bytes!")
    assert other_key("plate", "DJ12ABC") != session["plateHash"]["value"]  # keyed, not a hash


def test_a_session_in_local_time_money_with_decimal_commas() -> None:
    session = mapping.parking_session(parse.parse_sms_row(row(amount_ron="4,50",
                                                              duration_min="90"), 1),
                                      PSEUDONYMISE)
    assert session["id"] == "urn:ngsi-ld:ParkingSession:craiova-sms-SMS-20261201-000001"
    assert session["startDate"]["value"] == "2026-12-01T08:15:00Z"  # EET, UTC+2
    assert session["endDate"]["value"] == "2026-12-01T09:45:00Z"
    assert session["paidDuration"]["value"] == "PT90M"
    assert session["amountCollected"]["value"] == 4.5
    assert session["refParkingSite"]["object"] == "urn:ngsi-ld:OnStreetParking:craiova-zona-A1"
    assert session["status"]["value"] == "active"
    summer = parse.parse_sms_row(row(start="2026-07-01 10:15:00"), 1)
    assert summer.start == "2026-07-01T07:15:00Z"  # EEST, UTC+3


@pytest.mark.parametrize(("change", "reason"), [
    ({"amount_ron": "-5,00"}, "amount_ron: -5.00 RON is impossible"),
    ({"amount_ron": "trei lei"}, "amount_ron: 'trei lei' is not an amount"),
    ({"duration_min": "4320"}, "duration_min: 4320 is impossible"),
    ({"status": "PLATIT"}, "status: 'PLATIT' is not one of"),
    ({"start": "01.12.2026 10:15"}, "start: '01.12.2026 10:15' is not"),
    ({"plate": "?"}, "plate: not a registration plate"),
    ({"msisdn": "0212345678"}, "msisdn: not a Romanian mobile number"),
    ({"street": "Pia\ufffda Veche"}, "not valid UTF-8 text")])
def test_impossible_sessions_are_refused(change: dict[str, str], reason: str) -> None:
    with pytest.raises(BadRecord) as refused:
        parse.parse_sms_row(row(**change), 7)
    assert refused.value.reason.startswith("row 7: ")
    assert reason in refused.value.reason


def test_a_refusal_never_quotes_the_plate_or_the_phone() -> None:
    for change in ({"plate": "DJ 12 ABC ###"}, {"msisdn": "0722 123 45"}):
        with pytest.raises(BadRecord) as refused:
            parse.parse_sms_row(row(**change), 1)
        assert "DJ" not in refused.value.reason and "0722" not in refused.value.reason


def test_an_unknown_zone_is_refused() -> None:
    with pytest.raises(mapping.UnknownReference, match="zone: 'Z9'"):
        mapping.parking_session(parse.parse_sms_row(row(zone="Z9"), 1), PSEUDONYMISE,
                                ZONE_CODES)


def test_a_sensor_event_is_a_parking_spot() -> None:
    city = Parking(seed=3)
    space = city.spaces["A2-005"]
    space["event"] = "FREE"
    spot = mapping.parking_spot(parse.parse_sensor_event(city.event(space)), ZONE_CODES)
    assert spot["id"] == "urn:ngsi-ld:ParkingSpot:craiova-A2-005"
    assert spot["status"]["value"] == "free"
    assert spot["category"]["value"] == ["onStreet"]
    assert spot["refParkingSite"]["object"] == "urn:ngsi-ld:OnStreetParking:craiova-zona-A2"
    assert spot["status"]["observedAt"] == space["ts"]
    space["event"] = "FAULT"
    assert mapping.parking_spot(parse.parse_sensor_event(city.event(space)))["status"][
        "value"] == "unknown"


@pytest.mark.parametrize(("payload", "reason"), [
    (b'{"sensor": "PS-1", "spa', "not JSON"),
    ("{}".encode("utf-16"), "not UTF-8"),
    (b"[]", "expected a JSON object")])
def test_broken_sensor_payloads(payload: bytes, reason: str) -> None:
    with pytest.raises(BadRecord, match=reason):
        parse.parse_sensor_event(payload)


@pytest.mark.parametrize(("free", "status", "statuses"), [
    (100, "OPEN", ["open", "spacesAvailable"]), (10, "OPEN", ["open", "almostFull"]),
    (0, "OPEN", ["full"]), (50, "CLOSED", ["closed"])])
def test_car_park_occupancy(free: int, status: str, statuses: list[str]) -> None:
    data = {**Parking(seed=1).car_parks["P-PIATA-CENTRALA"], "free": free, "status": status}
    park = mapping.off_street_parking(parse.parse_car_park(data))
    assert park["status"]["value"] == statuses
    assert park["availableSpotNumber"]["value"] == free
    assert park["occupiedSpotNumber"]["value"] == 320 - free
    assert park["priceRatePerMinute"]["value"] == 0.05 and park["priceCurrency"]["value"] == "RON"
    assert problems(with_context(park)) == []


def test_more_free_spaces_than_the_car_park_has_is_refused() -> None:
    city = Parking(seed=1)
    city.spoil_car_parks = 1
    first = city.car_park_answer()["carparks"][0]
    with pytest.raises(BadRecord, match="spaces free of a capacity of"):
        parse.parse_car_park(first)
    parse.parse_car_park(city.car_park_answer()["carparks"][0])  # the next answer is good


def test_a_zone_counts_its_free_spaces_once_every_space_reported() -> None:
    city = Parking(seed=6)
    [zone] = [parse.parse_zone(z) for z in city.zones_answer()["zones"] if z["zone"] == "A2"]
    events = {k: parse.parse_sensor_event(city.event(s)) for k, s in city.spaces.items()}
    some = {k: e for k, e in events.items() if k != "A2-003"}
    assert mapping.zone_occupancy(zone, some) is None
    free, occupied, at = mapping.zone_occupancy(zone, events) or (0, 0, "")
    truth = [s["event"] for s in city.spaces.values() if s["zone"] == "A2"]
    assert (free, occupied) == (truth.count("FREE"), truth.count("OCCUPIED"))
    entity = mapping.on_street_parking(zone, (free, occupied, at))
    assert entity["availableSpotNumber"]["value"] == free
    assert entity["occupancyModified"]["value"] == at
    assert problems(with_context(entity)) == []


def test_a_session_ends_in_a_later_export_under_the_same_id() -> None:
    city = Parking(seed=2, sessions_per_tick=1)
    _, [row] = city.tick()
    minutes = int(row["duration_min"])
    later = [r for _ in range(minutes) for r in city.tick()[1]]
    ended = [r for r in later if r["id"] == row["id"]]
    assert [r["status"] for r in ended] == ["INCHEIAT"]
    first = mapping.parking_session(parse.parse_sms_row(row, 1), PSEUDONYMISE)
    last = mapping.parking_session(parse.parse_sms_row(ended[0], 1), PSEUDONYMISE)
    assert first["id"] == last["id"]
    assert (first["status"]["value"], last["status"]["value"]) == ("active", "completed")
    assert row["id"] in city.truth()["ended"]
