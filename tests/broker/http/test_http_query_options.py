"""Query entities: datasetId, lang, several EntitySelectors, the limit bounds and the
representation options (clauses 5.7.2, 5.5.9, 6.4.3.2, 6.23.3.1)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.broker.http.test_http_entities import assert_problem

OPS = "/ngsi-ld/v1/entityOperations"
ENTITIES = "/ngsi-ld/v1/entities"


def sensor(n: int, kind: str = "AirQualitySensor") -> dict[str, Any]:
    return {"id": f"urn:ngsi-ld:{kind}:{n}", "type": kind,
            "no2": [{"type": "Property", "value": 10 + n},
                    {"type": "Property", "value": 20 + n, "datasetId": "urn:ds:lab"}],
            "name": {"type": "LanguageProperty",
                     "languageMap": {"ro": f"Senzor {n}", "en": f"Sensor {n}"}}}


async def seed(client: httpx.AsyncClient) -> None:
    body = [sensor(n) for n in range(1, 4)] + [sensor(9, "Streetlight")]
    assert (await client.post(OPS + "/create", json=body)).status_code == 201


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return sorted(e["id"] for e in response.json())


async def test_dataset_id_trims_the_instances(client: httpx.AsyncClient) -> None:
    await seed(client)
    got = await client.get(ENTITIES, params={"type": "AirQualitySensor",
                                             "datasetId": "urn:ds:lab"})
    assert got.status_code == 200, got.text
    first = got.json()[0]
    assert first["no2"] == {"type": "Property", "value": 21, "datasetId": "urn:ds:lab"}
    assert "name" not in first  # its only instance is the default one
    default = (await client.get(ENTITIES, params={"type": "AirQualitySensor",
                                                  "datasetId": "@none"})).json()[0]
    assert default["no2"]["value"] == 11 and "name" in default
    both = (await client.get(ENTITIES, params={"type": "AirQualitySensor",
                                               "datasetId": "@none,urn:ds:lab"})).json()[0]
    assert len(both["no2"]) == 2
    posted = await client.post(OPS + "/query", params={"datasetId": "urn:ds:lab"},
                               json={"type": "Query", "entities": [{"type": "AirQualitySensor"}]})
    assert posted.json()[0]["no2"]["value"] == 21
    bad = await client.get(ENTITIES, params={"type": "AirQualitySensor", "datasetId": "lab"})
    assert_problem(bad, 400, "BadRequestData")


async def test_lang_on_get_and_post(client: httpx.AsyncClient) -> None:
    await seed(client)
    got = (await client.get(ENTITIES, params={"id": "urn:ngsi-ld:AirQualitySensor:1",
                                              "lang": "ro"})).json()[0]
    assert got["name"] == {"type": "Property", "value": "Senzor 1", "lang": "ro"}
    posted = (await client.post(OPS + "/query", json={
        "type": "Query", "entities": [{"id": "urn:ngsi-ld:AirQualitySensor:1",
                                       "type": "AirQualitySensor"}], "lang": "en"})).json()[0]
    assert posted["name"] == {"type": "Property", "value": "Sensor 1", "lang": "en"}


async def test_several_entity_selectors_are_or_ed(client: httpx.AsyncClient) -> None:
    await seed(client)
    body = {"type": "Query", "entities": [
        {"id": "urn:ngsi-ld:AirQualitySensor:1", "type": "AirQualitySensor"},
        {"idPattern": ":3$", "type": "AirQualitySensor"},
        {"type": "Streetlight"},
        {"id": "urn:ngsi-ld:AirQualitySensor:2", "type": "Streetlight"},  # matches nothing
    ]}
    assert ids(await client.post(OPS + "/query", json=body)) == [
        "urn:ngsi-ld:AirQualitySensor:1", "urn:ngsi-ld:AirQualitySensor:3",
        "urn:ngsi-ld:Streetlight:9"]
    with_q = {**body, "q": "no2<12|no2>28"}  # one instance matching is enough
    assert ids(await client.post(OPS + "/query", json=with_q)) == [
        "urn:ngsi-ld:AirQualitySensor:1", "urn:ngsi-ld:Streetlight:9"]
    picked = await client.post(OPS + "/query", json={**body, "attrs": ["name"]})
    assert all(set(e) == {"id", "type", "name"} for e in picked.json())


@pytest.mark.parametrize("entities", [[], {}, [1], [{"id": 5}], [{"color": "red"}], [{}],
                                      [{"id": "not a uri"}], [{"idPattern": "("}],
                                      [{"type": "A"}] * 101])
async def test_bad_entity_selectors(client: httpx.AsyncClient, entities: Any) -> None:
    response = await client.post(OPS + "/query", json={"type": "Query", "entities": entities})
    assert_problem(response, 400, "BadRequestData")


async def test_limit_bounds(client: httpx.AsyncClient) -> None:
    await seed(client)
    assert_problem(await client.get(ENTITIES, params={"type": "AirQualitySensor",
                                                      "limit": "1001"}), 403, "TooManyResults")
    assert len(ids(await client.get(ENTITIES, params={"type": "AirQualitySensor",
                                                      "limit": "1000"}))) == 3
    assert_problem(await client.get(ENTITIES, params={"type": "AirQualitySensor",
                                                      "limit": "0"}), 400, "BadRequestData")
    counted = await client.get(ENTITIES, params={"type": "AirQualitySensor", "limit": "0",
                                                 "count": "true"})
    assert counted.json() == [] and counted.headers["NGSILD-Results-Count"] == "3"
    assert_problem(await client.get(ENTITIES, params={"type": "AirQualitySensor",
                                                      "offset": "-1"}), 400, "BadRequestData")


async def test_representation_options(client: httpx.AsyncClient) -> None:
    await seed(client)
    base = {"id": "urn:ngsi-ld:Streetlight:9"}
    key_values = (await client.get(ENTITIES, params={**base, "format": "keyValues"})).json()[0]
    assert key_values["no2"] == {"dataset": {"@none": 19, "urn:ds:lab": 29}}
    concise = (await client.get(ENTITIES, params={**base, "options": "concise"})).json()[0]
    assert "type" not in concise["name"]
    sys_attrs = (await client.get(ENTITIES, params={**base, "options": "sysAttrs"})).json()[0]
    assert "createdAt" in sys_attrs and "modifiedAt" in sys_attrs
    posted = await client.post(OPS + "/query", params={"format": "keyValues"},
                               json={"type": "Query", "entities": [{"type": "Streetlight"}]})
    assert posted.json()[0]["no2"] == {"dataset": {"@none": 19, "urn:ds:lab": 29}}
    for bad in ({"format": "simplified"}, {"options": "keyValues,concise"},
                {"options": "nonsense"}):
        assert_problem(await client.get(ENTITIES, params={**base, **bad}), 400, "BadRequestData")
