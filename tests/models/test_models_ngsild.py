"""The NGSI-LD core models accept what the broker speaks and refuse malformed shapes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from models.attributes import GeoProperty, JsonProperty, LanguageProperty, Property, Relationship
from models.entity import BatchOperationResult, Entity
from models.subscription import CSourceRegistration, Subscription

LAMP: dict[str, Any] = {
    "id": "urn:ngsi-ld:Streetlight:craiova-001", "type": "Streetlight",
    "powerState": {"type": "Property", "value": "on", "observedAt": "2026-11-23T10:00:00Z",
                   "reliability": {"type": "Property", "value": 0.9}},
    "location": {"type": "GeoProperty", "value": {"type": "Point",
                                                  "coordinates": [23.7967, 44.319]}},
    "refGroup": {"type": "Relationship", "object": "urn:ngsi-ld:StreetlightGroup:1"},
    "name": {"type": "LanguageProperty", "languageMap": {"ro": "Stâlp", "en": "Pole"}},
    "config": {"type": "JsonProperty", "json": {"a": [1, None]}},
    "readings": [{"type": "Property", "value": 1},
                 {"type": "Property", "value": 2, "datasetId": "urn:ngsi-ld:Dataset:b"}],
}


def test_entity_parses_every_kind_and_round_trips() -> None:
    entity = Entity.model_validate(LAMP)
    kinds = {name: type(a).__name__ for name, a in entity.attributes.items()
             if not isinstance(a, list)}
    assert kinds == {"powerState": "Property", "location": "GeoProperty",
                     "refGroup": "Relationship", "name": "LanguageProperty",
                     "config": "JsonProperty"}
    assert entity.normalized() == LAMP


@pytest.mark.parametrize("bad", [
    {"powerState": "on"},  # concise is not normalized
    {"powerState": {"type": "Propety", "value": 1}},
    {"refGroup": {"type": "Relationship", "object": "not a uri"}},
    {"location": {"type": "GeoProperty", "value": {"type": "Circle"}}},
])
def test_entity_refuses_malformed_attributes(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Entity.model_validate({**LAMP, **bad})


def test_attribute_models_build_normalized_json() -> None:
    assert Property(value=3, unitCode="KWH").normalized() == {
        "type": "Property", "value": 3, "unitCode": "KWH"}
    assert Relationship(object="urn:x:1").normalized() == {"type": "Relationship",
                                                           "object": "urn:x:1"}
    assert JsonProperty(json={"k": 1}).normalized() == {"type": "JsonProperty", "json": {"k": 1}}
    assert LanguageProperty(languageMap={"ro": "Piaţa"}).normalized()["languageMap"] == {
        "ro": "Piaţa"}
    assert GeoProperty.model_validate({"value": {"type": "Point", "coordinates": [1, 2]}})


def test_subscription_rules() -> None:
    ok = Subscription.model_validate({
        "entities": [{"type": "ParkingSpot"}], "watchedAttributes": ["status"],
        "notification": {"endpoint": {"uri": "http://127.0.0.1:9000/n",
                                      "accept": "application/json"}}})
    assert ok.body()["type"] == "Subscription"
    with pytest.raises(ValidationError):
        Subscription.model_validate({"notification": {"endpoint": {"uri": "http://x/n"}}})
    with pytest.raises(ValidationError):
        Subscription.model_validate({"entities": [{"type": "T"}], "watchedAttributes": ["a"],
                                     "timeInterval": 60,
                                     "notification": {"endpoint": {"uri": "http://x/n"}}})


def test_registration_needs_information() -> None:
    registration = CSourceRegistration.model_validate({
        "information": [{"entities": [{"type": "Vehicle"}]}], "endpoint": "http://127.0.0.1:1"})
    assert registration.body()["type"] == "ContextSourceRegistration"
    with pytest.raises(ValidationError):
        CSourceRegistration.model_validate({"information": [], "endpoint": "http://x"})


async def test_batch_result_matches_what_the_broker_answers(client: httpx.AsyncClient) -> None:
    body = [{"id": "urn:ngsi-ld:T:1", "type": "T"}, {"id": "bad id", "type": "T"}]
    response = await client.post("/ngsi-ld/v1/entityOperations/create", json=body)
    assert response.status_code == 207
    result = BatchOperationResult.model_validate(response.json())
    assert result.success == ["urn:ngsi-ld:T:1"]
    assert result.errors[0].error.status == 400
