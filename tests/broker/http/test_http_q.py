"""The q language over HTTP, compiled to SQL (clause 4.9)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.broker.http.test_http_entities import assert_problem

OPS = "/ngsi-ld/v1/entityOperations"


def lamp(n: int, **attrs: Any) -> dict[str, Any]:
    return {"id": f"urn:ngsi-ld:Streetlight:{n}", "type": "Streetlight", **attrs}


FIXTURES = [
    lamp(1, powerState="on", dimmingLevel=0.8, burningHours=1200, faulty=False,
         refGroup={"type": "Relationship", "object": "urn:ngsi-ld:StreetlightGroup:C-12"},
         address={"type": "Property", "value": {"streetAddress": "Calea Unirii",
                                                "addressLocality": "Craiova"}},
         lastFault={"type": "Property", "value": "2026-11-22T23:10:00Z",
                    "observedAt": "2026-11-22T23:10:00Z"},
         tags=["led", "smart"]),
    lamp(2, powerState="off", dimmingLevel=0.0, burningHours=40, faulty=True,
         refGroup={"type": "Relationship", "object": "urn:ngsi-ld:StreetlightGroup:C-12"},
         address={"type": "Property", "value": {"streetAddress": "Strada Mihai Viteazul",
                                                "addressLocality": "Craiova"}},
         lastFault={"type": "Property", "value": "2026-11-20T01:00:00Z",
                    "observedAt": "2026-11-20T01:00:00Z"}),
    lamp(3, powerState="on", dimmingLevel=0.5, burningHours=600,
         refGroup={"type": "Relationship", "object": "urn:ngsi-ld:StreetlightGroup:B-01"},
         power={"type": "Property", "value": 90, "unitCode": "WTT",
                "accuracy": {"type": "Property", "value": 2}}),
]

CASES = [
    ("powerState==\"on\"", [1, 3]),
    ("powerState!=\"on\"", [2]),
    ("dimmingLevel>0.4", [1, 3]),
    ("burningHours>=600;burningHours<=1200", [1, 3]),
    ("burningHours==40..700", [2, 3]),
    ("burningHours==40,1200", [1, 2]),
    ("faulty==true", [2]),
    ("faulty==false|power", [1, 3]),
    ("refGroup==urn:ngsi-ld:StreetlightGroup:C-12", [1, 2]),
    ("refGroup==\"urn:ngsi-ld:StreetlightGroup:B-01\";powerState==\"on\"", [3]),
    ("address[streetAddress]==\"Calea Unirii\"", [1]),
    ("address[addressLocality]==\"Craiova\"", [1, 2]),
    ("address[streetAddress]~=\"^Strada\"", [2]),
    ("powerState~=\"^o[fn]\"", [1, 2, 3]),
    ("powerState!~=\"^on$\"", [2]),
    ("lastFault.observedAt>=2026-11-22T00:00:00Z", [1]),
    ("lastFault>=2026-11-21T00:00:00Z", [1]),
    ("power.accuracy==2", [3]),
    ("power.accuracy", [3]),
    ("!power", [1, 2]),
    ("tags==\"smart\"", [1]),
    ("(powerState==\"off\"|dimmingLevel>0.6);refGroup==urn:ngsi-ld:StreetlightGroup:C-12",
     [1, 2]),
]


@pytest.mark.parametrize(("q", "expected"), CASES, ids=[c[0] for c in CASES])
async def test_q(client: httpx.AsyncClient, q: str, expected: list[int]) -> None:
    assert (await client.post(OPS + "/create", json=FIXTURES)).status_code == 201
    response = await client.get("/ngsi-ld/v1/entities",
                                params={"type": "Streetlight", "q": q, "limit": 100})
    assert response.status_code == 200, response.text
    assert sorted(int(e["id"].rsplit(":", 1)[1]) for e in response.json()) == expected


@pytest.mark.parametrize("q", ["powerState==on",  # strings need quotes (clause 4.9 ABNF)
                               "powerState==", "(a", "a>>1", "a==1)", "a>1,2", "a==\"x",
                               ])
async def test_bad_q(client: httpx.AsyncClient, q: str) -> None:
    response = await client.get("/ngsi-ld/v1/entities", params={"type": "Streetlight", "q": q})
    assert_problem(response, 400, "BadRequestData")


async def test_q_on_system_members_and_unit_code(client: httpx.AsyncClient) -> None:
    """createdAt / modifiedAt / unitCode of attributes (clause 4.9), beside observedAt."""
    q = "/ngsi-ld/v1/entities"
    assert (await client.post(OPS + "/create", json=FIXTURES)).status_code == 201
    first = (await client.get(q + "/urn:ngsi-ld:Streetlight:1",
                              params={"options": "sysAttrs"})).json()
    created = first["powerState"]["createdAt"]
    patched = await client.patch(q + "/urn:ngsi-ld:Streetlight:2/attrs",
                                 json={"powerState": "on"})
    assert patched.status_code == 204, patched.text
    after = (await client.get(q + "/urn:ngsi-ld:Streetlight:2",
                              params={"options": "sysAttrs"})).json()
    modified = after["powerState"]["modifiedAt"]

    async def found(expr: str) -> list[int]:
        got = await client.get(q, params={"type": "Streetlight", "q": expr})
        assert got.status_code == 200, got.text
        return sorted(int(e["id"].rsplit(":", 1)[1]) for e in got.json())

    assert await found(f"powerState.createdAt>={created}") == [1, 2, 3]
    assert await found(f"powerState.createdAt<{created}") == []
    assert await found(f"powerState.modifiedAt>={modified}") == [2]
    assert await found(f"powerState.modifiedAt=={created[:10]}") == [1, 2, 3]  # a date
    assert await found('power.unitCode=="WTT"') == [3]
    assert await found("power.unitCode==5") == []
    assert await found("power.unitCode") == [3]
    assert await found("dimmingLevel.unitCode") == []
    assert await found("powerState.createdAt>=00:00:00Z") == [1, 2, 3]  # a time of day
