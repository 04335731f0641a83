"""/ngsi-ld/v1/jsonldContexts over HTTP (clauses 5.13.2-5.13.5)."""

from __future__ import annotations

import httpx

from models.core import ContextInfo
from tests.broker.http.test_http_entities import assert_problem, lamp

CTX = "/ngsi-ld/v1/jsonldContexts"
BODY = {"@context": {"Lamp": "https://example.org/Lamp"}}


async def test_hosted_context_lifecycle(client: httpx.AsyncClient) -> None:
    created = await client.post(CTX, json=BODY)
    assert created.status_code == 201, created.text
    path = created.headers["Location"]
    served = await client.get(path)
    assert served.status_code == 200 and served.json() == BODY
    assert served.headers["Content-Type"].startswith("application/ld+json")
    info = ContextInfo.model_validate((await client.get(path, params={"details": "true"})).json())
    assert info.kind == "Hosted" and path.endswith(info.localId)
    listed = (await client.get(CTX)).json()
    assert any(url.endswith(info.localId) for url in listed)
    details = (await client.get(CTX, params={"details": "true", "kind": "hosted"})).json()
    assert [ContextInfo.model_validate(d).localId for d in details] == [info.localId]
    assert (await client.get(CTX, params={"kind": "cached"})).json() == []
    assert (await client.delete(path)).status_code == 204
    assert_problem(await client.get(path), 404, "ResourceNotFound")
    assert_problem(await client.delete(path), 404, "ResourceNotFound")


async def test_inline_context_is_implicitly_created(client: httpx.AsyncClient) -> None:
    body = {**lamp(), "@context": [{"Streetlight": "https://example.org/Lamp"},
                                   "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"]}
    response = await client.post("/ngsi-ld/v1/entities", json=body,
                                 headers={"Content-Type": "application/ld+json"})
    assert response.status_code == 201, response.text
    implicit = (await client.get(CTX, params={"kind": "implicitlycreated",
                                              "details": "true"})).json()
    assert len(implicit) == 1 and implicit[0]["kind"] == "ImplicitlyCreated"


async def test_bad_context_requests(client: httpx.AsyncClient) -> None:
    assert_problem(await client.post(CTX, json={"no": "context"}), 400, "BadRequestData")
    assert_problem(await client.post(CTX, json={"@context": 5}), 400, "BadRequestData")
    assert_problem(await client.get(CTX, params={"kind": "weird"}), 400, "BadRequestData")
    assert_problem(await client.get(CTX + "/urn:nothing"), 404, "ResourceNotFound")
