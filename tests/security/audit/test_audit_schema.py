"""The audit tables the store's migrations make are the ones a log kept apart makes (its
schema is derived from the migrations: this checks the derivation), and leaves of an earlier
version survive the move into bundles, on both the store's migration and a kept-apart file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson

from broker.store.migrate import available
from security.audit.entry import AuditRecord, Principal, Pseudonyms, seal
from security.audit.log import EntryQuery
from security.audit.merkle import leaf_hash, range_hash, root
from security.audit.sqlite_log import SCHEMA, SQLiteAuditStorage

MIGRATIONS = ("0004_audit.sql", "0005_audit_bundles.sql")


def _sql(name: str) -> str:
    (migration,) = [m for m in available("sqlite") if m.name == name]
    return migration.sql


def _tables(script: str) -> list[tuple[str, str]]:
    db = sqlite3.connect(":memory:")
    db.executescript(script)
    rows = db.execute("SELECT name, sql FROM sqlite_master WHERE name LIKE 'audit%' "
                      "ORDER BY name").fetchall()
    state = db.execute("SELECT * FROM audit_tree").fetchall()
    db.close()
    return [(name, " ".join(sql.split())) for name, sql in rows] + [("audit_tree rows",
                                                                     repr(state))]


def test_the_migrations_make_the_kept_apart_schema() -> None:
    assert _tables("".join(_sql(n) for n in MIGRATIONS)) == _tables(SCHEMA)


def _old_log(path: Path) -> list[bytes]:
    """A log file as version 0004 wrote it: three leaves, one naming two entities."""
    db = sqlite3.connect(path)
    db.executescript(_sql(MIGRATIONS[0]))
    pseudonyms = Pseudonyms(b"k" * 32)
    entries = []
    for i in range(3):
        record = AuditRecord(action="entity.retrieve", tenant="t",
                             principal=Principal(f"user-{i}"))
        record.note(entity_ids=[f"urn:ngsi-ld:X:{i}", "urn:ngsi-ld:X:extra"], types=["X"])
        sealed = seal(record, time=f"2026-12-01T10:00:0{i}.000000Z", request_id=f"r{i}",
                      status=200, pseudonyms=pseudonyms)
        kept = orjson.dumps([[d.name, d.salt.hex(), d.value] for d in sealed.details])
        f = sealed.facets
        db.execute("INSERT INTO audit_leaves VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                   (i, sealed.entry, leaf_hash(sealed.entry), f[0], f[1], f[2], f[3], f[4],
                    f[5], f[6], f"urn:ngsi-ld:X:{i}", kept))
        db.execute("INSERT INTO audit_entities VALUES (?, ?)", ("urn:ngsi-ld:X:extra", i))
        entries.append(sealed.entry)
    db.execute("UPDATE audit_tree SET size = 3")  # the frontier is not what this checks
    db.commit()
    db.close()
    return entries


def test_an_old_kept_apart_file_is_upgraded_without_losing_an_entry(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    entries = _old_log(path)
    storage = SQLiteAuditStorage(path)
    storage.open()
    try:
        assert storage.entries(0, 3) == list(enumerate(entries))
        assert [d.value for d in storage.details(1)] == ["user-1"]
        assert [i for i, _ in storage.query(EntryQuery(entity="urn:ngsi-ld:X:extra"))] == \
            [0, 1, 2]
        assert [i for i, _ in storage.query(EntryQuery(entity="urn:ngsi-ld:X:2"))] == [2]
        assert storage.perfect(0, 2) == leaf_hash(entries[2])
    finally:
        storage.close()
    storage.open()  # opening again changes nothing
    storage.close()


def test_the_upgraded_leaves_make_the_same_tree(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    entries = _old_log(path)
    storage = SQLiteAuditStorage(path)
    storage.open()
    try:
        assert range_hash(0, 3, storage.perfect) == root([leaf_hash(e) for e in entries])
    finally:
        storage.close()
