"""Query entities over HTTP: types, ids, patterns, attrs, geo, pagination (clause 5.7.2)."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.broker.http.test_http_entities import assert_problem

OPS = "/ngsi-ld/v1/entityOperations"
# Real places in Craiova: Piața Mihai Viteazul, Calea Unirii, Parcul Romanescu (~2.5 km south).
PLACES = {"mihai-viteazul": (23.7967, 44.3190), "calea-unirii": (23.7951, 44.3164),
          "romanescu": (23.7925, 44.2985)}


def spot(name: str, n: int, status: str = "free", kind: str = "ParkingSpot") -> dict[str, Any]:
    lon, lat = PLACES[name]
    return {"id": f"urn:ngsi-ld:{kind}:{name}-{n}", "type": kind,
            "status": {"type": "Property", "value": status},
            "location": {"type": "GeoProperty",
                         "value": {"type": "Point", "coordinates": [lon, lat + n * 1e-5]}}}


async def seed(client: httpx.AsyncClient) -> None:
    body = [spot(name, n, "free" if n % 2 else "occupied") for name in PLACES for n in range(4)]
    body.append({"id": "urn:ngsi-ld:Streetlight:1", "type": "Streetlight", "power": 1})
    assert (await client.post(OPS + "/create", json=body)).status_code == 201


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [e["id"] for e in response.json()]


async def test_by_type_id_pattern_attrs(client: httpx.AsyncClient) -> None:
    await seed(client)
    q = "/ngsi-ld/v1/entities"
    assert len(ids(await client.get(q, params={"type": "ParkingSpot", "limit": 100}))) == 12
    assert ids(await client.get(q, params={"type": "Streetlight,Nothing"})) == [
        "urn:ngsi-ld:Streetlight:1"]
    assert ids(await client.get(q, params={"type": "ParkingSpot;Streetlight"})) == []
    picked = ids(await client.get(q, params={"id": "urn:ngsi-ld:ParkingSpot:romanescu-1,"
                                                   "urn:ngsi-ld:Streetlight:1"}))
    assert sorted(picked) == ["urn:ngsi-ld:ParkingSpot:romanescu-1", "urn:ngsi-ld:Streetlight:1"]
    pattern = ids(await client.get(q, params={"idPattern": "calea-unirii-[02]$"}))
    assert pattern == ["urn:ngsi-ld:ParkingSpot:calea-unirii-0",
                       "urn:ngsi-ld:ParkingSpot:calea-unirii-2"]
    assert ids(await client.get(q, params={"attrs": "power"})) == ["urn:ngsi-ld:Streetlight:1"]


async def test_geo_near_and_within(client: httpx.AsyncClient) -> None:
    await seed(client)
    near = await client.get("/ngsi-ld/v1/entities", params={
        "type": "ParkingSpot", "georel": "near;maxDistance==500", "geometry": "Point",
        "coordinates": "[23.7967,44.3190]", "limit": 100})
    found = ids(near)
    assert len(found) == 8 and not any("romanescu" in i for i in found)
    square = [[[23.79, 44.31], [23.80, 44.31], [23.80, 44.3175], [23.79, 44.3175],
               [23.79, 44.31]]]
    within = await client.get("/ngsi-ld/v1/entities", params={
        "georel": "within", "geometry": "Polygon", "coordinates": str(square), "limit": 100})
    assert all("calea-unirii" in i for i in ids(within)) and len(ids(within)) == 4
    feature = await client.get("/ngsi-ld/v1/entities", params={
        "id": "urn:ngsi-ld:ParkingSpot:romanescu-0"}, headers={"Accept": "application/geo+json"})
    collection = feature.json()
    assert collection["type"] == "FeatureCollection"
    assert collection["features"][0]["geometry"]["type"] == "Point"


async def test_pagination_walks_every_entity_once(client: httpx.AsyncClient) -> None:
    await seed(client)
    seen: list[str] = []
    url: str | None = "/ngsi-ld/v1/entities?type=ParkingSpot&limit=5&count=true"
    while url:
        response = await client.get(url)
        assert response.headers["NGSILD-Results-Count"] == "12"
        seen += ids(response)
        nxt = [m.group(1) for link in response.headers.get_list("Link")
               for m in [re.match(r'<([^>]*)>; rel="next"', link)] if m]
        url = nxt[0] if nxt else None
    assert len(seen) == 12 and len(set(seen)) == 12


async def test_count_with_limit_zero(client: httpx.AsyncClient) -> None:
    await seed(client)
    response = await client.get("/ngsi-ld/v1/entities",
                                params={"type": "ParkingSpot", "limit": "0", "count": "true"})
    assert response.status_code == 200 and response.json() == []
    assert response.headers["NGSILD-Results-Count"] == "12"


async def test_post_query(client: httpx.AsyncClient) -> None:
    await seed(client)
    body = {"type": "Query", "entities": [{"type": "ParkingSpot"}],
            "geoQ": {"georel": "near;maxDistance==100", "geometry": "Point",
                     "coordinates": [23.7925, 44.2985]}}
    found = ids(await client.post(OPS + "/query", json=body))
    assert found and all("romanescu" in i for i in found)


async def test_bad_queries(client: httpx.AsyncClient) -> None:
    await seed(client)
    q = "/ngsi-ld/v1/entities"
    assert_problem(await client.get(q), 400, "BadRequestData")
    assert_problem(await client.get(q, params={"type": "(A"}), 400, "BadRequestData")
    assert_problem(await client.get(q, params={"idPattern": "(["}), 400, "BadRequestData")
    assert_problem(await client.get(q, params={"type": "T", "limit": "x"}), 400, "BadRequestData")
    assert_problem(await client.get(q, params={"type": "T", "limit": "5000"}), 403,
                   "TooManyResults")
    assert_problem(await client.get(q, params={"georel": "near", "geometry": "Point",
                                               "coordinates": "[1,2]"}), 400, "BadRequestData")
    assert_problem(await client.get(q, params={"georel": "within", "geometry": "Polygon",
                                               "coordinates": "[[[0,0],[1,1]]]"}), 400,
                   "BadRequestData")
    assert_problem(await client.get(q, params={"type": "T"}, headers={"NGSILD-Tenant": "x"}),
                   404, "NonexistentTenant")
