"""A write whose audit entry cannot be recorded is not answered 2xx (docs/auditors.md)."""

from __future__ import annotations

import sqlite3

import asyncpg
import httpx
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
