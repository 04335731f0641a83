"""What handlers add to the audit record: the entity ids and types that creates, reads, batches
and queries touched (the middleware alone sees only the URL)."""

from __future__ import annotations

import httpx
import rdflib

from tests.security.audit.test_http_audit import ENTITIES, all_entries, spot

SPOT_TYPE = "https://uri.etsi.org/ngsi-ld/default-context/ParkingSpot"


async def test_ids_and_types_of_every_path(client: httpx.AsyncClient) -> None:
    assert (await client.post(ENTITIES, json=spot(1))).status_code == 201
    batch = await client.post("/ngsi-ld/v1/entityOperations/upsert", json=[spot(2), spot(3)])
    assert batch.status_code in (201, 204)
    assert (await client.get(f"{ENTITIES}/{spot(2)['id']}")).status_code == 200
    assert (await client.get(ENTITIES, params={"type": "ParkingSpot"})).status_code == 200
    entries = await all_entries(client)
    by_action = {e["action"]: e for e in entries}
    created = next(e for e in entries if e["action"] == "entity.create")
    assert created["entities"]["ids"] == [spot(1)["id"]]
    assert created["entities"]["types"] == [SPOT_TYPE]
    upsert = next(e for e in entries if e["status"] in (201, 204) and e is not created)
    assert upsert["entities"]["ids"] == [spot(2)["id"], spot(3)["id"]]
    assert by_action["entity.retrieve"]["entities"]["types"] == [SPOT_TYPE]
    query = next(e for e in entries if e["entities"]["ids"] == [spot(n)["id"] for n in (1, 2, 3)])
    assert query["entities"]["types"] == [SPOT_TYPE]


async def test_query_answers_in_turtle(client: httpx.AsyncClient) -> None:
    for n in (1, 2):
        assert (await client.post(ENTITIES, json=spot(n))).status_code == 201
    got = await client.get(ENTITIES, params={"type": "ParkingSpot", "limit": "1", "count": "true"},
                           headers={"Accept": "text/turtle"})
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/turtle")
    assert got.headers["NGSILD-Results-Count"] == "2" and 'rel="next"' in got.headers["Link"]
    graph = rdflib.Graph().parse(data=got.text, format="turtle")
    subjects = {str(s) for s in graph.subjects(rdflib.RDF.type, rdflib.URIRef(SPOT_TYPE))}
    assert subjects == {spot(1)["id"]}
