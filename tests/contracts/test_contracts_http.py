"""Validation on ingest through the real HTTP API: every type round-trips, every mistake is
refused with nothing stored, on every write path and per entity in batches; tenant modes."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp.test_utils import TestServer

from broker.app import create_app
from broker.settings import Settings
from broker.validation import contracts, for_settings
from models.domain import to_normalized
from tests.conftest import CORE
from tests.contracts.examples import MISTAKES, VALID, broken

ENTITIES = "/ngsi-ld/v1/entities"
OPS = "/ngsi-ld/v1/entityOperations"
TYPES = sorted(VALID)
LD_LINK = '<{}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
LAMP = VALID["Streetlight"]
LAMP_URL = f"{ENTITIES}/{LAMP['id']}"


def link(name: str) -> dict[str, str]:
    return {"Link": LD_LINK.format(contracts().named(name).context)}


def normalized(name: str, key_values: dict[str, Any]) -> dict[str, Any]:
    return to_normalized({**key_values, "type": name}, contracts().named(name))


def assert_refused(response: httpx.Response, *attributes: str) -> None:
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["type"].endswith("/BadRequestData")
    for attribute in attributes:
        assert attribute in problem["detail"]
        assert attribute in {v["attribute"] for v in problem["violations"]}


@pytest.mark.parametrize("name", TYPES)
async def test_round_trip_and_mistake(client: httpx.AsyncClient, name: str) -> None:
    # One server per type (they cost most of this file's time): the mistake first.
    bad = {**normalized(name, broken(name)), "id": VALID[name]["id"] + "-broken"}
    assert_refused(await client.post(ENTITIES, json=bad, headers=link(name)),
                   MISTAKES[name].attribute)
    assert (await client.get(f"{ENTITIES}/{bad['id']}")).status_code == 404
    body = normalized(name, VALID[name])
    created = await client.post(ENTITIES, json=body, headers=link(name))
    assert created.status_code == 201, created.text
    read = await client.get(f"{ENTITIES}/{body['id']}", headers=link(name))
    assert read.status_code == 200 and read.json() == body
    # The concise form is accepted too, and reads back as the keyValues it was built from.
    concise = (await client.get(f"{ENTITIES}/{body['id']}", headers=link(name),
                                params={"options": "concise"})).json()
    concise["id"] = body["id"] + "-concise"
    created = await client.post(ENTITIES, json=concise, headers=link(name))
    assert created.status_code == 201, created.text
    key_values = await client.get(f"{ENTITIES}/{concise['id']}", headers=link(name),
                                  params={"options": "keyValues"})
    assert key_values.json() == {**VALID[name], "type": name, "id": concise["id"]}


async def test_raw_githubusercontent_context_in_the_body(client: httpx.AsyncClient) -> None:
    raw = "https://raw.githubusercontent.com/smart-data-models/dataModel.Parking/master/context.jsonld"
    body = {**normalized("ParkingSpot", VALID["ParkingSpot"]), "@context": [raw, CORE]}
    headers = {"Content-Type": "application/ld+json"}
    created = await client.post(ENTITIES, json=body, headers=headers)
    assert created.status_code == 201, created.text
    bad = {**normalized("ParkingSpot", broken("ParkingSpot")), "@context": [raw, CORE],
           "id": "urn:ngsi-ld:ParkingSpot:other"}
    assert_refused(await client.post(ENTITIES, json=bad, headers=headers), "status")


WRITES: list[tuple[str, str, Any, str]] = [
    ("POST", "/attrs", {"powerState": {"type": "Property", "value": "dimmed"}}, "powerState"),
    ("PATCH", "/attrs", {"powerState": {"type": "Property", "value": "dimmed"}}, "powerState"),
    ("PATCH", "/attrs/illuminanceLevel", {"type": "Property", "value": 7}, "illuminanceLevel"),
    ("PUT", "/attrs/powerState", {"type": "Property", "value": "dimmed"}, "powerState"),
    ("DELETE", "/attrs/status", None, "status"),
    ("PUT", "", {"type": "Streetlight", "location": {"type": "GeoProperty",
                                                     "value": LAMP["location"]}}, "status"),
    ("PATCH", "", {"powerStat": {"type": "Property", "value": "on"}}, "powerStat"),
]


@pytest.mark.parametrize(("method", "path", "body", "attribute"), WRITES)
async def test_every_write_path_is_checked(client: httpx.AsyncClient, method: str, path: str,
                                           body: Any, attribute: str) -> None:
    headers = link("Streetlight")
    assert (await client.post(ENTITIES, json=normalized("Streetlight", LAMP),
                              headers=headers)).status_code == 201
    before = (await client.get(LAMP_URL, headers=headers)).json()
    response = await client.request(method, LAMP_URL + path, json=body, headers=headers)
    assert_refused(response, attribute)
    assert (await client.get(LAMP_URL, headers=headers)).json() == before


async def test_valid_changes_pass(client: httpx.AsyncClient) -> None:
    headers = link("Streetlight")
    await client.post(ENTITIES, json=normalized("Streetlight", LAMP), headers=headers)
    changed = await client.patch(LAMP_URL + "/attrs", headers=headers, json={
        "powerState": {"type": "Property", "value": "off"}})
    assert changed.status_code == 204, changed.text
    kv = (await client.get(LAMP_URL, params={"options": "keyValues"}, headers=headers)).json()
    assert kv["powerState"] == "off"


def _mixed(count: int = 4) -> list[dict[str, Any]]:
    body = []
    for n in range(count):
        key_values = {**VALID["ParkingSpot"], "id": f"urn:ngsi-ld:ParkingSpot:unirii-{n}"}
        if n % 2:
            key_values["status"] = "liber"
        body.append(normalized("ParkingSpot", key_values))
    return body


def _errors(response: httpx.Response) -> dict[str, dict[str, Any]]:
    assert response.status_code == 207, response.text
    return {e["entityId"]: e["error"] for e in response.json()["errors"]}


async def test_batch_create_and_upsert_report_each_invalid_entity(
        client: httpx.AsyncClient) -> None:
    headers = link("ParkingSpot")
    for operation in ("create", "upsert"):
        response = await client.post(f"{OPS}/{operation}", json=_mixed(), headers=headers)
        errors = _errors(response)
        assert set(errors) == {"urn:ngsi-ld:ParkingSpot:unirii-1",
                               "urn:ngsi-ld:ParkingSpot:unirii-3"}
        assert all(e["type"].endswith("/BadRequestData") and "status" in e["detail"]
                   for e in errors.values())
        if operation == "create":
            assert response.json()["success"] == ["urn:ngsi-ld:ParkingSpot:unirii-0",
                                                  "urn:ngsi-ld:ParkingSpot:unirii-2"]
    found = await client.get(ENTITIES, params={"type": "ParkingSpot"}, headers=headers)
    assert sorted(e["id"] for e in found.json()) == ["urn:ngsi-ld:ParkingSpot:unirii-0",
                                                     "urn:ngsi-ld:ParkingSpot:unirii-2"]


async def test_batch_update_and_merge_check_the_resulting_entity(
        client: httpx.AsyncClient) -> None:
    headers = link("ParkingSpot")
    spots = [s for s in _mixed() if s["status"]["value"] == "free"]
    assert (await client.post(f"{OPS}/create", json=spots, headers=headers)).status_code == 201
    changes = [{"id": spots[0]["id"], "status": {"type": "Property", "value": "occupied"}},
               {"id": spots[1]["id"], "status": {"type": "Property", "value": "ocupat"}}]
    for operation in ("update", "merge"):
        errors = _errors(await client.post(f"{OPS}/{operation}", json=changes,
                                           headers=headers))
        assert list(errors) == [spots[1]["id"]] and "status" in errors[spots[1]["id"]]["detail"]
    second = await client.get(f"{ENTITIES}/{spots[1]['id']}", headers=headers,
                              params={"options": "keyValues"})
    assert second.json()["status"] == "free"


@pytest.fixture
async def modes(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    configured = dataclasses.replace(
        settings, validation="strict",
        validation_tenants="demo=off,loose=warn,tax=strict+closed")
    server = TestServer(create_app(configured), host="127.0.0.1")
    await server.start_server()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}",
                                     timeout=10) as http:
            yield http, configured
    finally:
        await server.close()


async def test_tenant_modes(modes: tuple[httpx.AsyncClient, Settings]) -> None:
    client, configured = modes
    bad = normalized("ParkingSpot", broken("ParkingSpot"))
    unknown = {"id": "urn:ngsi-ld:Banana:1", "type": "Banana",
               "ripeness": {"type": "Property", "value": 0.7}}

    async def post(tenant: str, body: dict[str, Any], name: str = "ParkingSpot") -> int:
        headers = {**link(name), "NGSILD-Tenant": tenant} if tenant else link(name)
        return (await client.post(ENTITIES, json=body, headers=headers)).status_code

    assert await post("", bad) == 400  # the default tenant: strict
    assert await post("", unknown) == 201  # unknown types pass unchecked...
    assert await post("tax", unknown) == 400  # ...unless the tenant is closed
    tax = normalized("TaxPayment", VALID["TaxPayment"])
    assert await post("tax", tax, "TaxPayment") == 201
    assert await post("demo", bad) == 201  # off
    warnings = for_settings(configured).warnings
    before = warnings[("loose", "ParkingSpot")]
    assert await post("loose", bad) == 201  # warn: accepted, logged and counted
    assert warnings[("loose", "ParkingSpot")] == before + 1
