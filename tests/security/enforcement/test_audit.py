"""The audit API is for auditors once access control is on, and every decision is noted in the
request's audit entry (principal pseudonym, allow/deny, rule ids, masked attributes, purpose)."""

from __future__ import annotations

import base64
from typing import Any

import orjson

from tests.security.enforcement.conftest import LIGHTING, City
from tests.security.enforcement.test_reads import LAMP, TAP

API = "/cetate/v1/audit"


async def entries(city: City, **params: str) -> list[dict[str, Any]]:
    auditor = {**city.token("auditor", sub="eva"), "Cetate-Purpose": "audit"}
    answer = await city.http.get(f"{API}/query", params=params, headers=auditor)
    assert answer.status_code == 200, answer.text
    return [orjson.loads(base64.b64decode(e["entry"])) for e in answer.json()["entries"]]


async def test_only_auditors_read_the_audit_api(city: City) -> None:
    for headers in ({}, city.token("city-it"), city.token("auditor"),  # no purpose declared
                    {**city.token("transport-operator"), "Cetate-Purpose": "audit"}):
        answer = await city.http.get(f"{API}/checkpoint", headers=headers)
        assert answer.status_code == 403, headers
    auditor = {**city.token("auditor"), "Cetate-Purpose": "audit"}
    assert (await city.http.get(f"{API}/checkpoint", headers=auditor)).status_code == 200
    assert (await city.http.get(f"{API}/entries", headers=auditor)).status_code == 200
    refused = [e for e in await entries(city, decision="deny")
               if e.get("action", "").startswith("audit.")]
    assert len(refused) >= 4  # the refusals are themselves audited


async def test_decisions_are_noted_in_the_entries(city: City) -> None:
    await city.create(LAMP, context=LIGHTING)
    await city.create(TAP)
    await city.http.get(f"/ngsi-ld/v1/entities/{LAMP['id']}", headers=City.ask())
    await city.http.get(f"/ngsi-ld/v1/entities/{TAP['id']}", headers=City.ask())
    operator = {**city.token("transport-operator", sub="rat"),
                "Cetate-Purpose": "transport-operations"}
    await city.http.get(f"/ngsi-ld/v1/entities/{TAP['id']}", headers=City.ask(operator))
    reads = [e for e in await entries(city, action="entity.retrieve")]
    text = orjson.dumps(reads).decode()
    assert "open-data-infrastructure" in text and "transport-validations" in text
    lamp = next(e for e in reads if LAMP["id"] in orjson.dumps(e).decode())
    assert "allow" in orjson.dumps(lamp).decode()
    assert "https://smartdatamodels.org/owner" in orjson.dumps(lamp).decode()  # masked
    denied = [e for e in reads if TAP["id"] in orjson.dumps(e).decode()
              and "deny" in orjson.dumps(e).decode()]
    assert denied and "default-deny" in orjson.dumps(denied).decode()
    assert "transport-operations" in text  # the purpose of the operator's read


async def test_a_batch_with_one_refusal_is_recorded_as_denied(city: City) -> None:
    city_it = {**city.token("city-it"), "Content-Type": "application/ld+json"}
    lamp = {**LAMP, "@context": LIGHTING}
    tap = {**TAP, "@context": "https://cetate.city/ns/context.jsonld"}
    for n, batch in enumerate(([lamp, tap], [tap, lamp])):
        renamed = [{**e, "id": f"{e['id']}-{n}"} for e in batch]
        answer = await city.http.post("/ngsi-ld/v1/entityOperations/create",
                                      content=orjson.dumps(renamed), headers=city_it)
        assert answer.status_code == 207
    batches = await entries(city, action="batch.create")
    assert [(e["decision"], e["status"]) for e in batches] == [("deny", 207)] * 2
