"""A write whose audit entry cannot be recorded is not answered 2xx (docs/auditors.md)."""

from __future__ import annotations

import sqlite3

import httpx
from aiohttp.test_utils import TestServer

from broker.http.audit import AUDIT


async def test_a_write_whose_entry_fails_answers_500(client: httpx.AsyncClient,
                                                     server: TestServer) -> None:
    lamp = {"id": "urn:ngsi-ld:Lamp:1", "type": "Lamp"}
    assert (await client.post("/ngsi-ld/v1/entities", json=lamp)).status_code == 201
    # The log's table goes away under the running broker: its next append fails for real.
    path = server.app[AUDIT].storage.path
    db = sqlite3.connect(path, timeout=30)
    db.execute("ALTER TABLE audit_leaves RENAME TO audit_leaves_gone")
    db.commit()
    db.close()
    r = await client.post("/ngsi-ld/v1/entities", json={**lamp, "id": "urn:ngsi-ld:Lamp:2"})
    assert r.status_code == 500
    assert r.json()["type"].endswith("InternalError")
    assert "audit log" in r.json()["detail"]
