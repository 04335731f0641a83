"""The audit tables the store's migrations make are the ones a log kept apart makes (its
schema is derived from the migrations: this checks the derivation), and leaves of an earlier
version survive the move into bundles, on both the store's migration and a kept-apart file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from broker.store.migrate import available
from security.audit.log import EntryQuery
from security.audit.merkle import leaf_hash, range_hash, root
from security.audit.sqlite_log import SCHEMA, SQLiteAuditStorage
from tests.security.audit.conftest import EXTRA_ENTITY, old_leaves

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
    """A log file as version 0004 wrote it: three leaves, each naming two entities."""
    db = sqlite3.connect(path)
    db.executescript(_sql(MIGRATIONS[0]))
    rows = old_leaves()
    db.executemany("INSERT INTO audit_leaves VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    db.executemany("INSERT INTO audit_entities VALUES (?, ?)",
                   [(EXTRA_ENTITY, row[0]) for row in rows])
    db.execute("UPDATE audit_tree SET size = 3")  # the frontier is not what this checks
    db.commit()
    db.close()
    return [row[1] for row in rows]


def test_an_old_kept_apart_file_is_upgraded_without_losing_an_entry(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    entries = _old_log(path)
    storage = SQLiteAuditStorage(path)
    storage.open()
    try:
        assert storage.entries(0, 3) == list(enumerate(entries))
        assert [d.value for d in storage.details(1)] == ["user-1"]
        assert [i for i, _ in storage.query(EntryQuery(entity=EXTRA_ENTITY))] == \
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
