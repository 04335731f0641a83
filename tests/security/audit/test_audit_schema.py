"""The audit tables the store's migration makes are the ones a log kept apart makes (its
idempotent form is derived from the migration: this checks the derivation)."""

from __future__ import annotations

import sqlite3

from broker.store.migrate import available
from security.audit.sqlite_log import SCHEMA


def _tables(script: str) -> list[tuple[str, str]]:
    db = sqlite3.connect(":memory:")
    db.executescript(script)
    rows = db.execute("SELECT name, sql FROM sqlite_master WHERE name LIKE 'audit%' "
                      "ORDER BY name").fetchall()
    state = db.execute("SELECT * FROM audit_tree").fetchall()
    db.close()
    return [(name, " ".join(sql.replace(" IF NOT EXISTS", "").split())) for name, sql in rows] \
        + [("audit_tree rows", repr(state))]


def test_migration_0004_makes_the_audit_schema() -> None:
    (migration,) = [m for m in available("sqlite") if m.name == "0004_audit.sql"]
    assert _tables(migration.sql) == _tables(SCHEMA)
