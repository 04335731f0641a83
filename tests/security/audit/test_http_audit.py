"""The audit middleware and API through the real server (tests/conftest.py's client/server)."""

from __future__ import annotations

import base64
import sqlite3
from typing import Any

import asyncpg
import httpx
import orjson
from aiohttp.test_utils import TestServer

from broker.http.audit import AUDIT
from broker.http.state import BROKER
from security.audit.entry import decode, from_facts
from security.audit.export import verify_export
from security.audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from security.audit.note import open_checkpoint, parse_verifier_keys
from security.audit.sqlite_log import SQLiteAuditStorage

ENTITIES = "/ngsi-ld/v1/entities"
AUDIT_API = "/cetate/v1/audit"


def spot(n: int) -> dict[str, Any]:
    return {"id": f"urn:ngsi-ld:ParkingSpot:craiova-{n}", "type": "ParkingSpot",
            "status": {"type": "Property", "value": "free"}}


async def all_entries(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    await client.get(f"{AUDIT_API}/checkpoint")  # flushes queued read entries
    body = (await client.get(f"{AUDIT_API}/entries")).json()
    return [{"index": e["index"], **decode(base64.b64decode(e["entry"]))}
            for e in body["entries"]]


async def test_every_access_is_recorded_with_its_outcome(client: httpx.AsyncClient) -> None:
    assert (await client.post(ENTITIES, json=spot(1))).status_code == 201
    assert (await client.post(ENTITIES, json=spot(1))).status_code == 409
    got = await client.get(f"{ENTITIES}/{spot(1)['id']}",
                           headers={"Cetate-Purpose": "parking-enforcement"})
    assert got.status_code == 200
    assert (await client.get(f"{ENTITIES}/urn:ngsi-ld:X:none")).status_code == 404
    assert (await client.post(ENTITIES, content=b"{", headers={
        "Content-Type": "application/json"})).status_code == 400
    assert (await client.get("/ngsi-ld/v1/nowhere")).status_code == 404
    entries = await all_entries(client)
    summary = [(e["action"], e["status"]) for e in entries]
    assert summary[:6] == [("entity.create", 201), ("entity.create", 409),
                           ("entity.retrieve", 200), ("entity.retrieve", 404),
                           ("entity.create", 400), ("unknown-route", 404)]
    read = entries[2]
    assert read["entities"]["ids"] == [spot(1)["id"]]
    assert read["purpose"] == "parking-enforcement"
    assert read["decision"] == "allow" and read["rule"] == "open-default"
    assert read["principal"]["roles"] == []
    assert read["principal"]["subject"] != "public"  # a pseudonym, never the subject in clear
    assert "127.0.0.1" not in orjson.dumps(entries).decode()  # the address only as commitment
    assert set(read["commitments"]) == {"client", "subject"}
    assert entries[0]["request"] != entries[1]["request"]


async def test_audited_by_route_not_by_spelling(client: httpx.AsyncClient) -> None:
    """Whether a request is audited follows the route it reached: a percent-encoded spelling of
    an NGSI-LD path is recorded as that action, paths outside the APIs are not recorded."""
    assert (await client.post(ENTITIES, json=spot(7))).status_code == 201
    assert (await client.get("/health")).status_code == 200
    assert (await client.get(f"/ngsi%2Dld/v1/entities/{spot(7)['id']}")).status_code == 200
    assert (await client.get("/elsewhere")).status_code == 404
    summary = [(e["action"], e["status"]) for e in await all_entries(client)]
    assert summary[:2] == [("entity.create", 201), ("entity.retrieve", 200)]
    assert all(e[0] in ("entity.create", "entity.retrieve") or e[0].startswith("audit.")
               for e in summary)


async def test_writes_are_durable_when_acknowledged(client: httpx.AsyncClient,
                                                   server: TestServer) -> None:
    audit = server.app[AUDIT]
    for n in range(5):
        r = await client.post(ENTITIES, json=spot(n))
        assert r.status_code == 201
        # committed before the response left, no flush needed: the entry itself, or (SQLite)
        # the write's facts, kept in its own transaction until the entry is appended
        entries = [decode(entry) for _, entry in await audit.entries(0, 1000)]
        logged = [e["entities"]["ids"] for e in entries if e["action"] == "entity.create"]
        assert [spot(n)["id"]] in logged + await _kept_ids(server)


async def kept_facts(server: TestServer) -> list[bytes]:
    """The write facts the store keeps (audit_pending), on either engine."""
    storage = server.app[AUDIT].storage
    if isinstance(storage, SQLiteAuditStorage):
        db = sqlite3.connect(storage.path)
        try:
            return [bytes(kept) for (kept,) in db.execute("SELECT facts FROM audit_pending")]
        finally:
            db.close()
    conn = await asyncpg.connect(server.app[BROKER].settings.store)
    try:
        return [bytes(r[0]) for r in await conn.fetch("SELECT facts FROM audit_pending")]
    finally:
        await conn.close()


async def _kept_ids(server: TestServer) -> list[list[str]]:
    return [from_facts(kept)[0].entity_ids for kept in await kept_facts(server)]


async def test_a_writes_kept_facts_give_way_to_its_entry(client: httpx.AsyncClient,
                                                         server: TestServer) -> None:
    """The facts a write kept are deleted in the transaction that appends its entry, which
    has the response's status."""
    audit = server.app[AUDIT]
    assert (await client.post(ENTITIES, json=spot(1))).status_code == 201
    await audit.flush()
    assert await _kept_ids(server) == []
    entries = [decode(entry) for _, entry in await audit.entries(0, 1000)]
    assert [(e["action"], e["status"], e["entities"]["ids"]) for e in entries] == [
        ("entity.create", 201, [spot(1)["id"]])]


async def test_checkpoint_proofs_and_keys_verify(client: httpx.AsyncClient) -> None:
    for n in range(7):
        await client.post(ENTITIES, json=spot(n))
    keys = parse_verifier_keys((await client.get(f"{AUDIT_API}/public-key")).text)
    first = (await client.get(f"{AUDIT_API}/checkpoint"))
    assert first.headers["Content-Type"].startswith("text/plain")
    cp1 = open_checkpoint(first.text, keys)
    assert cp1.origin == "cetate.local/audit" and cp1.size >= 7
    for n in range(7, 12):
        await client.get(f"{ENTITIES}/{spot(n % 7)['id']}")
    cp2 = open_checkpoint((await client.get(f"{AUDIT_API}/checkpoint")).text, keys)
    assert cp2.size > cp1.size + 5  # the reads (and the checkpoint read) are in the new head
    body = (await client.get(f"{AUDIT_API}/entries", params={"from": 0, "to": cp2.size})).json()
    leaves = [base64.b64decode(e["entry"]) for e in body["entries"]]
    assert [e["index"] for e in body["entries"]] == list(range(cp2.size))
    for index in (0, 3, cp2.size - 1):
        proof = (await client.get(f"{AUDIT_API}/proof/inclusion",
                                  params={"index": index, "size": cp2.size})).json()
        verify_inclusion(index, cp2.size, leaf_hash(leaves[index]),
                         [base64.b64decode(h) for h in proof["proof"]], cp2.root)
    proof = (await client.get(f"{AUDIT_API}/proof/consistency",
                              params={"first": cp1.size, "second": cp2.size})).json()
    verify_consistency(cp1.size, cp2.size, [base64.b64decode(h) for h in proof["proof"]],
                       cp1.root, cp2.root)
    export = await client.get(f"{AUDIT_API}/export", params={"from": 2})
    report = verify_export(export.content, keys, previous=first.text)
    assert report.ok, report.text()


async def test_bad_parameters_are_problem_details(client: httpx.AsyncClient) -> None:
    await client.post(ENTITIES, json=spot(1))
    cases: list[tuple[str, dict[str, str | int]]] = [
        ("entries", {"from": "x"}), ("entries", {"from": 5, "to": 2}),
                         ("proof/inclusion", {}), ("proof/inclusion", {"index": 99}),
                         ("proof/inclusion", {"index": -1}),
                         ("proof/consistency", {"first": 9, "second": 3}),
                         ("proof/consistency", {"first": 0, "second": 10**6}),
                         ("query", {"since": "yesterday"}), ("query", {"limit": 0}),
                         ("export", {"from": 9, "to": 1})]
    for path, params in cases:
        r = await client.get(f"{AUDIT_API}/{path}", params=params)
        assert r.status_code == 400, (path, params, r.text)
        assert r.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"


async def test_query_filters(client: httpx.AsyncClient) -> None:
    await client.post(ENTITIES, json=spot(1), headers={"NGSILD-Tenant": "tax"})
    await client.post(ENTITIES, json=spot(2), headers={"Cetate-Purpose": "billing"})
    await client.get(f"{ENTITIES}/{spot(2)['id']}")
    await client.get(f"{AUDIT_API}/checkpoint")

    async def indices(**params: Any) -> list[int]:
        r = await client.get(f"{AUDIT_API}/query", params=params)
        assert r.status_code == 200, r.text
        return [e["index"] for e in r.json()["entries"]]

    assert await indices(tenant="tax") == [0]
    assert await indices(purpose="billing") == [1]
    assert await indices(entity=spot(2)["id"]) == [1, 2]
    assert await indices(action="entity.retrieve") == [2]
    assert await indices(decision="allow", limit=2) == [0, 1]
    assert await indices(subject="public", action="entity.create") == [0, 1]
    assert await indices(since="2000-01-01T00:00:00Z", until="2000-01-02T00:00:00Z") == []
    assert len(await indices(since="2000-01-01")) >= 4
    page = (await client.get(f"{AUDIT_API}/query", params={"limit": 1})).json()
    assert page["next_after"] == 1


async def test_audit_api_reads_are_themselves_audited(client: httpx.AsyncClient) -> None:
    await client.get(f"{AUDIT_API}/public-key")
    await client.get(f"{AUDIT_API}/entries")
    actions = [e["action"] for e in await all_entries(client)]
    assert actions[:3] == ["audit.public-key", "audit.entries", "audit.checkpoint"]


async def test_accesses_outside_requests_are_recorded(client: httpx.AsyncClient,
                                                      server: TestServer) -> None:
    from broker.http.audit import record_event
    from security.audit.entry import AuditRecord

    record = AuditRecord(action="notification.send", purpose="subscription")
    record.note(entity_ids=[spot(3)["id"]], types=["ParkingSpot"])
    future = record_event(server.app, record, status=200, durable=True)
    assert future is not None
    index = await future
    entry = next(e for e in await all_entries(client) if e["index"] == index)
    assert entry["action"] == "notification.send"
    assert entry["entities"] == {"ids": [spot(3)["id"]], "types": ["ParkingSpot"]}


async def test_a_write_and_its_facts_share_one_commit(client: httpx.AsyncClient,
                                                      server: TestServer) -> None:
    from broker.http.state import BROKER
    from broker.store.sqlite import SQLiteStore

    store = server.app[BROKER].store
    if not isinstance(store, SQLiteStore):
        return  # PostgreSQL commits entries in batches of their own (postgres_audit.py)
    await client.post(ENTITIES, json=spot(100))  # the store warmed up
    before = store.groups_committed
    for n in range(5):
        assert (await client.post(ENTITIES, json=spot(n))).status_code == 201
    # One commit each, the write with its facts (two each would be 10); the log's own
    # checkpoint (every second) or a read's queued entry may add a commit of their own.
    assert 5 <= store.groups_committed - before <= 7
    await server.app[AUDIT].flush()  # the entries themselves, sealed after the answers
    rows = await server.app[AUDIT].entries(0, 1000)
    assert [decode(e)["entities"]["ids"] for _, e in rows[-5:]] == [[spot(n)["id"]]
                                                                    for n in range(5)]


async def test_header_bytes_that_are_not_utf8_are_recorded_not_refused(
        client: httpx.AsyncClient) -> None:
    """A tenant or purpose header that is not UTF-8 gets its answer (not a 500) and its entry,
    the bytes it could not decode as U+FFFD."""
    read = await client.get(f"{ENTITIES}/urn:ngsi-ld:X:none",
                            headers={"NGSILD-Tenant": b"caf\xe9", "Cetate-Purpose": b"\xff-x"})
    assert read.status_code == 400  # an invalid tenant name
    write = await client.post(ENTITIES, json=spot(77), headers={"Cetate-Purpose": b"t\xe9x"})
    assert write.status_code == 201
    entries = await all_entries(client)
    assert [(e["tenant"], e["purpose"], e["status"]) for e in entries[-3:-1]] == [
        ("caf\ufffd", "\ufffd-x", 400), ("", "t\ufffdx", 201)]
