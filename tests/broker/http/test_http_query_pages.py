"""Pagination (clause 5.5.9): walking the next Links, or the prev Links back, returns every
matching entity exactly once, for plain, q, geo (paged after the exact check) and POST queries."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

OPS = "/ngsi-ld/v1/entityOperations"
N = 23


def spot(n: int) -> dict[str, Any]:
    return {"id": f"urn:ngsi-ld:ParkingSpot:{n:03d}", "type": "ParkingSpot",
            "status": "free" if n % 3 else "occupied",
            "location": {"type": "GeoProperty",
                         "value": {"type": "Point", "coordinates": [23.79 + n * 1e-4, 44.31]}}}


def links(response: httpx.Response, rel: str) -> list[str]:
    return [m.group(1) for link in response.headers.get_list("Link")
            for m in [re.match(rf'<([^>]*)>; rel="{rel}"', link)] if m]


async def walk(client: httpx.AsyncClient, url: str, rel: str,
               body: dict[str, Any] | None = None) -> list[str]:
    seen: list[str] = []
    next_url: str | None = url
    pages = 0
    while next_url:
        response = await (client.post(next_url, json=body) if body is not None
                          else client.get(next_url))
        assert response.status_code == 200, response.text
        seen += [e["id"] for e in response.json()]
        found = links(response, rel)
        next_url = found[0] if found else None
        pages += 1
        assert pages <= N + 1, "the Links never end"
    return seen


QUERIES = [
    ("type=ParkingSpot", N),
    ("type=ParkingSpot&q=status==%22free%22", len([n for n in range(N) if n % 3])),
    ("georel=near;maxDistance==2000&geometry=Point&coordinates=[23.79,44.31]&type=ParkingSpot",
     N),
    # 1e-4 degrees of longitude at 44.31 N are 7.96 m: spots 0 to 12 are within 100 m.
    ("georel=near;maxDistance==100&geometry=Point&coordinates=[23.79,44.31]", 13),
]


@pytest.mark.parametrize("limit", [1, 4, 5, 23, 50])
@pytest.mark.parametrize(("query", "total"), QUERIES, ids=[q[0][:30] for q in QUERIES])
async def test_walking_links_returns_each_entity_once(client: httpx.AsyncClient, query: str,
                                                      total: int, limit: int) -> None:
    assert (await client.post(OPS + "/create", json=[spot(n) for n in range(N)])).status_code \
        == 201
    forward = await walk(client, f"/ngsi-ld/v1/entities?{query}&limit={limit}", "next")
    assert len(forward) == total and len(set(forward)) == total
    assert forward == sorted(forward)  # oldest first, a stable order
    last = ((total - 1) // limit) * limit
    backward_pages = await walk(client, f"/ngsi-ld/v1/entities?{query}&limit={limit}"
                                f"&offset={last}", "prev")
    assert sorted(backward_pages) == forward


async def test_post_query_links_post_again(client: httpx.AsyncClient) -> None:
    assert (await client.post(OPS + "/create", json=[spot(n) for n in range(N)])).status_code \
        == 201
    body = {"type": "Query", "entities": [{"type": "ParkingSpot"}], "q": 'status=="free"'}
    seen = await walk(client, OPS + "/query?limit=4&count=true", "next", body)
    expected = [spot(n)["id"] for n in range(N) if n % 3]
    assert seen == expected
