"""The domain models build entities with type checking and emit what the broker accepts."""

from __future__ import annotations

import httpx
import pytest
from pydantic import ValidationError

from models.domain import (
    MODELS,
    GtfsRoute,
    ParkingSpot,
    Point,
    TaxObligation,
    Taxpayer,
    build,
)
from tests.contracts.examples import VALID

ENTITIES = "/ngsi-ld/v1/entities"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_takes_the_example_and_keeps_its_contract(name: str) -> None:
    model = MODELS[name].model_validate(VALID[name])
    assert model.problems() == []
    assert model.key_values() == {**VALID[name], "type": name}


def test_types_are_checked_when_building() -> None:
    with pytest.raises(ValidationError):
        ParkingSpot(id="urn:ngsi-ld:ParkingSpot:1", status="liber", category=["onStreet"],
                    refParkingSite="urn:ngsi-ld:OnStreetParking:1",
                    location=Point(coordinates=(23.79, 44.31)))
    with pytest.raises(ValidationError, match="taxIdentifierHash"):
        Taxpayer(id="urn:ngsi-ld:Taxpayer:1", taxpayerType="naturalPerson",
                 taxIdentifierHash="1850101160012")
    with pytest.raises(ValidationError, match="not attributes of GtfsRoute: routeTyp"):
        GtfsRoute.model_validate({"id": "urn:ngsi-ld:GtfsRoute:1", "routeTyp": "11"})


def test_relationships_and_geo_properties_follow_the_contract() -> None:
    spot = ParkingSpot.model_validate(VALID["ParkingSpot"])
    body = spot.normalized(observed_at="2026-11-23T10:00:00Z")
    assert body["refParkingSite"] == {"type": "Relationship",
                                      "object": VALID["ParkingSpot"]["refParkingSite"]}
    assert body["location"]["type"] == "GeoProperty"
    assert body["status"] == {"type": "Property", "value": "free",
                              "observedAt": "2026-11-23T10:00:00Z"}


def test_untyped_contract_attributes_are_still_accepted() -> None:
    obligation = TaxObligation.model_validate(VALID["TaxObligation"])
    assert obligation.normalized()["installments"]["value"][0]["dueDate"] == "2026-03-31"
    assert build("Cost", id="urn:ngsi-ld:Cost:1", identifier="C1")["identifier"] == {
        "type": "Property", "value": "C1"}


async def test_published_through_the_api(client: httpx.AsyncClient) -> None:
    route = GtfsRoute(id="urn:ngsi-ld:GtfsRoute:cluj-25", shortName="25", routeType="11",
                      name="Bulevardul Muncii – Piaţa Mihai Viteazu")
    created = await client.post(ENTITIES, json=route.normalized(),
                                headers={"Link": route.link()})
    assert created.status_code == 201, created.text
    read = await client.get(f"{ENTITIES}/{route.id}", params={"options": "keyValues"},
                            headers={"Link": route.link()})
    assert read.json() == route.key_values()
