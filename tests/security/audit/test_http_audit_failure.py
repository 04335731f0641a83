"""A write whose audit entry cannot be recorded is not answered 2xx (docs/auditors.md)."""

from __future__ import annotations

import sqlite3

import asyncpg
import httpx
import pytest
from aiohttp.test_utils import TestServer

from broker.http.audit import AUDIT
from broker.http.state import BROKER
from security.audit.sqlite_log import SQLiteAuditStorage

GONE = "ALTER TABLE audit_bundles RENAME TO audit_bundles_gone"
BACK = "ALTER TABLE audit_bundles_gone RENAME TO audit_bundles"


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
    # The log's table goes away under the running broker: its next append fails for real.
    await _alter(server, GONE)
    try:
        r = await client.post("/ngsi-ld/v1/entities", json={**lamp, "id": "urn:ngsi-ld:Lamp:2"})
        assert r.status_code == 500
        assert r.json()["type"].endswith("InternalError")
        assert "audit log" in r.json()["detail"]
    finally:
        await _alter(server, BACK)


async def test_a_write_whose_commit_fails_after_its_answer_is_not_acknowledged(
        client: httpx.AsyncClient, server: TestServer, store_engine: str,
        caplog: pytest.LogCaptureFixture) -> None:
    """SQLite answers a write's job before COMMIT so that its entry joins that commit (the
    hold, broker/store/sqlite_audit.py). When that COMMIT then fails, the request must not be
    acknowledged: 500, the entity is not there, and the log has no entry claiming it."""
    if store_engine != "sqlite":
        pytest.skip("the hold before COMMIT is the SQLite writer's; PostgreSQL has none")
    store = server.app[BROKER].store
    audit = server.app[AUDIT]
    # A real COMMIT failure: on the writer's connection, every new entity also inserts a row
    # violating a deferred foreign key, which SQLite checks at COMMIT, after the hold.
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
    assert "FOREIGN KEY constraint failed" in caplog.text  # at COMMIT, after the answer
    await store._write(lambda conn: conn.execute("DROP TRIGGER temp.doom"))
    assert (await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Lamp:doomed")).status_code == 404
    await audit.flush()
    rows = await audit.entries(before, (await audit.head()).size)
    assert not any(b"urn:ngsi-ld:Lamp:doomed" in entry and b'"entity.create"' in entry
                   for _, entry in rows)
    # and the writer goes on: the next write is acknowledged and stored
    r = await client.post("/ngsi-ld/v1/entities", json={"id": "urn:ngsi-ld:Lamp:after",
                                                        "type": "Lamp"})
    assert r.status_code == 201
