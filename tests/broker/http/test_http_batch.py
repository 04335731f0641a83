"""Batch operations over HTTP (clauses 5.6.7-5.6.10, 5.6.20)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.broker.http.test_http_entities import assert_problem, lamp
from tests.conftest import CORE

OPS = "/ngsi-ld/v1/entityOperations"


def kv(client: httpx.AsyncClient, n: int) -> Any:
    return client.get(f"/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:craiova-{n:03d}",
                      params={"options": "keyValues"})


async def test_create_thousand(client: httpx.AsyncClient) -> None:
    response = await client.post(OPS + "/create", json=[lamp(n) for n in range(1000)])
    assert response.status_code == 201, response.text
    assert len(response.json()) == 1000
    assert (await kv(client, 999)).json()["powerState"] == "on"


async def test_create_partial_failure(client: httpx.AsyncClient) -> None:
    await client.post("/ngsi-ld/v1/entities", json=lamp(1))
    bad = {"id": "not a uri", "type": "Streetlight"}
    response = await client.post(OPS + "/create", json=[lamp(1), lamp(2), bad])
    assert response.status_code == 207
    result = response.json()
    assert result["success"] == ["urn:ngsi-ld:Streetlight:craiova-002"]
    kinds = {e["entityId"]: e["error"]["type"].rsplit("/", 1)[-1] for e in result["errors"]}
    assert kinds == {"urn:ngsi-ld:Streetlight:craiova-001": "AlreadyExists",
                     "not a uri": "BadRequestData"}


async def test_upsert_replace_and_update(client: httpx.AsyncClient) -> None:
    created = await client.post(OPS + "/upsert", json=[lamp(1)])
    assert created.status_code == 201 and created.json() == ["urn:ngsi-ld:Streetlight:craiova-001"]
    replaced = await client.post(OPS + "/upsert", json=[{"id": lamp(1)["id"], "type": "Streetlight",
                                                         "status": "ok"}])
    assert replaced.status_code == 204, replaced.text
    assert set((await kv(client, 1)).json()) == {"id", "type", "status"}
    updated = await client.post(OPS + "/upsert", params={"options": "update"},
                                json=[{"id": lamp(1)["id"], "type": "Streetlight", "level": 3}])
    assert updated.status_code == 204
    assert (await kv(client, 1)).json() == {"id": lamp(1)["id"], "type": "Streetlight",
                                           "status": "ok", "level": 3}


async def test_update_merge_delete(client: httpx.AsyncClient) -> None:
    await client.post(OPS + "/create", json=[lamp(1), lamp(2)])
    update = await client.post(OPS + "/update", params={"options": "noOverwrite"},
                               json=[{"id": lamp(1)["id"], "powerState": "off", "extra": 1}])
    assert update.status_code == 204, update.text
    assert (await kv(client, 1)).json()["powerState"] == "on"
    merge = await client.post(OPS + "/merge", json=[
        {"id": lamp(2)["id"], "powerState": "off", "dimmingLevel": "urn:ngsi-ld:null"},
        {"id": "urn:ngsi-ld:Streetlight:none", "powerState": "off"}])
    assert merge.status_code == 207
    assert merge.json()["success"] == [lamp(2)["id"]]
    assert "dimmingLevel" not in (await kv(client, 2)).json()
    delete = await client.post(OPS + "/delete", json=[lamp(1)["id"], lamp(2)["id"]])
    assert delete.status_code == 204
    again = await client.post(OPS + "/delete", json=[lamp(1)["id"]])
    assert again.status_code == 207
    assert again.json()["errors"][0]["error"]["status"] == 404


async def test_ld_json_batches(client: httpx.AsyncClient) -> None:
    ld = {"Content-Type": "application/ld+json"}
    body = [{**lamp(1), "@context": CORE}, {**lamp(2), "@context": CORE}]
    assert (await client.post(OPS + "/create", json=body, headers=ld)).status_code == 201
    missing = await client.post(OPS + "/create", json=[lamp(3)], headers=ld)
    assert missing.status_code == 207
    # A batch delete's plain array of ids needs no @context.
    ids = [lamp(1)["id"], lamp(2)["id"]]
    assert (await client.post(OPS + "/delete", json=ids, headers=ld)).status_code == 204


async def test_bad_batches(client: httpx.AsyncClient) -> None:
    assert_problem(await client.post(OPS + "/create", json={"id": "urn:x:1"}), 400,
                   "BadRequestData")
    assert_problem(await client.post(OPS + "/create", json=[]), 400, "BadRequestData")
    assert_problem(await client.post(OPS + "/upsert", params={"options": "update,replace"},
                                     json=[lamp(1)]), 400, "BadRequestData")
