"""The entity API driven over HTTP against a real broker (clauses 5.6, 5.7.1)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import CORE

ERR = "https://uri.etsi.org/ngsi-ld/errors/"
LD = {"Content-Type": "application/ld+json"}
LINK_REL = 'rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'


def lamp(n: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:Streetlight:craiova-{n:03d}",
        "type": "Streetlight",
        "powerState": {"type": "Property", "value": "on"},
        "dimmingLevel": {"type": "Property", "value": 0.8, "unitCode": "P1",
                         "observedAt": "2026-11-23T10:00:00Z"},
        "location": {"type": "GeoProperty",
                     "value": {"type": "Point", "coordinates": [23.7967, 44.3190]}},
        "refStreetlightGroup": {"type": "Relationship",
                                "object": "urn:ngsi-ld:StreetlightGroup:calea-unirii"},
        **extra,
    }


async def create(client: httpx.AsyncClient, body: dict[str, Any], **kw: Any) -> httpx.Response:
    return await client.post("/ngsi-ld/v1/entities", json=body, **kw)


def assert_problem(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    problem = response.json()
    assert problem["type"] == ERR + kind, problem
    assert problem["status"] == status
    assert problem["detail"]
    return problem


async def test_create_then_read_normalized(client: httpx.AsyncClient) -> None:
    response = await create(client, lamp())
    assert response.status_code == 201, response.text
    location = response.headers["Location"]
    assert location == "/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:craiova-001"
    got = await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:craiova-001")
    assert got.status_code == 200
    assert got.headers["Content-Type"].startswith("application/json")
    assert CORE in got.headers["Link"]
    body = got.json()
    assert body["type"] == "Streetlight"
    assert body["powerState"] == {"type": "Property", "value": "on"}
    assert body["dimmingLevel"]["unitCode"] == "P1"
    assert body["dimmingLevel"]["observedAt"] == "2026-11-23T10:00:00.000Z"
    assert body["location"]["value"]["coordinates"] == [23.7967, 44.3190]
    assert body["refStreetlightGroup"]["object"] == "urn:ngsi-ld:StreetlightGroup:calea-unirii"
    assert "createdAt" not in body


async def test_sysattrs_keyvalues_concise(client: httpx.AsyncClient) -> None:
    await create(client, lamp())
    url = "/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:craiova-001"
    sys = (await client.get(url, params={"options": "sysAttrs"})).json()
    assert sys["createdAt"].endswith("Z") and sys["modifiedAt"] >= sys["createdAt"]
    assert "createdAt" in sys["powerState"]
    kv = (await client.get(url, params={"options": "keyValues"})).json()
    assert kv["powerState"] == "on"
    assert kv["refStreetlightGroup"] == "urn:ngsi-ld:StreetlightGroup:calea-unirii"
    assert kv["location"] == {"type": "Point", "coordinates": [23.7967, 44.3190]}
    assert (await client.get(url, params={"format": "keyValues"})).json() == kv
    concise = (await client.get(url, params={"options": "concise"})).json()
    assert concise["powerState"] == "on"
    assert concise["refStreetlightGroup"] == {"object": "urn:ngsi-ld:StreetlightGroup:calea-unirii"}


async def test_ld_json_body_context_and_compaction(client: httpx.AsyncClient) -> None:
    ctx = {"Streetlight": "https://example.org/lighting/Streetlight",
           "powerState": "https://example.org/lighting/powerState"}
    body = {**lamp(), "@context": [ctx, CORE]}
    response = await client.post("/ngsi-ld/v1/entities", json=body, headers=LD)
    assert response.status_code == 201, response.text
    url = "/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:craiova-001"
    # Without the user context, terms come back as full IRIs, except default-vocab ones.
    plain = (await client.get(url)).json()
    assert plain["type"] == "https://example.org/lighting/Streetlight"
    assert "https://example.org/lighting/powerState" in plain
    assert "dimmingLevel" in plain
    ld = await client.get(url, headers={"Accept": "application/ld+json"})
    assert ld.headers["Content-Type"].startswith("application/ld+json")
    assert ld.json()["@context"] == CORE


async def test_link_header_context(client: httpx.AsyncClient, server: Any) -> None:
    hosted = await client.post(
        "/ngsi-ld/v1/jsonldContexts",
        json={"@context": {"Streetlight": "https://example.org/Lamp", "powerState":
                           "https://example.org/power"}},
    )
    assert hosted.status_code == 201, hosted.text
    ctx_url = f"http://127.0.0.1:{server.port}{hosted.headers['Location']}"
    link = {"Link": f"<{ctx_url}>; {LINK_REL}"}
    assert (await create(client, lamp(), headers=link)).status_code == 201
    url = "/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:craiova-001"
    raw = (await client.get(url)).json()
    assert raw["type"] == "https://example.org/Lamp"
    assert "https://example.org/power" in raw
    compacted = await client.get(url, headers={**link, "Accept": "application/ld+json"})
    body = compacted.json()
    assert body["type"] == "Streetlight" and "powerState" in body
    assert ctx_url in body["@context"]
    # A Link whose rel is not the JSON-LD context is ignored.
    other = {"Link": '<https://example.org/x>; rel="alternate"'}
    assert (await client.get(url, headers=other)).status_code == 200


async def test_core_context_urls_resolve_offline(client: httpx.AsyncClient) -> None:
    for version in ("", "-v1.3", "-v1.6", "-v1.8", "-v1.9"):
        url = f"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context{version}.jsonld"
        body = {**lamp(), "id": f"urn:ngsi-ld:Streetlight:v{version}", "@context": url}
        response = await client.post("/ngsi-ld/v1/entities", json=body, headers=LD)
        assert response.status_code == 201, (url, response.text)


async def test_geojson_feature(client: httpx.AsyncClient) -> None:
    await create(client, lamp())
    got = await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:craiova-001",
                           headers={"Accept": "application/geo+json"})
    assert got.status_code == 200
    assert got.headers["Content-Type"].startswith("application/geo+json")
    feature = got.json()
    assert feature["type"] == "Feature"
    assert feature["id"] == "urn:ngsi-ld:Streetlight:craiova-001"
    assert feature["geometry"] == {"type": "Point", "coordinates": [23.7967, 44.3190]}
    assert feature["properties"]["type"] == "Streetlight"


async def test_attrs_pick_omit(client: httpx.AsyncClient) -> None:
    await create(client, lamp())
    url = "/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:craiova-001"
    only = (await client.get(url, params={"attrs": "powerState"})).json()
    assert set(only) == {"id", "type", "powerState"}
    picked = (await client.get(url, params={"pick": "id,dimmingLevel"})).json()
    assert set(picked) == {"id", "dimmingLevel"}
    omitted = (await client.get(url, params={"omit": "location,type"})).json()
    assert "location" not in omitted and "type" not in omitted and "powerState" in omitted


async def test_type_param_and_not_found(client: httpx.AsyncClient) -> None:
    await create(client, lamp())
    url = "/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:craiova-001"
    assert (await client.get(url, params={"type": "Streetlight"})).status_code == 200
    assert_problem(await client.get(url, params={"type": "Parking"}), 404, "ResourceNotFound")
    assert_problem(await client.get(url + "x"), 404, "ResourceNotFound")
    assert_problem(await client.get("/ngsi-ld/v1/entities/not-a-uri"), 400, "BadRequestData")


async def test_delete_entity(client: httpx.AsyncClient) -> None:
    await create(client, lamp())
    url = "/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:craiova-001"
    assert (await client.delete(url)).status_code == 204
    assert_problem(await client.get(url), 404, "ResourceNotFound")
    assert_problem(await client.delete(url), 404, "ResourceNotFound")


async def test_conflict(client: httpx.AsyncClient) -> None:
    assert (await create(client, lamp())).status_code == 201
    assert_problem(await create(client, lamp()), 409, "AlreadyExists")


async def test_append_update_partial_and_delete_attr(client: httpx.AsyncClient) -> None:
    await create(client, lamp())
    url = "/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:craiova-001"
    added = await client.post(url + "/attrs", json={
        "burningHours": {"type": "Property", "value": 1200},
        "powerState": {"type": "Property", "value": "off"}})
    assert added.status_code == 204, added.text
    kept = await client.post(url + "/attrs", params={"options": "noOverwrite"}, json={
        "powerState": {"type": "Property", "value": "on"},
        "lampModel": {"type": "Property", "value": "LED-90"}})
    assert kept.status_code == 207, kept.text
    assert [n["attributeName"] for n in kept.json()["notUpdated"]] == ["powerState"]
    kv = (await client.get(url, params={"options": "keyValues"})).json()
    assert kv["powerState"] == "off" and kv["lampModel"] == "LED-90" and kv["burningHours"] == 1200

    partial = await client.patch(url + "/attrs", json={
        "burningHours": {"type": "Property", "value": 1300},
        "missing": {"type": "Property", "value": 1}})
    assert partial.status_code == 207
    assert partial.json()["updated"] == ["burningHours"]

    one = await client.patch(url + "/attrs/dimmingLevel", json={"value": 0.3})
    assert one.status_code == 204, one.text
    dim = (await client.get(url)).json()["dimmingLevel"]
    assert dim["value"] == 0.3 and dim["unitCode"] == "P1"
    assert_problem(await client.patch(url + "/attrs/nope", json={"value": 1}), 404,
                   "ResourceNotFound")

    put = await client.put(url + "/attrs/dimmingLevel", json={"type": "Property", "value": 1})
    assert put.status_code == 204, put.text
    assert "unitCode" not in (await client.get(url)).json()["dimmingLevel"]

    assert (await client.delete(url + "/attrs/lampModel")).status_code == 204
    assert "lampModel" not in (await client.get(url)).json()
    assert_problem(await client.delete(url + "/attrs/lampModel"), 404, "ResourceNotFound")


async def test_dataset_ids(client: httpx.AsyncClient) -> None:
    body = lamp(energy=[
        {"type": "Property", "value": 10, "datasetId": "urn:ngsi-ld:Dataset:meter"},
        {"type": "Property", "value": 11},
    ])
    assert (await create(client, body)).status_code == 201
    url = "/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:craiova-001"
    energy = (await client.get(url)).json()["energy"]
    assert isinstance(energy, list) and len(energy) == 2
    gone = await client.delete(url + "/attrs/energy",
                               params={"datasetId": "urn:ngsi-ld:Dataset:meter"})
    assert gone.status_code == 204
    assert (await client.get(url)).json()["energy"]["value"] == 11
    assert_problem(await client.delete(url + "/attrs/energy", params={"datasetId": "bad id"}),
                   400, "BadRequestData")
    bad = lamp(2, energy={"type": "Property", "value": 1, "datasetId": "not a uri"})
    assert_problem(await create(client, bad), 400, "BadRequestData")


async def test_replace_and_merge(client: httpx.AsyncClient) -> None:
    await create(client, lamp())
    url = "/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:craiova-001"
    before = (await client.get(url, params={"options": "sysAttrs"})).json()
    merged = await client.patch(url, json={
        "powerState": "off", "dimmingLevel": "urn:ngsi-ld:null",
        "status": {"type": "Property", "value": "ok"}})
    assert merged.status_code == 204, merged.text
    kv = (await client.get(url, params={"options": "keyValues"})).json()
    assert kv["powerState"] == "off" and kv["status"] == "ok" and "dimmingLevel" not in kv
    replaced = await client.put(url, json={"type": "Streetlight",
                                           "status": {"type": "Property", "value": "new"}})
    assert replaced.status_code == 204, replaced.text
    after = (await client.get(url, params={"options": "sysAttrs"})).json()
    assert set(after) == {"id", "type", "status", "createdAt", "modifiedAt"}
    assert after["createdAt"] == before["createdAt"]
    missing = "/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:none"
    assert_problem(await client.patch(missing, json={"a": 1}), 404, "ResourceNotFound")


async def test_every_attribute_kind_round_trips(client: httpx.AsyncClient) -> None:
    body = {
        "id": "urn:ngsi-ld:Device:kinds", "type": "Device",
        "name": {"type": "LanguageProperty", "languageMap": {"ro": "Lampă", "en": "Lamp"}},
        "category": {"type": "VocabProperty", "vocab": "sensor"},
        "config": {"type": "JsonProperty", "json": {"a": [1, {"b": None}]}},
        "readings": {"type": "ListProperty", "valueList": [1, 2, 3]},
        "controls": {"type": "ListRelationship",
                     "objectList": ["urn:ngsi-ld:Streetlight:1", "urn:ngsi-ld:Streetlight:2"]},
        "temperature": {"type": "Property", "value": 21.5,
                        "accuracy": {"type": "Property", "value": 0.1}},
        "scope": ["/Craiova/Centru"],
    }
    assert (await create(client, body)).status_code == 201
    got = (await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Device:kinds")).json()
    for name in ("name", "category", "config", "readings", "controls", "temperature"):
        assert got[name] == body[name], name
    assert got["scope"] in (["/Craiova/Centru"], "/Craiova/Centru")
    ro = (await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Device:kinds",
                           params={"lang": "ro"})).json()
    assert ro["name"]["value"] == "Lampă"


async def test_tenants_are_isolated(client: httpx.AsyncClient) -> None:
    craiova = {"NGSILD-Tenant": "craiova"}
    assert (await create(client, lamp(), headers=craiova)).status_code == 201
    url = "/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:craiova-001"
    assert (await client.get(url, headers=craiova)).status_code == 200
    assert_problem(await client.get(url), 404, "ResourceNotFound")
    assert_problem(await client.get(url, headers={"NGSILD-Tenant": "cluj"}), 404,
                   "NonexistentTenant")


async def test_real_client_quirks(client: httpx.AsyncClient) -> None:
    slash = await client.post("/ngsi-ld/v1/entities/", json=lamp())
    assert slash.status_code == 201, slash.text
    url = "/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:craiova-001"
    got = await client.get(url, headers={"Content-Type": "application/ld+json"})
    assert got.status_code == 200
    assert (await client.delete(url, headers={"Content-Type": "text/plain"})).status_code == 204


async def test_health(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.headers["X-Request-Id"]
