"""Reads, queries and discovery over HTTP with the shipped policies (issue 8's stated default
outcomes), real RS256 tokens from a JWKS file, and the anonymous public principal."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from aiohttp.test_utils import TestServer

from broker.app import create_app
from tests.security.enforcement.conftest import LIGHTING, City
from tests.security.identity.kit import rsa_key

ENTITIES = "/ngsi-ld/v1/entities"
STREETLIGHT = "https://smartdatamodels.org/dataModel.Streetlighting/Streetlight"
LAMP: dict[str, Any] = {"id": "urn:ngsi-ld:Streetlight:1", "type": "Streetlight",
        "status": {"type": "Property", "value": "ok"},
        "owner": {"type": "Property", "value": "urn:ngsi-ld:Person:ana"},
        "location": {"type": "GeoProperty", "value": {"type": "Point",
                                                       "coordinates": [23.8, 44.3]}}}
TAP: dict[str, Any] = {"id": "urn:ngsi-ld:TicketValidation:1", "type": "TicketValidation",
       "validationResult": {"type": "Property", "value": "accepted"},
       "refTransitCard": {"type": "Relationship", "object": "urn:ngsi-ld:TransitCard:77"},
       "riderCategory": {"type": "Property", "value": "student"}}
DEBT: dict[str, Any] = {"id": "urn:ngsi-ld:TaxObligation:1", "type": "TaxObligation",
        "obligationCategory": {"type": "Property", "value": "building"},
        "amountDue": {"type": "Property", "value": 1200.5}}
CARD: dict[str, Any] = {"id": "urn:ngsi-ld:TransitCard:77", "type": "TransitCard",
        "cardStatus": {"type": "Property", "value": "active"}}


@pytest.fixture
async def seeded(city: City) -> City:
    await city.create(LAMP, context=LIGHTING)
    await city.create(TAP)
    await city.create(CARD)
    await city.create(DEBT, tenant="tax")
    return city


async def get(city: City, path: str, headers: dict[str, str] | None = None,
              **params: Any) -> Any:
    """GET with the lighting @context when the request is about lighting, else Cetate's."""
    lighting = "Streetlight" in path or params.get("type") == "Streetlight" or any(
        "owner" in str(v) or "status" in str(v) for v in params.values())
    return await city.http.get(path, headers=City.ask(headers, context=LIGHTING if lighting
                                                      else "https://cetate.city/ns/context.jsonld"),
                               params=params)


@pytest.mark.parametrize("options", ["", "concise", "keyValues"])
async def test_public_reads_lighting_without_its_pseudonymous_owner(seeded: City,
                                                                    options: str) -> None:
    params = {"options": options} if options else {}
    answer = await seeded.http.get(f"{ENTITIES}/{LAMP['id']}", params=params,
                                   headers=City.ask(context=LIGHTING))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert "status" in body and "owner" not in body
    status = body["status"]  # concise and keyValues give a plain value here
    assert (status["value"] if isinstance(status, dict) else status) == "ok"


async def test_public_geojson_and_rdf_leave_the_masked_attribute_out(seeded: City) -> None:
    geo = await seeded.http.get(f"{ENTITIES}/{LAMP['id']}",
                                headers=City.ask({"Accept": "application/geo+json"},
                                                 context=LIGHTING))
    assert geo.status_code == 200
    assert "owner" not in geo.json()["properties"] and geo.json()["geometry"]
    rdf = await seeded.http.get(f"{ENTITIES}/{LAMP['id']}",
                                headers=City.ask({"Accept": "application/n-quads"},
                                                 context=LIGHTING))
    assert rdf.status_code == 200, rdf.text
    assert "Person:ana" not in rdf.text and "ok" in rdf.text


async def test_public_learns_nothing_of_ticketing_cards_or_taxes(seeded: City) -> None:
    for path, tenant in ((TAP["id"], None), (CARD["id"], None), (DEBT["id"], "tax")):
        headers = {"NGSILD-Tenant": tenant} if tenant else {}
        answer = await get(seeded, f"{ENTITIES}/{path}", headers)
        assert answer.status_code == 404, path  # as for an entity that does not exist
        assert answer.json()["type"].endswith("ResourceNotFound")
    missing = await get(seeded, f"{ENTITIES}/urn:ngsi-ld:TicketValidation:none")
    assert missing.json()["title"] == (await get(seeded, f"{ENTITIES}/{TAP['id']}")
                                       ).json()["title"]


async def test_queries_hold_only_readable_types_and_count_only_them(seeded: City) -> None:
    everything = await get(seeded, ENTITIES, idPattern=".*", count="true")
    assert [e["id"] for e in everything.json()] == [LAMP["id"]]
    assert everything.headers["NGSILD-Results-Count"] == "1"
    hidden = await get(seeded, ENTITIES, type="TicketValidation", count="true")
    assert hidden.json() == [] and hidden.headers["NGSILD-Results-Count"] == "0"
    post = await seeded.http.post("/ngsi-ld/v1/entityOperations/query",
                                  json={"type": "Query", "entities": [{"type": "TransitCard"},
                                                                      {"type": STREETLIGHT}]},
                                  headers=City.ask())
    assert [e["id"] for e in post.json()] == [LAMP["id"]]
    assert "owner" not in post.json()[0]


async def test_an_entity_with_a_hidden_type_is_neither_matched_nor_counted(seeded: City) -> None:
    """An entity is shown only if every type it has is readable; one that is a Streetlight and
    a TicketValidation must not be counted or take a place in a page either, or public would
    learn of the validation it may not see."""
    hybrid = {**LAMP, "id": "urn:ngsi-ld:Streetlight:0", "type": [STREETLIGHT, "TicketValidation"]}
    await seeded.create(hybrid)
    for params in ({"type": "Streetlight"}, {"idPattern": ".*"}, {"type": "Streetlight",
                                                                   "q": 'status=="ok"'}):
        answer = await get(seeded, ENTITIES, count="true", **params)
        assert [e["id"] for e in answer.json()] == [LAMP["id"]], params
        assert answer.headers["NGSILD-Results-Count"] == "1", params
    # a page of one is the readable lamp, not a page emptied by the filter after the store
    page = await get(seeded, ENTITIES, type="Streetlight", limit="1")
    assert [e["id"] for e in page.json()] == [LAMP["id"]]
    admin = await get(seeded, ENTITIES, seeded.token("admin", sub="admin-1"), type="Streetlight",
                      count="true")
    assert admin.headers["NGSILD-Results-Count"] == "2"  # it is there, for who may see it


async def test_no_inference_by_filtering_on_a_masked_attribute(seeded: City) -> None:
    # owner is masked for the public: q, attrs on it behave as if it were absent.
    exact = await get(seeded, ENTITIES, type="Streetlight",
                      q='owner=="urn:ngsi-ld:Person:ana"', count="true")
    assert exact.status_code == 200 and exact.json() == []
    assert exact.headers["NGSILD-Results-Count"] == "0"
    assert (await get(seeded, ENTITIES, attrs="owner")).json() == []
    visible = await get(seeded, ENTITIES, type="Streetlight", q='status=="ok"')
    assert [e["id"] for e in visible.json()] == [LAMP["id"]]
    city_it = seeded.token("city-it")
    assert [e["id"] for e in (await get(seeded, ENTITIES, city_it, type="Streetlight",
                                        q='owner=="urn:ngsi-ld:Person:ana"')).json()] == \
        [LAMP["id"]]


async def test_tax_officer_for_tax_collection_reads_obligations_in_the_tax_tenant(
        seeded: City) -> None:
    officer = {**seeded.token("tax-officer"), "NGSILD-Tenant": "tax"}
    path = f"{ENTITIES}/{DEBT['id']}"
    granted = await get(seeded, path, {**officer, "Cetate-Purpose": "tax-collection"})
    assert granted.status_code == 200, granted.text
    assert granted.json()["amountDue"]["value"] == 1200.5
    # Without the purpose, the rule does not apply: nothing is granted.
    assert (await get(seeded, path, officer)).status_code == 404


async def test_no_one_else_reads_tax_personal_attributes(seeded: City) -> None:
    for roles, purpose in ((("city-it",), None), (("city-it",), "city-operations"),
                           (("admin",), None), (("auditor", "dpo"), None),
                           (("transport-operator",), "transport-operations")):
        headers = {**seeded.token(*roles), "NGSILD-Tenant": "tax"}
        if purpose:
            headers["Cetate-Purpose"] = purpose
        answer = await get(seeded, f"{ENTITIES}/{DEBT['id']}", headers)
        assert answer.status_code in (200, 404), (roles, answer.text)
        if answer.status_code == 200:
            assert "amountDue" not in answer.json(), roles
            assert answer.json()["obligationCategory"]["value"] == "building"


async def test_transport_operator_sees_validations_with_pseudonymous_cards(seeded: City) -> None:
    headers = {**seeded.token("transport-operator"), "Cetate-Purpose": "transport-operations"}
    body = (await get(seeded, f"{ENTITIES}/{TAP['id']}", headers)).json()
    assert body["validationResult"]["value"] == "accepted"
    assert "riderCategory" not in body
    card = body["refTransitCard"]["object"]
    assert card.startswith("urn:ngsi-ld:Pseudonym:") and "77" not in card.split(":")[-1][:2]
    again = (await get(seeded, ENTITIES, headers, type="TicketValidation")).json()
    assert again[0]["refTransitCard"]["object"] == card  # the same card, the same pseudonym


async def test_discovery_names_no_hidden_type_or_attribute(seeded: City) -> None:
    types = (await get(seeded, "/ngsi-ld/v1/types")).json()["typeList"]
    assert types == [STREETLIGHT]
    details = (await get(seeded, "/ngsi-ld/v1/types", details="true")).json()
    assert [t["typeName"] for t in details] == [STREETLIGHT]
    assert "https://smartdatamodels.org/owner" not in details[0]["attributeNames"]
    assert "status" in details[0]["attributeNames"]
    assert (await get(seeded, "/ngsi-ld/v1/types/TicketValidation")).status_code == 404
    info = (await get(seeded, "/ngsi-ld/v1/types/Streetlight")).json()
    assert "owner" not in [a["attributeName"] for a in info["attributeDetails"]]
    names = (await get(seeded, "/ngsi-ld/v1/attributes")).json()["attributeList"]
    assert "status" in names and "validationResult" not in names
    assert not {"https://smartdatamodels.org/owner", "riderCategory", "refTransitCard",
                "cardStatus"} & set(names)
    listed = (await get(seeded, "/ngsi-ld/v1/attributes", details="true")).json()
    assert "riderCategory" not in [a["attributeName"] for a in listed]
    assert (await get(seeded, "/ngsi-ld/v1/attributes/riderCategory")).status_code == 404
    # City IT sees the types whole (their non-personal attributes).
    city_it = (await get(seeded, "/ngsi-ld/v1/types", seeded.token("city-it"))).json()
    assert set(city_it["typeList"]) == {STREETLIGHT, "TicketValidation", "TransitCard"}


async def test_a_tenant_limited_principal_learns_nothing_of_another_tenant(seeded: City) -> None:
    parking = seeded.token("city-it", tenants=["parking"])
    for method, path, body in (
            ("GET", f"{ENTITIES}/{DEBT['id']}", None), ("GET", ENTITIES, None),
            ("GET", "/ngsi-ld/v1/types", None), ("GET", "/ngsi-ld/v1/attributes", None),
            ("GET", "/ngsi-ld/v1/subscriptions", None),
            ("POST", "/ngsi-ld/v1/entityOperations/query", {"type": "Query",
                                                            "entities": [{"type": "X"}]}),
            ("POST", "/ngsi-ld/v1/entityOperations/delete", [DEBT["id"]])):
        answer = await seeded.http.request(method, path, json=body, params={"type": "X"},
                                           headers=City.ask(parking, tenant="tax"))
        assert answer.status_code == 404, (path, answer.text)
        assert answer.json()["type"].endswith("NonexistentTenant")
    nowhere = await seeded.http.get(f"{ENTITIES}/{DEBT['id']}",
                                    headers=City.ask(parking, tenant="nowhere"))
    assert nowhere.json()["type"].endswith("NonexistentTenant")
    # The tax entity never reaches the default tenant either.
    assert (await get(seeded, f"{ENTITIES}/{DEBT['id']}", seeded.token("admin"))
            ).status_code == 404


async def test_without_a_configured_key_the_audit_logs_key_pseudonymises(
        enforced_settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """No CETATE_PSEUDONYM_KEY_FILE: the broker uses (and creates) the audit log's default key
    beside its signing keys, so a pseudonymised read answers 200, never a 500."""
    monkeypatch.delenv("CETATE_PSEUDONYM_KEY_FILE")
    server = TestServer(create_app(enforced_settings), host="127.0.0.1")
    await server.start_server()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
            city = City(http, rsa_key(), server)
            await city.create(TAP)
            headers = {**city.token("transport-operator"),
                       "Cetate-Purpose": "transport-operations"}
            answer = await get(city, f"{ENTITIES}/{TAP['id']}", headers)
            assert answer.status_code == 200, answer.text
            assert answer.json()["refTransitCard"]["object"].startswith("urn:ngsi-ld:Pseudonym:")
    finally:
        await server.close()
