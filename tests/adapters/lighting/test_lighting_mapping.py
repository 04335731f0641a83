"""The Luminis CMS simulator, parser and mapping, pure: every record it produces becomes
entities the broker accepts; vendor values land where the contracts put them; bad vendor data
is refused with a reason."""

from __future__ import annotations

import json
from typing import Any

import pytest

from adapters.lighting import mapping
from adapters.lighting.parse import Controller, parse_item
from adapters.lighting.simulator import Lighting
from adapters.sdk.errors import BadRecord
from adapters.sdk.validate import problems


def feed(cms: Lighting, after: int = 0) -> list[dict[str, Any]]:
    return list(json.loads(cms.page_bytes(after, 100_000))["items"])


def with_context(entity: dict[str, Any]) -> dict[str, Any]:
    return {**entity, "@context": mapping.context_of(entity)}


def controller(cms: Lighting, cid: str = "LC-000001") -> Controller:
    record = parse_item({"seq": 1, "kind": "controller", "data": cms.controllers[cid]})
    assert isinstance(record, Controller)
    return record


def test_same_seed_same_city_other_seed_other_city() -> None:
    assert feed(Lighting(seed=3)) == feed(Lighting(seed=3))
    assert feed(Lighting(seed=3)) != feed(Lighting(seed=4))
    a, b = Lighting(seed=3), Lighting(seed=3)
    a.tick(5)
    b.tick(5)
    assert feed(a) == feed(b)


def test_every_record_maps_to_entities_the_broker_accepts() -> None:
    cms = Lighting(seed=11, cabinets_count=3, lamps_per_group=4)
    cms.tick(30)
    cms.command("LC-000002", {"command": "dim", "value": 40})
    types: dict[str, int] = {}
    for item in feed(cms):
        for entity in mapping.entities(parse_item(item), set(cms.groups), set(cms.cabinets)):
            assert problems(with_context(entity)) == [], entity["id"]
            types[entity["type"]] = types.get(entity["type"], 0) + 1
    assert types == {"StreetlightControlCabinet": 3, "StreetlightGroup": 9,
                     "Streetlight": 36, "Device": 36}


def test_a_controller_is_a_streetlight_and_its_device() -> None:
    cms = Lighting(seed=5, cabinets_count=1, lamps_per_group=2)
    light, device = mapping.entities(controller(cms))
    assert light["id"] == "urn:ngsi-ld:Streetlight:craiova-L-000001"
    assert device["id"] == "urn:ngsi-ld:Device:craiova-LC-000001"
    assert light["refDevice"] == {"type": "Relationship", "object": [device["id"]]}
    assert light["refStreetlightGroup"]["object"] == "urn:ngsi-ld:StreetlightGroup:craiova-GRP-01-1"
    assert device["controlledAsset"]["value"] == [light["id"]]
    lon, lat = light["location"]["value"]["coordinates"]
    assert 44.30 < lat < 44.34 and 23.76 < lon < 23.84  # Craiova, lon first (RFC 7946)
    assert light["address"]["value"]["addressLocality"] == "Craiova"
    config = {c["parameter"]: c["value"] for c in device["configuration"]["value"]}
    assert config["burningHours"] == str(cms.controllers["LC-000001"]["burningHours"])
    assert light["powerState"]["observedAt"] == cms.controllers["LC-000001"]["reportedAt"]


@pytest.mark.parametrize(("state", "dim", "power_state", "level"), [
    ("ON", 100, "on", 1.0), ("DIMMED", 40, "low", 0.4), ("OFF", 40, "off", 0.0),
    ("BOOT", 100, "bootingUp", 1.0)])
def test_power_state_and_dimming(state: str, dim: int, power_state: str, level: float) -> None:
    cms = Lighting(seed=5, cabinets_count=1, lamps_per_group=1)
    cms.controllers["LC-000001"].update(state=state, dimLevel=dim)
    light = mapping.streetlight(controller(cms))
    assert light["powerState"]["value"] == power_state
    assert light["illuminanceLevel"]["value"] == level


@pytest.mark.parametrize(("faults", "status", "device_state"), [
    ([], "ok", "ok"), (["LAMP_FAILURE"], "defectiveLamp", "fault"),
    (["LAMP_FAILURE", "POLE_DAMAGE"], "columnIssue", "fault"),
    (["COMM_LOSS"], "ok", "commLoss")])
def test_faults(faults: list[str], status: str, device_state: str) -> None:
    cms = Lighting(seed=5, cabinets_count=1, lamps_per_group=1)
    cms.controllers["LC-000001"]["faults"] = faults
    light, device = mapping.entities(controller(cms))
    assert light["status"]["value"] == status
    assert device["deviceState"]["value"] == device_state


def test_a_command_is_carried_out_and_its_outcome_annotated() -> None:
    cms = Lighting(seed=5, cabinets_count=1, lamps_per_group=2)
    status, answer = cms.command("LC-000001", {"command": "dim", "value": 30})
    assert (status, answer["status"]) == (200, "executed")
    light = mapping.streetlight(controller(cms))
    assert (light["powerState"]["value"], light["illuminanceLevel"]["value"]) == ("low", 0.3)
    [note] = light["annotations"]["value"]
    assert note.startswith(f"command dim:30 executed ({answer['id']}, ")
    cms.controllers["LC-000002"]["faults"] = ["COMM_LOSS"]
    status, answer = cms.command("LC-000002", {"command": "switch", "value": "OFF"})
    assert (status, answer["status"]) == (409, "rejected")
    assert cms.controllers["LC-000002"]["state"] != "OFF"
    [note] = mapping.streetlight(controller(cms, "LC-000002"))["annotations"]["value"]
    assert "rejected" in note and "COMM_LOSS" in note
    assert cms.command("LC-000001", {"command": "dim", "value": 140})[0] == 422
    assert cms.command("LC-000001", {"command": "switch", "value": "on"})[0] == 422


def test_a_command_moves_the_controller_forward_in_the_feed() -> None:
    cms = Lighting(seed=5, cabinets_count=1, lamps_per_group=2)
    last = cms.seq
    cms.command("LC-000002", {"command": "switch", "value": "OFF"})
    [item] = feed(cms, after=last)
    assert item["data"]["controllerId"] == "LC-000002" and item["data"]["state"] == "OFF"


@pytest.mark.parametrize(("kind", "reason"), [
    ("impossible", "dimLevel: 250.0 is impossible"),
    ("unknown-ref", "groupId: 'GRP-99-9' is not a cabinet/group the CMS describes"),
    ("encoding", "address: not valid UTF-8 text")])
def test_bad_vendor_records_are_refused_with_a_reason(kind: str, reason: str) -> None:
    cms = Lighting(seed=5, cabinets_count=1, lamps_per_group=1)
    last = cms.seq
    cms.inject(kind, 1)
    [item] = feed(cms, after=last)
    with pytest.raises(BadRecord) as refused:
        mapping.entities(parse_item(item), set(cms.groups), set(cms.cabinets))
    assert reason in refused.value.reason
    assert "LC-BAD-0001" not in cms.controllers  # bad data is in the feed only


@pytest.mark.parametrize(("kind", "broken"), [("truncated", json.JSONDecodeError),
                                              ("latin1", UnicodeDecodeError)])
def test_spoiled_pages_then_good_ones(kind: str, broken: type[Exception]) -> None:
    cms = Lighting(seed=5, cabinets_count=1, lamps_per_group=1)
    cms.inject(kind, 1)
    with pytest.raises(broken):
        json.loads(cms.page_bytes(0, 100).decode("utf-8"))
    assert json.loads(cms.page_bytes(0, 100).decode("utf-8"))["items"]


@pytest.mark.parametrize(("item", "reason"), [
    ({"seq": 0, "kind": "controller", "data": {}}, "seq: expected a positive integer"),
    ({"seq": 3, "kind": "meter", "data": {}}, "kind: 'meter' is not one of"),
    ({"seq": 3, "kind": "group", "data": []}, "data: expected an object"),
    ({"seq": 3, "kind": "group", "data": {"groupId": "G"}}, "lat: missing")])
def test_malformed_items(item: dict[str, Any], reason: str) -> None:
    with pytest.raises(BadRecord, match=reason):
        parse_item(item)


def test_lamp_id_round_trip() -> None:
    assert mapping.lamp_of(mapping.streetlight_id("L-000123")) == "L-000123"
    with pytest.raises(ValueError):
        mapping.lamp_of("urn:ngsi-ld:Streetlight:timisoara-L-1")


def test_fast_forward_fills_the_next_page() -> None:
    cms = Lighting(seed=5, cabinets_count=2, lamps_per_group=5, fast_forward=True)
    last = cms.seq
    page = json.loads(cms.page_bytes(last, 500))["items"]
    assert len(page) >= 19  # half the city's 38 objects changed since
    assert Lighting(seed=5, cabinets_count=2, lamps_per_group=5).changes(last, 500)["items"] == []
