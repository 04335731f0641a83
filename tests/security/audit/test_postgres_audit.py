"""The audit log in PostgreSQL (real server, tests/conftest.py postgres_url): replicas share one
log, sequenced by the advisory lock; the broker's writes, reads and proofs through it."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import httpx
from aiohttp.test_utils import TestServer

from broker.app import create_app
from broker.settings import Settings
from broker.store.postgres import PostgresStore
from security.audit.entry import Pseudonyms, decode
from security.audit.export import verify_export
from security.audit.log import AuditLog, config_for
from security.audit.merkle import leaf_hash, root
from security.audit.note import parse_verifier_keys
from tests.security.audit.conftest import random_entry

REPLICAS = 3
ENTRIES_PER_REPLICA = 60


async def test_replicas_share_one_log_and_never_share_an_index(postgres_url: str,
                                                             tmp_path: Path) -> None:
    config = config_for(postgres_url, key_dir=str(tmp_path / "keys"))
    stores = [PostgresStore(postgres_url) for _ in range(REPLICAS)]
    logs: list[AuditLog] = []
    for store in stores:
        await store.open()
        log = AuditLog(config, store.audit.storage, committer=store.audit, interval=0.05)
        await log.open()
        logs.append(log)
    try:
        rng = random.Random(7)
        pseudonyms = Pseudonyms(b"q" * 32)
        sealed = [[random_entry(rng, pseudonyms, r * 1000 + n) for n in range(ENTRIES_PER_REPLICA)]
                  for r in range(REPLICAS)]
        # writes (awaited) and reads (queued) from every replica at once
        indices = await asyncio.gather(*(
            log.append(s) if n % 2 else log.submit(s)
            for log, batch in zip(logs, sealed, strict=True) for n, s in enumerate(batch)))
        total = REPLICAS * ENTRIES_PER_REPLICA
        assert sorted(indices) == list(range(total))
        note = await logs[0].checkpoint()
        storage = logs[1].storage
        head = await asyncio.to_thread(storage.head)
        rows = await asyncio.to_thread(storage.entries, 0, head.size)
        assert head.size == total and [i for i, _ in rows] == list(range(total))
        assert head.root() == root([leaf_hash(e) for _, e in rows])
        requests = {decode(e)["request"] for _, e in rows}
        assert len(requests) == total  # nothing lost, nothing twice
        export = await logs[2].export(0)
        report = verify_export(export, logs[2].verifier_keys())
        assert report.ok and note.startswith(config.origin), report.text()
        # erasure: the details go, the leaves and the tree stay
        subject = decode(rows[0][1])["principal"]["subject"]
        assert await asyncio.to_thread(storage.details, 0)
        assert await logs[0].erase_pseudonym(subject) >= 1
        assert await asyncio.to_thread(storage.details, 0) == []
        assert (await asyncio.to_thread(storage.head)).root() == head.root()
    finally:
        for log in logs:
            await log.close()
        for store in stores:
            await store.close()


async def test_broker_on_postgresql_keeps_its_log_in_the_database(postgres_url: str,
                                                                 tmp_path: Path) -> None:
    settings = Settings(store=postgres_url, log_level="WARNING",
                        audit_key_dir=str(tmp_path / "keys"))
    server = TestServer(create_app(settings), host="127.0.0.1")
    await server.start_server()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
            for n in range(4):
                r = await http.post("/ngsi-ld/v1/entities",
                                    json={"id": f"urn:ngsi-ld:Lamp:{n}", "type": "Lamp"})
                assert r.status_code == 201
            assert (await http.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Lamp:1")).status_code == 200
            keys = parse_verifier_keys((await http.get("/cetate/v1/audit/public-key")).text)
            await http.get("/cetate/v1/audit/checkpoint")
            export = await http.get("/cetate/v1/audit/export")
            report = verify_export(export.content, keys)
            assert report.ok, report.text()
            assert report.entries >= 5
    finally:
        await server.close()
    store = PostgresStore(postgres_url)
    await store.open()
    try:
        count = await store.read_sql("SELECT sum(count) FROM audit_bundles")
        assert count[0][0] >= 5  # in PostgreSQL, where every replica reads it
    finally:
        await store.close()


async def test_leaves_of_the_earlier_version_move_into_bundles(postgres_url: str) -> None:
    """Migration 0004_audit_bundles on a log that version 0003 wrote: every leaf, its entity
    ids and its kept details survive, and the tree over them is the same."""
    import asyncpg

    from broker.store.migrate import available
    from broker.store.postgres_audit import PostgresAuditStorage
    from security.audit.log import EntryQuery
    from security.audit.merkle import range_hash
    from tests.security.audit.conftest import EXTRA_ENTITY, old_leaves

    sql = {m.name: m.sql for m in available("postgresql")}
    old = sql["0003_audit.sql"]
    leaves_ddl = old[old.index("CREATE TABLE audit_leaves"):old.index("CREATE TABLE audit_nodes")]
    rows = old_leaves()
    entries = [row[1] for row in rows]
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute("DROP TABLE audit_bundles")
        await conn.execute(leaves_ddl)
        await conn.executemany(
            "INSERT INTO audit_leaves VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)", rows)
        await conn.executemany("INSERT INTO audit_entities VALUES ($1, $2)",
                               [(EXTRA_ENTITY, row[0]) for row in rows])
        await conn.execute(sql["0004_audit_bundles.sql"])
    finally:
        await conn.close()
    storage = PostgresAuditStorage(postgres_url)
    try:
        assert await asyncio.to_thread(storage.entries, 0, 3) == list(enumerate(entries))
        kept = await asyncio.to_thread(storage.details, 1)
        assert [d.value for d in kept] == ["user-1"]
        extra = await asyncio.to_thread(storage.query, EntryQuery(entity=EXTRA_ENTITY))
        assert [i for i, _ in extra] == [0, 1, 2]
        two = await asyncio.to_thread(storage.query, EntryQuery(entity="urn:ngsi-ld:X:2"))
        assert [i for i, _ in two] == [2]
        tree = await asyncio.to_thread(range_hash, 0, 3, storage.perfect)
        assert tree == root([leaf_hash(e) for e in entries])
    finally:
        await asyncio.to_thread(storage.close)
