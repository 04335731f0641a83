"""The data-subject request endpoints on the real broker with access control configured (OIDC
tokens signed with a real RSA key, the JWKS in a file): only the dpo role gets an answer, every
request is in the audit log, and the retention purge job records what it removed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from broker.app import create_app
from broker.http import audit
from broker.http.privacy import API, purge_job
from broker.http.state import BROKER
from broker.settings import Settings
from broker.store.protocol import EntityQuery
from security.audit.entry import decode
from security.audit.log import EntryQuery
from security.privacy.purge import PURGE_ACTION, PURGE_PRINCIPAL
from security.privacy.retention import parse_instant
from tests.security.identity.kit import AUDIENCE, ISSUER, rsa_key, write_jwks
from tests.security.privacy_ops.kit import (
    NOW,
    OLD,
    VALIDATION,
    P,
    entity,
    prop,
    put,
    strangers,
    subject_entities,
)

SIGNER = rsa_key()
EXPORT = f"{API}/subject-requests/export"
ERASE = f"{API}/subject-requests/erase"


def bearer(subject: str, *roles: str, **claims: Any) -> dict[str, str]:
    token = SIGNER.sign({"sub": subject, "roles": list(roles), **claims})
    return {"Authorization": f"Bearer {token}"}


def dpo() -> dict[str, str]:
    # Signed when used: a token made at import expires (5 min) before a long suite gets here.
    return bearer("dpo-1", "dpo")


@dataclass
class Broker:
    app: web.Application
    http: httpx.AsyncClient

    async def entries(self, **filters: Any) -> list[dict[str, Any]]:
        log = self.app[audit.AUDIT]
        await log.flush()
        return [decode(raw) for _, raw in await log.query(EntryQuery(limit=1000, **filters))]


async def serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, configured: bool,
                store_url: str = "") -> AsyncIterator[Broker]:
    key = tmp_path / "pseudonym.key"
    key.write_bytes(b"k" * 32)
    monkeypatch.setenv("CETATE_PSEUDONYM_KEY_FILE", str(key))
    monkeypatch.setenv("CETATE_PRIVACY_TENANTS", "tax")
    monkeypatch.delenv("CETATE_ACCESS_CONTROL", raising=False)
    if configured:
        monkeypatch.setenv("CETATE_OIDC_ISSUER", ISSUER)
        monkeypatch.setenv("CETATE_OIDC_AUDIENCE", AUDIENCE)
        monkeypatch.setenv("CETATE_OIDC_JWKS", write_jwks(tmp_path / "jwks.json", SIGNER))
    else:
        for name in ("CETATE_OIDC_ISSUER", "CETATE_OIDC_AUDIENCE", "CETATE_OIDC_JWKS"):
            monkeypatch.delenv(name, raising=False)
    settings = Settings(store=store_url or f"sqlite:///{tmp_path}/cetate.db",
                        allowed_networks=("127.0.0.0/8",), log_level="WARNING")
    app = create_app(settings)
    purge_job(app)  # made before the app starts, as create_app would
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}",
                                     timeout=10) as http:
            yield Broker(app, http)
    finally:
        await server.close()


@pytest.fixture
async def broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                 test_store_url: str) -> AsyncIterator[Broker]:
    # test_store_url: the engine of --store-engine (the second pass of `make test`: PostgreSQL)
    async for served in serve(tmp_path, monkeypatch, True, test_store_url):
        store = served.app[BROKER].store
        await put(store, "", *subject_entities()[3:], *strangers())  # card, validation, session
        await put(store, "tax", *subject_entities()[:3])  # taxpayer, obligation, payment
        yield served


async def test_dpo_exports_everything_with_recipients(broker: Broker) -> None:
    taxpayer = f"urn:ngsi-ld:Taxpayer:{P}"
    read = await broker.http.get(f"/ngsi-ld/v1/entities/{taxpayer}", headers={
        **bearer("officer-1", "tax-officer"), "NGSILD-Tenant": "tax",
        "Cetate-Purpose": "tax-collection"})
    assert read.status_code == 200, read.text
    r = await broker.http.post(EXPORT, json={"subject": P}, headers=dpo())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["tenants"] == ["", "tax"]
    assert {(e["tenant"], e["entity"]["id"]) for e in body["entities"]} == {
        ("tax" if e["type"][0].startswith("https://cetate.city/ns/Tax") else "", e["id"])
        for e in subject_entities()}
    officer = broker.app[audit.AUDIT].pseudonyms("officer-1")
    assert [(x["principal"], x["roles"], x["entities"]) for x in body["recipients"]] == [
        (officer, ["tax-officer"], [taxpayer])]
    # audited, durably, with the entities found
    (logged,) = await broker.entries(action="privacy.subject.export")
    assert logged["decision"] == "allow" and logged["status"] == 200
    assert logged["principal"]["roles"] == ["dpo"]
    assert set(logged["entities"]["ids"]) == {e["id"] for e in subject_entities()}


async def test_tenants_named_and_limited_by_the_token(broker: Broker) -> None:
    r = await broker.http.post(EXPORT, json={"subject": P, "tenants": ["tax", "nowhere"]},
                               headers=dpo())
    assert r.status_code == 200 and r.json()["tenants"] == ["tax"]
    assert len(r.json()["entities"]) == 3
    limited = bearer("dpo-2", "dpo", cetate_tenants=[""])
    r = await broker.http.post(EXPORT, json={"subject": P}, headers=limited)
    assert r.status_code == 200 and r.json()["tenants"] == [""]


@pytest.mark.parametrize("who", [("officer-1", "tax-officer"), ("auditor-1", "auditor"),
                                 ("root", "admin"), None],
                         ids=["tax-officer", "auditor", "admin", "public"])
async def test_others_are_refused(broker: Broker, who: tuple[str, str] | None) -> None:
    headers = bearer(*who) if who is not None else {}
    for path in (EXPORT, ERASE):
        r = await broker.http.post(path, json={"subject": P}, headers=headers)
        assert r.status_code == 403, r.text
        assert r.json()["type"].endswith("/Forbidden") and P not in r.text
    store = broker.app[BROKER].store
    assert len((await store.query_entities("", EntityQuery(limit=100))).entities) == 5
    denied = await broker.entries(action="privacy.subject.erase")
    assert denied and all(e["decision"] == "deny" and e["status"] == 403 for e in denied)


async def test_dpo_erases_where_the_lawful_basis_allows(broker: Broker) -> None:
    r = await broker.http.post(ERASE, json={"subject": P}, headers=dpo())
    assert r.status_code == 200, r.text
    body = r.json()
    assert {e["id"] for e in body["erased"]} == {
        f"urn:ngsi-ld:TransitCard:{P}", "urn:ngsi-ld:TicketValidation:rat:1",
        "urn:ngsi-ld:ParkingSession:cv-sms-1"}
    assert {e["id"] for e in body["kept"]} == {e["id"] for e in subject_entities()[:3]}
    assert all(k["article"] == "17(3)(b)" and k["lawfulBasis"] == "legal-obligation"
               for k in body["kept"])
    store = broker.app[BROKER].store
    assert [e["id"] for e in (await store.query_entities("", EntityQuery(limit=100))).entities
            ] == [s["id"] for s in strangers()]
    assert len((await store.query_entities("tax", EntityQuery(limit=100))).entities) == 3
    (logged,) = await broker.entries(action="privacy.subject.erase")
    assert logged["decision"] == "allow" and logged["principal"]["roles"] == ["dpo"]
    again = (await broker.http.post(ERASE, json={"subject": P}, headers=dpo())).json()
    assert again["erased"] == [] and len(again["kept"]) == 3


@pytest.mark.parametrize("body", [b"[]", b"not json", b'{"subject": "short"}', b"{}",
                                  b'{"subject": "' + P.encode() + b'", "tenants": "tax"}'])
async def test_bad_requests(broker: Broker, body: bytes) -> None:
    r = await broker.http.post(EXPORT, content=body, headers=dpo())
    assert r.status_code == 400 and r.json()["type"].endswith("/BadRequestData")


async def test_purge_job_records_what_it_removed(broker: Broker) -> None:
    store = broker.app[BROKER].store
    await put(store, "", entity("urn:ngsi-ld:TicketValidation:rat:old", VALIDATION, OLD,
                                passengerCount=prop(1)))
    job = purge_job(broker.app)
    job.clock = lambda: parse_instant(NOW)
    report = await job.run_once()
    assert report is not None and report.removed == 1
    (logged,) = await broker.entries(action=PURGE_ACTION)
    assert logged["entities"] == {"ids": ["urn:ngsi-ld:TicketValidation:rat:old"],
                                  "types": [VALIDATION]}
    assert logged["principal"]["subject"] == broker.app[audit.AUDIT].pseudonyms(PURGE_PRINCIPAL)


async def test_refused_while_access_control_is_off(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    async for served in serve(tmp_path, monkeypatch, configured=False):
        r = await served.http.post(EXPORT, json={"subject": P})
        assert r.status_code == 403 and "access control" in r.json()["detail"]
        (logged,) = await served.entries(action="privacy.subject.export")
        assert logged["decision"] == "deny" and logged["rule"] == "access-control-off"


async def test_erasure_erases_the_subjects_own_audit_details(broker: Broker) -> None:
    # A data subject who acted as a principal under the pseudonym (a citizen portal's token):
    # the details its entries commit to go; the leaves stay.
    await broker.http.get("/ngsi-ld/v1/types", headers=bearer(P, "city-it"))
    log = broker.app[audit.AUDIT]
    await log.flush()
    own = await log.query(EntryQuery(subject=log.pseudonyms(P)))
    assert own
    r = await broker.http.post(ERASE, json={"subject": P}, headers=dpo())
    assert r.status_code == 200
    assert r.json()["auditLog"]["detailsErased"] == len(own)
    assert await log.query(EntryQuery(subject=log.pseudonyms(P))) == own  # leaves unchanged


async def test_subscribers_are_told_of_purged_entities(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.broker.subscriptions.conftest import serving_receiver

    async for served in serve(tmp_path, monkeypatch, configured=False):
        async with serving_receiver() as receiver:
            r = await served.http.post("/ngsi-ld/v1/subscriptions", json={
                "type": "Subscription", "entities": [{"type": VALIDATION}],
                "notificationTrigger": ["entityDeleted"],
                "notification": {"endpoint": {"uri": receiver.url,
                                              "accept": "application/json"}}},
                headers={"Content-Type": "application/json"})
            assert r.status_code == 201, r.text
            old = "urn:ngsi-ld:TicketValidation:rat:old"
            await put(served.app[BROKER].store, "",
                      entity(old, VALIDATION, OLD, passengerCount=prop(1)))
            job = purge_job(served.app)
            job.clock = lambda: parse_instant(NOW)
            assert (await job.run_once()) is not None
            await receiver.wait_for(1)
            assert [d["id"] for d in receiver.received[0].body["data"]] == [old]
