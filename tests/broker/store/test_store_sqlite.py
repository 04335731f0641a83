"""SQLite specifics: derived rows follow the document, migrations are versioned."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from broker.store.migrate import MigrationError, available, migrate_sqlite
from broker.store.open import open_store
from broker.store.rows import attribute_rows, geometry_bbox
from broker.store.sqlite import SQLiteStore
from tests.broker.store.test_store_contract import D, delete, increment, lamp, put


async def test_derived_rows_follow_the_document(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "s.db"))
    await store.open()
    await store.apply("", "urn:ngsi-ld:Streetlight:1", put(lamp(1)))
    await store.apply("", "urn:ngsi-ld:Streetlight:1", increment)
    peek = sqlite3.connect(tmp_path / "s.db")
    assert peek.execute("SELECT value_num FROM attrs WHERE name = ?",
                        (D + "count",)).fetchall() == [(2.0,)]
    assert peek.execute("SELECT type FROM entity_types").fetchall() == [(D + "Streetlight",)]
    assert peek.execute("SELECT min_x, min_y FROM geo_boxes").fetchone() == pytest.approx(
        (23.79, 44.31), abs=1e-4)
    await store.apply("", "urn:ngsi-ld:Streetlight:1", delete)
    for table in ("entities", "entity_types", "attrs", "geo_index", "geo_boxes"):
        assert peek.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), table
    await store.close()


def test_migrations_idempotent_and_newer_refused(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    assert migrate_sqlite(conn) == [m.version for m in available("sqlite")]
    assert migrate_sqlite(conn) == []
    conn.execute("INSERT INTO schema_migrations VALUES (9999, 'future.sql', 'x')")
    with pytest.raises(MigrationError, match="newer"):
        migrate_sqlite(conn)


async def test_refuses_to_run_behind_without_migrations(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "n.db"), migrate=False)
    with pytest.raises(MigrationError, match="migrations"):
        await store.open()


def test_store_urls(tmp_path: Path) -> None:
    assert isinstance(open_store(f"sqlite:///{tmp_path}/a.db"), SQLiteStore)
    assert open_store("sqlite:///data/x.db").path == "data/x.db"  # type: ignore[attr-defined]
    for bad in ("mysql://x", "sqlite://", "nothing"):
        with pytest.raises(ValueError, match="sqlite"):
            open_store(bad)


def test_rows_pure() -> None:
    rows = attribute_rows(lamp(1, value="on"))
    assert next((r.name, r.kind, r.value_text) for r in rows) == (D + "count", "Property", "on")
    assert geometry_bbox({"type": "Polygon", "coordinates": [[[0, 0], [2, 0], [2, 3], [0, 0]]]}
                         ) == (0, 2, 0, 3)
    assert geometry_bbox({"type": "Point"}) is None
