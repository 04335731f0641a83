"""Writes under the shipped policies: create/update/delete per type, refused with 403 and
nothing written (404 when the principal may not even know the entity), per entity in a batch."""

from __future__ import annotations

import json
from typing import Any

from tests.security.enforcement.conftest import CETATE, LIGHTING, City
from tests.security.enforcement.test_reads import DEBT, LAMP, TAP

ENTITIES = "/ngsi-ld/v1/entities"
BATCH = "/ngsi-ld/v1/entityOperations"


def ld(headers: dict[str, str], tenant: str | None = None) -> dict[str, str]:
    out = {**headers, "Content-Type": "application/ld+json"}
    if tenant:
        out["NGSILD-Tenant"] = tenant
    return out


def body(entity: dict[str, Any], context: str = CETATE) -> str:
    return json.dumps({**entity, "@context": context})


async def admin_sees(city: City, entity_id: str, tenant: str | None = None) -> Any:
    answer = await city.http.get(f"{ENTITIES}/{entity_id}",
                                 headers=City.ask(city.token("admin"), tenant=tenant))
    return answer.json() if answer.status_code == 200 else None


async def test_create_needs_the_create_action_on_the_type(city: City) -> None:
    city_it = city.token("city-it")
    refused = await city.http.post(ENTITIES, content=body(DEBT), headers=ld(city_it, "tax"))
    assert refused.status_code == 403, refused.text
    assert refused.json()["type"].endswith("Forbidden")
    assert await admin_sees(city, DEBT["id"], "tax") is None  # nothing written
    public = await city.http.post(ENTITIES, content=body(LAMP, LIGHTING), headers=ld({}))
    assert public.status_code == 403
    made = await city.http.post(ENTITIES, content=body(LAMP, LIGHTING), headers=ld(city_it))
    assert made.status_code == 201, made.text
    adapter = city.token("adapter", sub="key-tax")
    taxed = await city.http.post(ENTITIES, content=body(DEBT), headers=ld(adapter, "tax"))
    assert taxed.status_code == 201, taxed.text
    # The adapter writes in the tax tenant only.
    other = await city.http.post(ENTITIES, content=body(DEBT), headers=ld(adapter))
    assert other.status_code == 403


async def test_updates_and_deletes_refused_leave_the_entity_as_it_was(city: City) -> None:
    await city.create(TAP)
    city_it = city.token("city-it")  # reads validations, may not write them
    patch = {"validationResult": {"type": "Property", "value": "forged"}}
    for method, path in (("PATCH", f"{ENTITIES}/{TAP['id']}/attrs"),
                         ("POST", f"{ENTITIES}/{TAP['id']}/attrs"),
                         ("PATCH", f"{ENTITIES}/{TAP['id']}"),
                         ("PATCH", f"{ENTITIES}/{TAP['id']}/attrs/validationResult"),
                         ("DELETE", f"{ENTITIES}/{TAP['id']}"),
                         ("DELETE", f"{ENTITIES}/{TAP['id']}/attrs/validationResult")):
        content = None if method == "DELETE" else body(
            patch["validationResult"] if path.endswith("validationResult") else patch)
        headers = City.ask(city_it) if content is None else ld(city_it)
        answer = await city.http.request(method, path, content=content, headers=headers)
        assert answer.status_code == 403, (method, path, answer.text)
    # The public may not even learn it exists: 404, as for a missing entity.
    hidden = await city.http.request("PATCH", f"{ENTITIES}/{TAP['id']}/attrs",
                                     content=body(patch), headers=ld({}))
    assert hidden.status_code == 404
    assert (await city.http.delete(f"{ENTITIES}/{TAP['id']}")).status_code == 404
    kept = await admin_sees(city, TAP["id"])
    assert kept is not None and kept["validationResult"]["value"] == "accepted"


async def test_an_adapter_updates_what_it_may_but_not_other_domains(city: City) -> None:
    await city.create(LAMP, context=LIGHTING)
    await city.create(DEBT, tenant="tax")
    adapter = city.token("adapter")
    status = {"status": {"type": "Property", "value": "broken"}}
    ok = await city.http.patch(f"{ENTITIES}/{LAMP['id']}/attrs", content=body(status, LIGHTING),
                               headers=ld(adapter))
    assert ok.status_code == 204, ok.text
    # Adapters may not delete (no rule grants it): 403, they know the entity.
    assert (await city.http.delete(f"{ENTITIES}/{LAMP['id']}", headers=adapter)
            ).status_code == 403
    assert (await admin_sees(city, LAMP["id"])) is not None


async def test_batch_reports_refusals_per_entity_and_writes_the_rest(city: City) -> None:
    city_it = city.token("city-it")
    lamp2 = {**LAMP, "id": "urn:ngsi-ld:Streetlight:2", "@context": LIGHTING}
    tap2 = {**TAP, "id": "urn:ngsi-ld:TicketValidation:2", "@context": CETATE}
    answer = await city.http.post(f"{BATCH}/create", content=json.dumps([lamp2, tap2]),
                                  headers=ld(city_it))
    assert answer.status_code == 207, answer.text
    result = answer.json()
    assert result["success"] == [lamp2["id"]]
    assert [e["entityId"] for e in result["errors"]] == [tap2["id"]]
    assert result["errors"][0]["error"]["status"] == 403
    assert await admin_sees(city, tap2["id"]) is None
    assert await admin_sees(city, lamp2["id"]) is not None
    await city.create(TAP)
    upsert = await city.http.post(f"{BATCH}/upsert", content=json.dumps([
        {**TAP, "@context": CETATE, "validationResult": {"type": "Property", "value": "x"}}]),
        headers=ld(city_it))
    assert upsert.status_code == 207 and upsert.json()["errors"][0]["error"]["status"] == 403
    deleted = await city.http.post(f"{BATCH}/delete", json=[TAP["id"], lamp2["id"]],
                                   headers=city_it)
    assert deleted.status_code == 207
    assert deleted.json()["success"] == [lamp2["id"]]
    assert (await admin_sees(city, TAP["id"]))["validationResult"]["value"] == "accepted"


async def test_hosted_contexts_are_changed_only_by_publishers(city: City) -> None:
    body = {"@context": {"Lamp": "https://example.org/Lamp"}}
    refused = await city.http.post("/ngsi-ld/v1/jsonldContexts", json=body)
    assert refused.status_code == 403  # the anonymous public may not
    made = await city.http.post("/ngsi-ld/v1/jsonldContexts", json=body,
                                headers=city.token("city-it"))
    assert made.status_code == 201, made.text
    path = made.headers["Location"]
    assert (await city.http.get(path)).status_code == 200  # reading stays open
    assert (await city.http.delete(path, headers=city.token("auditor"))).status_code == 403
    assert (await city.http.delete(path, headers=city.token("admin"))).status_code == 204
