"""Discovery over HTTP (clauses 5.7.5-5.7.10): /types, /types/{type}, /attributes,
/attributes/{attrId}, compacted with the request's @context, per tenant."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.broker.http.test_http_entities import assert_problem

V1 = "/ngsi-ld/v1"
OPS = V1 + "/entityOperations"
D = "https://uri.etsi.org/ngsi-ld/default-context/"
EX = "https://example.org/city#"
USER_CONTEXT = {"@context": {"Lamp": EX + "Streetlight", "lux": EX + "illuminance"}}
CORE = "https://uri.etsi.org/ngsi-ld/"


def lamp(n: int) -> dict[str, Any]:
    return {"id": f"urn:ngsi-ld:Streetlight:{n}", "type": "Streetlight",
            "powerState": "on",
            "lux": [{"type": "Property", "value": n},
                    {"type": "Property", "value": n + 1, "datasetId": "urn:ds:b",
                     "accuracy": {"type": "Property", "value": 1}}],
            "refCabinet": {"type": "Relationship", "object": "urn:ngsi-ld:Cabinet:C-12"},
            "location": {"type": "GeoProperty",
                         "value": {"type": "Point", "coordinates": [23.79, 44.31]}}}


async def seed(client: httpx.AsyncClient, headers: dict[str, str] | None = None) -> None:
    body = [lamp(1), lamp(2),
            {"id": "urn:ngsi-ld:Cabinet:C-12", "type": ["Cabinet", "Streetlight"],
             "powerState": {"type": "Relationship", "object": "urn:ngsi-ld:Feed:1"}},
            {"id": "urn:ngsi-ld:Empty:1", "type": "Empty"}]
    response = await client.post(OPS + "/create", json=body, headers=headers or {})
    assert response.status_code == 201, response.text


async def test_types_list_and_details(client: httpx.AsyncClient) -> None:
    await seed(client)
    listed = await client.get(V1 + "/types")
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["type"] == "EntityTypeList" and body["id"].startswith("urn:ngsi-ld:")
    assert body["typeList"] == ["Cabinet", "Empty", "Streetlight"]
    assert "rel=\"http://www.w3.org/ns/json-ld#context\"" in listed.headers["Link"]
    details = (await client.get(V1 + "/types", params={"details": "true"})).json()
    assert details == [
        {"id": D + "Cabinet", "type": "EntityType", "typeName": "Cabinet",
         "attributeNames": ["powerState"]},
        {"id": D + "Empty", "type": "EntityType", "typeName": "Empty", "attributeNames": []},
        {"id": D + "Streetlight", "type": "EntityType", "typeName": "Streetlight",
         "attributeNames": ["lux", "powerState", "refCabinet", "location"]},
    ]


async def test_type_info(client: httpx.AsyncClient) -> None:
    await seed(client)
    info = (await client.get(V1 + "/types/Streetlight")).json()
    assert info["id"] == D + "Streetlight" and info["type"] == "EntityTypeInfo"
    assert info["typeName"] == "Streetlight" and info["entityCount"] == 3
    details = {a["attributeName"]: a for a in info["attributeDetails"]}
    assert details["powerState"] == {"id": D + "powerState", "type": "Attribute",
                                     "attributeName": "powerState",
                                     "attributeTypes": ["Property", "Relationship"]}
    assert details["location"]["attributeTypes"] == ["GeoProperty"]
    assert details["location"]["id"] == CORE + "location"
    assert set(details) == {"lux", "powerState", "refCabinet", "location"}  # no sub-attrs
    by_iri = await client.get(V1 + "/types/" + quote(D + "Streetlight", safe=""))
    assert by_iri.status_code == 200 and by_iri.json()["entityCount"] == 3
    assert_problem(await client.get(V1 + "/types/Nothing"), 404, "ResourceNotFound")


async def test_attributes(client: httpx.AsyncClient) -> None:
    await seed(client)
    listed = (await client.get(V1 + "/attributes")).json()
    assert listed["type"] == "AttributeList"
    assert listed["attributeList"] == ["lux", "powerState", "refCabinet", "location"]
    details = (await client.get(V1 + "/attributes", params={"details": "true"})).json()
    lux = next(a for a in details if a["attributeName"] == "lux")
    assert lux == {"id": D + "lux", "type": "Attribute", "attributeName": "lux",
                   "attributeCount": 4,  # two instances in each of two lamps
                   "attributeTypes": ["Property"], "typeNames": ["Streetlight"]}
    power = (await client.get(V1 + "/attributes/powerState")).json()
    assert power["attributeCount"] == 3
    assert power["attributeTypes"] == ["Property", "Relationship"]
    assert power["typeNames"] == ["Cabinet", "Streetlight"]
    assert_problem(await client.get(V1 + "/attributes/nothing"), 404, "ResourceNotFound")
    # A sub-attribute is not an attribute of any entity.
    assert_problem(await client.get(V1 + "/attributes/accuracy"), 404, "ResourceNotFound")


async def test_names_compacted_with_the_request_context(client: httpx.AsyncClient) -> None:
    body = [{"id": "urn:ngsi-ld:Streetlight:1", "type": "Lamp", "lux": 3,
             "@context": [USER_CONTEXT["@context"], CORE + "v1/ngsi-ld-core-context.jsonld"]}]
    created = await client.post(OPS + "/create", json=body,
                                headers={"Content-Type": "application/ld+json"})
    assert created.status_code == 201, created.text
    plain = (await client.get(V1 + "/types")).json()
    assert plain["typeList"] == [EX + "Streetlight"]  # no term for it in the core context
    ld = await client.get(V1 + "/types", params={"details": "true"},
                          headers={"Accept": "application/ld+json"})
    assert ld.headers["Content-Type"].startswith("application/ld+json")
    assert all("@context" in item for item in ld.json())
    inline = {"Accept": "application/ld+json"}
    ctx_body = {"@context": USER_CONTEXT["@context"]}
    hosted = await client.post(V1 + "/jsonldContexts", json=ctx_body)
    assert hosted.status_code == 201, hosted.text
    link = f'<{hosted.headers["Location"]}>; rel="http://www.w3.org/ns/json-ld#context"; ' \
           'type="application/ld+json"'
    if hosted.headers["Location"].startswith("/"):
        link = link.replace("<", f"<{client.base_url}", 1)
    compacted = (await client.get(V1 + "/types/Lamp", headers={"Link": link})).json()
    assert compacted["typeName"] == "Lamp"
    assert [a["attributeName"] for a in compacted["attributeDetails"]] == ["lux"]
    attr = (await client.get(V1 + "/attributes/lux", headers={"Link": link, **inline})).json()
    assert attr["typeNames"] == ["Lamp"] and "@context" in attr


async def test_tenants_are_separate(client: httpx.AsyncClient) -> None:
    await seed(client, {"NGSILD-Tenant": "craiova"})
    assert (await client.get(V1 + "/types")).json()["typeList"] == []
    other = await client.get(V1 + "/types", headers={"NGSILD-Tenant": "craiova"})
    assert other.json()["typeList"] == ["Cabinet", "Empty", "Streetlight"]
    assert_problem(await client.get(V1 + "/attributes/lux"), 404, "ResourceNotFound")
    missing = await client.get(V1 + "/types", headers={"NGSILD-Tenant": "nowhere"})
    assert missing.status_code == 404


@pytest.mark.parametrize("path", ["/types", "/attributes"])
async def test_bad_details(client: httpx.AsyncClient, path: str) -> None:
    assert_problem(await client.get(V1 + path, params={"details": "yes"}), 400, "BadRequestData")


async def test_deleted_entities_leave_discovery(client: httpx.AsyncClient) -> None:
    await seed(client)
    deleted = await client.post(OPS + "/delete", json=["urn:ngsi-ld:Empty:1",
                                                       "urn:ngsi-ld:Cabinet:C-12"])
    assert deleted.status_code == 204, deleted.text
    assert (await client.get(V1 + "/types")).json()["typeList"] == ["Streetlight"]
    assert (await client.get(V1 + "/attributes/powerState")).json()["attributeTypes"] == [
        "Property"]
