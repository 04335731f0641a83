"""SQLite specifics: group commit, savepoints, commit failure, migrations, URLs, the WAL."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from broker.store.migrate import (
    MigrationError,
    available,
    migrate_sqlite,
    select_sql,
    split_statements,
    sqlite_features,
)
from broker.store.open import SCHEMES, open_store
from broker.store.protocol import Entity, StoredContext
from broker.store.sqlite import CommitFailed, SQLiteStore, StoreClosed, write_entity
from tests.broker.store.test_store_contract import (
    LOCATION,
    T0,
    T1,
    count_of,
    increment,
    lamp,
    lamp_id,
    put,
)

LATEST = available("sqlite")[-1].version


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(str(tmp_path / "s.db"))
    await s.open()
    yield s
    await s.close()


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


# -- the writer ------------------------------------------------------------------------------

async def test_concurrent_writes_share_commits(store: SQLiteStore) -> None:
    results = await asyncio.gather(*(store.apply("", lamp_id(n), put(lamp(n)))
                                     for n in range(300)))
    assert results == ["created"] * 300
    assert store.jobs_committed == 300
    assert store.groups_committed < 300 // 2  # grouped, not one fsync per write


async def test_apply_many_is_one_group(store: SQLiteStore) -> None:
    await store.apply_many("", [(lamp_id(n), put(lamp(n))) for n in range(50)])
    assert store.groups_committed == 1


async def test_a_job_failing_in_its_write_rolls_back_only_itself(store: SQLiteStore) -> None:
    # The mutation succeeds but its result breaks a constraint half-way through the write
    # (after the tenant and the entity rows): the savepoint must take all of it back.
    broken = {**lamp(2), "type": [None]}
    results = await store.apply_many("lugoj", [(lamp_id(1), put(lamp(1))),
                                               (lamp_id(2), put(broken)),
                                               (lamp_id(3), put(lamp(3)))])
    assert results[0] == results[2] == "created"
    assert isinstance(results[1], sqlite3.IntegrityError)
    assert await store.read_sql("SELECT id FROM entities ORDER BY id") == [
        (lamp_id(1),), (lamp_id(3),)]
    with pytest.raises(sqlite3.IntegrityError):
        await store.apply("arad", lamp_id(2), put(broken))
    assert not await store.tenant_exists("arad")
    assert await store.read_sql("SELECT count(*) FROM attrs WHERE tenant = 'arad'") == [(0,)]


async def test_a_failed_commit_fails_every_job_of_the_group(store: SQLiteStore) -> None:
    def orphan_row(c: sqlite3.Connection) -> None:
        # A deferred foreign key is checked at COMMIT only: the whole group's commit fails.
        c.execute("PRAGMA defer_foreign_keys = ON")
        c.execute("INSERT INTO attrs (rid, tenant, name, kind) VALUES (-1, '', 'x', 'Property')")

    def create(c: sqlite3.Connection) -> Any:
        return write_entity(c, "", lamp_id(1), put(lamp(1)))

    futures = store._submit([create, orphan_row])  # one batch: one group
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert all(isinstance(r, CommitFailed) for r in results), results
    assert await store.get_entity("", lamp_id(1)) is None
    assert await store.apply("", lamp_id(1), put(lamp(1))) == "created"  # the writer lives on


async def test_mutation_must_keep_the_entity_id(store: SQLiteStore) -> None:
    with pytest.raises(Exception, match="returned entity"):
        await store.apply("", lamp_id(1), put(lamp(2)))
    assert await store.read_sql("SELECT count(*) FROM entities") == [(0,)]


async def test_strange_exceptions_reach_the_caller(store: SQLiteStore) -> None:
    def stop(_: Entity | None) -> tuple[Entity, None]:
        raise StopIteration
    with pytest.raises(RuntimeError, match="StopIteration"):
        await store.apply("", lamp_id(1), stop)
    assert await store.healthy()


async def test_a_base_exception_fails_its_job_only(store: SQLiteStore) -> None:
    def bail(_: Entity | None) -> tuple[Entity, None]:
        raise SystemExit(3)
    results = await store.apply_many("", [(lamp_id(1), put(lamp(1))), (lamp_id(2), bail)])
    assert results[0] == "created"
    assert isinstance(results[1], RuntimeError) and "SystemExit" in str(results[1])
    assert await store.apply("", lamp_id(3), put(lamp(3))) == "created"  # the writer lives on


async def test_touch_context_after_close_is_silent(tmp_path: Path) -> None:
    s = SQLiteStore(str(tmp_path / "t.db"))
    await s.open()
    await s.close()
    await s.touch_context("urn:ngsi-ld:jsonldContext:1", T0)  # best effort: no error


async def test_touch_context_counts_uses(store: SQLiteStore) -> None:
    ctx = StoredContext(id="urn:ngsi-ld:jsonldContext:1", url="https://ex.org/c.jsonld",
                        kind="Cached", body={}, created_at=T0)
    await store.put_context(ctx)
    await store.touch_context(ctx.id, T0)
    await store.touch_context(ctx.id, T1)
    await store.apply("", lamp_id(1), put(lamp(1)))  # the writer is FIFO: touches are in
    got = await store.get_context(ctx.id)
    assert got is not None and (got.last_used_at, got.number_of_hits) == (T1, 2)


async def test_readers_cannot_write(store: SQLiteStore) -> None:
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        await store.read_sql("DELETE FROM entities")


async def test_regexp_for_the_query_engine(store: SQLiteStore) -> None:
    await store.apply("", lamp_id(12), put(lamp(12)))
    assert await store.read_sql("SELECT id FROM entities WHERE id REGEXP ?",
                                [r":1\d$"]) == [(lamp_id(12),)]


# -- durability and lifecycle ----------------------------------------------------------------

async def test_pragmas(store: SQLiteStore) -> None:
    assert await store.read_sql("PRAGMA journal_mode") == [("wal",)]
    assert await store.read_sql("PRAGMA synchronous") == [(2,)]  # FULL
    assert await store.read_sql("PRAGMA foreign_keys") == [(1,)]
    assert await store.read_sql("PRAGMA busy_timeout") == [(30000,)]


async def test_close_checkpoints_the_wal(tmp_path: Path) -> None:
    s = SQLiteStore(str(tmp_path / "w.db"))
    await s.open()
    await s.apply_many("", [(lamp_id(n), put(lamp(n))) for n in range(200)])
    wal = tmp_path / "w.db-wal"
    assert wal.exists() and wal.stat().st_size > 0
    await s.close()
    assert not wal.exists() or wal.stat().st_size == 0
    with raw(tmp_path / "w.db") as conn:  # everything is in the main file now
        assert conn.execute("SELECT count(*) FROM entities").fetchone() == (200,)


async def test_close_before_open_and_open_after_close(tmp_path: Path) -> None:
    s = SQLiteStore(str(tmp_path / "c.db"))
    await s.close()
    with pytest.raises(StoreClosed):
        await s.get_entity("", lamp_id(1))
    with pytest.raises(RuntimeError):
        await s.open()


async def test_open_creates_parent_directories(tmp_path: Path) -> None:
    s = open_store(f"sqlite:///{tmp_path}/a/b/c.db")
    await s.open()
    await s.close()
    assert (tmp_path / "a" / "b" / "c.db").exists()


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="synchronous"):
        SQLiteStore("x.db", synchronous="SOMETIMES")
    with pytest.raises(ValueError, match="readers"):
        SQLiteStore("x.db", readers=0)


def test_store_urls() -> None:
    relative = open_store("sqlite:///data/x.db", synchronous="normal")
    assert isinstance(relative, SQLiteStore)
    assert (relative.path, relative.synchronous) == ("data/x.db", "NORMAL")
    absolute = open_store("sqlite:////var/lib/cetate/x.db")
    assert isinstance(absolute, SQLiteStore) and absolute.path == "/var/lib/cetate/x.db"
    for memory in ("sqlite://:memory:", "sqlite:///:memory:", "sqlite://"):
        with pytest.raises(ValueError, match="file path"):
            open_store(memory)
    for bad in ("mysql://x", "nothing", "sqlite:x.db"):
        with pytest.raises(ValueError, match="supported schemes: sqlite://"):
            open_store(bad)
    assert "sqlite" in SCHEMES


# -- migrations ------------------------------------------------------------------------------

def test_migrations_idempotent_and_newer_refused(tmp_path: Path) -> None:
    conn = raw(tmp_path / "m.db")
    assert migrate_sqlite(conn) == [m.version for m in available("sqlite")]
    assert migrate_sqlite(conn) == []
    assert conn.execute("SELECT name FROM tenants").fetchall() == [("",)]
    conn.execute("INSERT INTO schema_migrations VALUES (9999, '9999_future.sql', 'x')")
    with pytest.raises(MigrationError, match="newer"):
        migrate_sqlite(conn)


async def test_store_refuses_a_newer_database(tmp_path: Path) -> None:
    path = tmp_path / "n.db"
    with raw(path) as conn:
        migrate_sqlite(conn)
        conn.execute("INSERT INTO schema_migrations VALUES (?, 'next.sql', 'x')", (LATEST + 1,))
    s = SQLiteStore(str(path))
    with pytest.raises(MigrationError, match=f"version {LATEST + 1} is newer"):
        await s.open()


async def test_without_migrations_refuses_to_run_behind(tmp_path: Path) -> None:
    s = SQLiteStore(str(tmp_path / "n.db"), migrate=False)
    with pytest.raises(MigrationError, match="migrations enabled"):
        await s.open()
    with raw(tmp_path / "n.db") as conn:
        migrate_sqlite(conn)
    s = SQLiteStore(str(tmp_path / "n.db"), migrate=False)  # up to date: fine
    await s.open()
    await s.close()


def test_concurrent_migrators_apply_once(tmp_path: Path) -> None:
    applied: list[list[int]] = []
    errors: list[BaseException] = []

    def migrate() -> None:
        conn = sqlite3.connect(tmp_path / "c.db", isolation_level=None, timeout=10,
                               check_same_thread=False)
        try:
            applied.append(migrate_sqlite(conn))
        except BaseException as exc:
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(v for versions in applied for v in versions) == [
        m.version for m in available("sqlite")]


def test_migrations_refuse_legacy_transaction_mode(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="isolation_level"):
        migrate_sqlite(sqlite3.connect(tmp_path / "l.db"))


def test_select_sql() -> None:
    sql = ("A;\n-- @if rtree\nB;\n  -- @if other\nC;\n-- @else\nD;\n-- @end\n"
           "-- @else\nE;\n-- @end\nF;")
    assert select_sql(sql, {"rtree"}) == "A;\nB;\nD;\nF;"
    assert select_sql(sql, {"rtree", "other"}) == "A;\nB;\nC;\nF;"
    assert select_sql(sql, set()) == "A;\nE;\nF;"
    assert select_sql("-- @iffy\nA;", set()) == "-- @iffy\nA;"  # not a directive
    for bad in ("-- @if rtree\nA;", "-- @end\n", "-- @else\n", "-- @if\n-- @end"):
        with pytest.raises(MigrationError):
            select_sql(bad, set())


def test_split_statements() -> None:
    script = ("-- a comment; with a semicolon\nCREATE TABLE t (x);\n"
              "CREATE TRIGGER g AFTER INSERT ON t BEGIN\n  UPDATE t SET x = 1;\nEND;\n"
              "INSERT INTO t VALUES ('a;b');\n")
    statements = split_statements(script)
    assert len(statements) == 3
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")
    assert statements[2] == "INSERT INTO t VALUES ('a;b');"


async def test_geo_boxes_without_rtree(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    with raw(path) as conn:
        migrate_sqlite(conn, features=frozenset())  # as on a SQLite built without R*Tree
        assert "USING rtree" not in conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'geo_boxes'").fetchone()[0]
    s = SQLiteStore(str(path))
    await s.open()
    try:
        await s.apply("", lamp_id(1), put(lamp(1)))
        await s.apply("", lamp_id(1), increment)
        box = await s.read_sql(
            "SELECT gi.name, gb.min_x, gb.max_x, gb.min_y, gb.max_y FROM geo_boxes gb "
            "JOIN geo_index gi ON gi.gid = gb.gid WHERE gb.max_x >= ? AND gb.min_x <= ? "
            "AND gb.max_y >= ? AND gb.min_y <= ?", [23, 24, 44, 45])
        assert box == [(LOCATION, 23.79, 23.79, 44.31, 44.31)]  # exact: REAL, not float32
        assert count_of(await s.get_entity("", lamp_id(1))) == 2
    finally:
        await s.close()


@pytest.mark.skipif("rtree" not in sqlite_features(), reason="this SQLite has no R*Tree")
def test_rtree_database_needs_rtree(tmp_path: Path) -> None:
    conn = raw(tmp_path / "r.db")
    migrate_sqlite(conn)
    assert "USING rtree" in conn.execute(
        "SELECT sql FROM sqlite_master WHERE name = 'geo_boxes'").fetchone()[0]
    with pytest.raises(MigrationError, match="rtree"):
        migrate_sqlite(conn, features=frozenset())


async def test_rtree_boxes_never_shrink(store: SQLiteStore) -> None:
    # R*Tree keeps 32-bit floats; it must round a box outwards so no match is cut.
    entity: dict[str, Any] = lamp(1)
    entity["attrs"][LOCATION][0]["value"] = {"type": "Point",
                                            "coordinates": [23.123456789, 44.987654321]}
    await store.apply("", lamp_id(1), put(entity))
    ((min_x, max_x, min_y, max_y),) = await store.read_sql(
        "SELECT min_x, max_x, min_y, max_y FROM geo_boxes")
    assert min_x <= 23.123456789 <= max_x and min_y <= 44.987654321 <= max_y
