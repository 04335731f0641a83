"""Bad input: a ProblemDetails with the right status, never a 500, and nothing stored changes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.broker.http.test_http_entities import assert_problem, create, lamp

URL = "/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:craiova-001"


async def stored(client: httpx.AsyncClient) -> Any:
    return (await client.get(URL, params={"options": "sysAttrs"})).json()


@pytest.fixture
async def existing(client: httpx.AsyncClient) -> Any:
    assert (await create(client, lamp())).status_code == 201
    return await stored(client)


async def post_raw(client: httpx.AsyncClient, content: bytes, ctype: str = "application/json",
                   path: str = "/ngsi-ld/v1/entities") -> httpx.Response:
    return await client.post(path, content=content, headers={"Content-Type": ctype})


BAD_ENTITIES: list[tuple[str, Any, str]] = [
    ("id not a URI", {"id": "lamp 1", "type": "Streetlight"}, "BadRequestData"),
    ("missing id", {"type": "Streetlight"}, "BadRequestData"),
    ("missing type", {"id": "urn:ngsi-ld:X:1"}, "BadRequestData"),
    ("empty type", {"id": "urn:ngsi-ld:X:1", "type": []}, "BadRequestData"),
    ("attribute named @context in json", {"id": "urn:ngsi-ld:X:1", "type": "T",
                                           "@context": "https://x"}, "BadRequestData"),
    ("attribute named @id", {"id": "urn:ngsi-ld:X:1", "type": "T", "@id": "urn:x:y"},
     "BadRequestData"),
    ("property without value", {"id": "urn:ngsi-ld:X:1", "type": "T",
                                "p": {"type": "Property"}}, "BadRequestData"),
    ("relationship without object", {"id": "urn:ngsi-ld:X:1", "type": "T",
                                     "r": {"type": "Relationship", "value": 1}},
     "BadRequestData"),
    ("relationship object not a URI", {"id": "urn:ngsi-ld:X:1", "type": "T",
                                       "r": {"type": "Relationship", "object": "x y"}},
     "BadRequestData"),
    ("geoproperty not geojson", {"id": "urn:ngsi-ld:X:1", "type": "T",
                                 "location": {"type": "GeoProperty", "value": "here"}},
     "BadRequestData"),
    ("unknown attribute type", {"id": "urn:ngsi-ld:X:1", "type": "T",
                                "p": {"type": "Banana", "value": 1}}, "BadRequestData"),
    ("bad datasetId", {"id": "urn:ngsi-ld:X:1", "type": "T",
                       "p": {"type": "Property", "value": 1, "datasetId": "no"}},
     "BadRequestData"),
    ("body is an array", [{"id": "urn:ngsi-ld:X:1", "type": "T"}], "BadRequestData"),
    ("forbidden characters in name", {"id": "urn:ngsi-ld:X:1", "type": "T",
                                      "a<b>": {"type": "Property", "value": 1}},
     "BadRequestData"),
]


@pytest.mark.parametrize(("why", "body", "kind"), BAD_ENTITIES, ids=[b[0] for b in BAD_ENTITIES])
async def test_bad_entities_rejected(client: httpx.AsyncClient, why: str, body: Any,
                                     kind: str) -> None:
    assert_problem(await client.post("/ngsi-ld/v1/entities", json=body), 400, kind)


async def test_malformed_json(client: httpx.AsyncClient) -> None:
    assert_problem(await post_raw(client, b'{"id": "urn:x:1",'), 400, "InvalidRequest")


async def test_wrong_content_type(client: httpx.AsyncClient) -> None:
    response = await post_raw(client, b'{"id":"urn:x:1","type":"T"}', "text/plain")
    assert_problem(response, 415, "InvalidRequest")


async def test_body_over_limit(client: httpx.AsyncClient) -> None:
    big = b'{"id":"urn:x:1","type":"T","p":{"type":"Property","value":"' + b"x" * 1_100_000 + b'"}}'
    assert_problem(await post_raw(client, big), 413, "InvalidRequest")


async def test_nesting_too_deep(client: httpx.AsyncClient) -> None:
    deep: Any = 1
    for _ in range(200):
        deep = {"a": deep}
    body = {"id": "urn:x:1", "type": "T", "p": {"type": "Property", "value": deep}}
    assert_problem(await client.post("/ngsi-ld/v1/entities", json=body), 400, "BadRequestData")
    very_deep = b'{"a":' * 5000 + b"1" + b"}" * 5000
    assert_problem(await post_raw(client, very_deep), 400, "BadRequestData")


async def test_ld_json_without_context(client: httpx.AsyncClient) -> None:
    response = await client.post("/ngsi-ld/v1/entities", json=lamp(),
                                 headers={"Content-Type": "application/ld+json"})
    assert_problem(response, 400, "BadRequestData")


async def test_json_body_with_context(client: httpx.AsyncClient) -> None:
    body = {**lamp(), "@context": "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"}
    assert_problem(await client.post("/ngsi-ld/v1/entities", json=body), 400, "BadRequestData")


async def test_unavailable_context(client: httpx.AsyncClient) -> None:
    body = {**lamp(), "@context": "http://127.0.0.1:9/nothing-here.jsonld"}
    response = await client.post("/ngsi-ld/v1/entities", json=body,
                                 headers={"Content-Type": "application/ld+json"})
    assert_problem(response, 503, "LdContextNotAvailable")


async def test_blocked_context_address(client: httpx.AsyncClient) -> None:
    body = {**lamp(), "@context": "http://169.254.169.254/latest/meta-data"}
    response = await client.post("/ngsi-ld/v1/entities", json=body,
                                 headers={"Content-Type": "application/ld+json"})
    assert response.status_code in (400, 503), response.text
    assert response.status_code != 500


async def test_not_acceptable(client: httpx.AsyncClient, existing: Any) -> None:
    response = await client.get(URL, headers={"Accept": "text/html"})
    assert_problem(response, 406, "InvalidRequest")


async def test_method_not_allowed(client: httpx.AsyncClient) -> None:
    response = await client.put("/ngsi-ld/v1/entities", json={})
    assert response.status_code == 405
    assert response.json()["status"] == 405


async def test_unknown_path(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/ngsi-ld/v1/nothing"), 404, "ResourceNotFound")


async def test_bad_options(client: httpx.AsyncClient, existing: Any) -> None:
    assert_problem(await client.get(URL, params={"options": "banana"}), 400, "BadRequestData")
    assert_problem(await client.get(URL, params={"format": "xml"}), 400, "BadRequestData")


REJECTED_UPDATES: list[tuple[str, str, str, Any]] = [
    ("append not an object", "POST", "/attrs", [1, 2]),
    ("append id as attribute", "POST", "/attrs", {"id": "urn:other:1"}),
    ("update bad structure", "PATCH", "/attrs", {"powerState": {"type": "Property"}}),
    ("replace without type", "PUT", "", {"powerState": {"type": "Property", "value": 1},
                                         "type": []}),
    ("merge bad relationship", "PATCH", "", {"r": {"type": "Relationship", "object": 5}}),
    ("attr patch not an object", "PATCH", "/attrs/powerState", "on"),
]


@pytest.mark.parametrize(("why", "method", "suffix", "body"), REJECTED_UPDATES,
                         ids=[r[0] for r in REJECTED_UPDATES])
async def test_rejected_update_changes_nothing(client: httpx.AsyncClient, existing: Any,
                                               why: str, method: str, suffix: str,
                                               body: Any) -> None:
    response = await client.request(method, URL + suffix, json=body)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["type"].startswith("https://uri.etsi.org/ngsi-ld/errors/")
    assert await stored(client) == existing
