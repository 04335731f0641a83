"""A write whose audit entry cannot be recorded is not answered 2xx (docs/auditors.md)."""

from __future__ import annotations

import os
import socket
import sqlite3
import time

import asyncpg
import httpx
import pytest
from aiohttp.test_utils import TestServer

from broker.http.audit import AUDIT
from broker.http.state import BROKER
from security.audit import pending
from security.audit.entry import AuditRecord, decode, facts
from security.audit.entry import now as now_time
from security.audit.sqlite_log import SQLiteAuditStorage

GONE = "ALTER TABLE audit_bundles RENAME TO audit_bundles_gone"
BACK = "ALTER TABLE audit_bundles_gone RENAME TO audit_bundles"
PENDING_GONE = "ALTER TABLE audit_pending RENAME TO audit_pending_gone"
PENDING_BACK = "ALTER TABLE audit_pending_gone RENAME TO audit_pending"


async def _alter(server: TestServer, statement: str) -> None:
    storage = server.app[AUDIT].storage
    if isinstance(storage, SQLiteAuditStorage):
        db = sqlite3.connect(storage.path, timeout=30)
        db.execute(statement)
        db.commit()
        db.close()
    else:  # the log in PostgreSQL
        conn = await asyncpg.connect(server.app[BROKER].settings.store)
        await conn.execute(statement)
        await conn.close()


async def test_a_write_whose_entry_fails_answers_500(client: httpx.AsyncClient,
                                                     server: TestServer) -> None:
    lamp = {"id": "urn:ngsi-ld:Lamp:1", "type": "Lamp"}
    assert (await client.post("/ngsi-ld/v1/entities", json=lamp)).status_code == 201
    # The log's tables go away under the running broker: the next write can keep neither its
    # facts (SQLite) nor its entry, for real.
    await _alter(server, GONE)
    await _alter(server, PENDING_GONE)
    try:
        r = await client.post("/ngsi-ld/v1/entities", json={**lamp, "id": "urn:ngsi-ld:Lamp:2"})
        assert r.status_code == 500
        assert r.json()["type"].endswith("InternalError")
        assert "audit log" in r.json()["detail"]
    finally:
        await _alter(server, BACK)
        await _alter(server, PENDING_BACK)
    # not committed without its facts
    assert (await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Lamp:2")).status_code == 404


async def test_kept_facts_whose_entry_failed_are_sealed_later(
        client: httpx.AsyncClient, server: TestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write is answered once its facts commit with it; if appending its entry then fails,
    the facts stay, and recovery seals them (status null) once they are old."""
    audit = server.app[AUDIT]
    await _alter(server, GONE)
    try:
        r = await client.post("/ngsi-ld/v1/entities", json={"id": "urn:ngsi-ld:Lamp:kept",
                                                            "type": "Lamp"})
        assert r.status_code == 201  # durable: its facts committed with it
        await audit.flush()  # the entry's append fails; the facts stay
    finally:
        await _alter(server, BACK)
    assert await audit.committer.recover(audit.pseudonyms) == 0  # its own, and recent
    monkeypatch.setattr(pending, "OWN_AFTER_S", 0.0)
    assert await audit.committer.recover(audit.pseudonyms) == 1
    entries = [decode(e) for _, e in await audit.entries(0, (await audit.head()).size)]
    kept = [e for e in entries if e["entities"]["ids"] == ["urn:ngsi-ld:Lamp:kept"]]
    assert [(e["action"], e["status"]) for e in kept] == [("entity.create", None)]
    assert await audit.committer.recover(audit.pseudonyms) == 0  # sealed once


async def test_a_write_whose_commit_fails_is_not_acknowledged_and_keeps_no_facts(
        client: httpx.AsyncClient, server: TestServer, store_engine: str,
        caplog: pytest.LogCaptureFixture) -> None:
    """SQLite keeps a write's audit facts in the write's own transaction. When its COMMIT
    fails, the request must not be acknowledged: 500, the entity is not there, no facts or
    entry claim it was created, and the entry records the 500."""
    if store_engine != "sqlite":
        pytest.skip("the COMMIT failure is made with a SQLite deferred foreign key")
    store = server.app[BROKER].store
    audit = server.app[AUDIT]
    # A real COMMIT failure: on the writer's connection, every new entity also inserts a row
    # violating a deferred foreign key, which SQLite checks at COMMIT, after the facts.
    doom = ("CREATE TEMP TABLE doom_parent (id INTEGER PRIMARY KEY)",
            "CREATE TEMP TABLE doom_child (parent INTEGER REFERENCES doom_parent(id) "
            "DEFERRABLE INITIALLY DEFERRED)",
            "CREATE TEMP TRIGGER doom AFTER INSERT ON main.entities "
            "BEGIN INSERT INTO doom_child VALUES (42); END")
    await store._write(lambda conn: [conn.execute(statement) for statement in doom])
    await audit.flush()
    before = (await audit.head()).size
    r = await client.post("/ngsi-ld/v1/entities", json={"id": "urn:ngsi-ld:Lamp:doomed",
                                                        "type": "Lamp"})
    assert r.status_code == 500, r.text
    assert "FOREIGN KEY constraint failed" in caplog.text  # at COMMIT
    await store._write(lambda conn: conn.execute("DROP TRIGGER temp.doom"))
    assert (await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Lamp:doomed")).status_code == 404
    await audit.flush()
    pending = await store._write(
        lambda conn: conn.execute("SELECT count(*) FROM audit_pending").fetchone()[0])
    assert pending == 0
    rows = [decode(entry) for _, entry in
            await audit.entries(before, (await audit.head()).size)]
    creates = [e for e in rows if e["action"] == "entity.create"]
    assert [e["status"] for e in creates] == [500]
    # and the writer goes on: the next write is acknowledged and stored
    r = await client.post("/ngsi-ld/v1/entities", json={"id": "urn:ngsi-ld:Lamp:after",
                                                        "type": "Lamp"})
    assert r.status_code == 201


async def test_recovery_seals_the_facts_of_dead_or_silent_brokers_only(
        server: TestServer, store_engine: str) -> None:
    """Kept facts are sealed at once when their broker is known dead (this host, no such
    process), after OTHER_AFTER_S when it is another host's, and never while young and alive."""
    if store_engine != "sqlite":
        pytest.skip("the rules are security/audit/pending.py's (test_pending.py); the rows are "
                    "written here with SQLite")
    store = server.app[BROKER].store
    audit = server.app[AUDIT]
    host = socket.gethostname()
    now = time.time()
    kept = [(f"{host}:{2**22 + 12345}:dead", now, "urn:ngsi-ld:Lamp:dead"),
            (f"{host}:{os.getpid()}:alive", now, "urn:ngsi-ld:Lamp:alive"),
            ("elsewhere:1:young", now, "urn:ngsi-ld:Lamp:young"),
            ("elsewhere:1:old", now - pending.OTHER_AFTER_S - 1, "urn:ngsi-ld:Lamp:old")]

    def insert(conn: sqlite3.Connection) -> None:
        for instance, at, eid in kept:
            record = AuditRecord(action="entity.create", entity_ids=[eid])
            conn.execute("INSERT INTO audit_pending (instance, at, facts) VALUES (?, ?, ?)",
                         (instance, at, facts(record, now_time(), "req")))

    await store._write(insert)
    assert await audit.committer.recover(audit.pseudonyms) == 2
    entries = [decode(e) for _, e in await audit.entries(0, (await audit.head()).size)]
    assert sorted(e["entities"]["ids"][0] for e in entries if e["status"] is None) == [
        "urn:ngsi-ld:Lamp:dead", "urn:ngsi-ld:Lamp:old"]
    left = await store._write(lambda conn: conn.execute(
        "SELECT instance FROM audit_pending ORDER BY id").fetchall())
    assert [i for (i,) in left] == [f"{host}:{os.getpid()}:alive", "elsewhere:1:young"]
