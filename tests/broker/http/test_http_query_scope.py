"""scopeQ over HTTP (clause 4.19): GET /entities and POST /entityOperations/query."""

from __future__ import annotations

import httpx
import pytest

from tests.broker.http.test_http_entities import assert_problem

OPS = "/ngsi-ld/v1/entityOperations"
SCOPES = {"1": ["/Craiova/Centru"], "2": ["/Craiova/Centru/Unirii"], "3": ["/Craiova"],
          "4": ["/Timisoara/Cetate", "/Lighting"], "5": []}


async def seed(client: httpx.AsyncClient) -> None:
    body = [{"id": f"urn:ngsi-ld:Streetlight:{n}", "type": "Streetlight",
             **({"scope": s} if s else {})} for n, s in SCOPES.items()]
    assert (await client.post(OPS + "/create", json=body)).status_code == 201


CASES = [
    ("/Craiova", ["3"]),
    ("/Craiova/#", ["1", "2", "3"]),
    ("/Craiova/+", ["1"]),
    ("/+/Centru/#", ["1", "2"]),
    ("/#", ["1", "2", "3", "4"]),
    ("/Timisoara/#;/Lighting", ["4"]),
    ("/Craiova|/Lighting", ["3", "4"]),
    ("(/Craiova/+|/Lighting);/Timisoara/Cetate", ["4"]),
]


@pytest.mark.parametrize(("scope_q", "expected"), CASES, ids=[c[0] for c in CASES])
async def test_scopeq(client: httpx.AsyncClient, scope_q: str, expected: list[str]) -> None:
    await seed(client)
    got = await client.get("/ngsi-ld/v1/entities", params={"scopeQ": scope_q})
    assert got.status_code == 200, got.text
    assert sorted(e["id"].rsplit(":", 1)[1] for e in got.json()) == expected
    posted = await client.post(OPS + "/query", json={"type": "Query", "scopeQ": scope_q,
                                                     "entities": [{"type": "Streetlight"}]})
    assert sorted(e["id"].rsplit(":", 1)[1] for e in posted.json()) == expected


async def test_scopeq_with_type(client: httpx.AsyncClient) -> None:
    await seed(client)
    got = await client.get("/ngsi-ld/v1/entities", params={"type": "Other", "scopeQ": "/#"})
    assert got.json() == []


@pytest.mark.parametrize("scope_q", ["Craiova", "/Craiova/", "/#/x", "(/a", "/a b", ""])
async def test_bad_scopeq(client: httpx.AsyncClient, scope_q: str) -> None:
    problem = assert_problem(await client.get("/ngsi-ld/v1/entities",
                                              params={"scopeQ": scope_q}), 400, "BadRequestData")
    assert "position" in problem["detail"]
