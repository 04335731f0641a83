"""The embedded SQLite engine: WAL, one writer thread with group commit, a pool of readers.

Durability: synchronous=FULL by default, so a commit is on disk before any caller is answered.
Throughput: the writer drains every job waiting in its queue into one transaction, each job in
its own SAVEPOINT (one failing rolls back only itself), and pays one fsync for the group.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import queue
import re
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson

from broker.query.geo import GeoQuery, geo_matches
from broker.store.migrate import migrate_sqlite
from broker.store.protocol import Entity, EntityQuery, Mutation, QueryResult, StoredContext
from broker.store.rows import attribute_rows, geo_boxes
from broker.store.sqlite_query import compile_where

log = logging.getLogger("cetate.store")
T = TypeVar("T")

GROUP_COMMIT_MAX = 256  # jobs per transaction; bounds the latency one group adds to the next
IN_LIST_CHUNK = 500  # under SQLite's default limit of 999 host parameters (pre-3.32)
SYNCHRONOUS_MODES = frozenset({"OFF", "NORMAL", "FULL", "EXTRA"})


class StoreClosed(RuntimeError):
    pass


@dataclass
class _Job:
    run: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any] | None
    loop: asyncio.AbstractEventLoop


_STOP = object()


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


class SQLiteStore:
    def __init__(self, path: str, *, synchronous: str = "FULL", migrate: bool = True,
                 readers: int = 4) -> None:
        if synchronous.upper() not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {sorted(SYNCHRONOUS_MODES)}")
        self.path = path
        self.synchronous = synchronous.upper()
        self.migrate = migrate
        self.readers = readers
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        self._known_tenants: set[str] = set()

    # -- connections -------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                               timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only=1")
            conn.create_function("regexp", 2, _regexp, deterministic=True)
            self._local.conn = conn
            with self._lock:
                self._reader_conns.append(conn)
        return conn

    async def open(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        writer = self._connect()
        await asyncio.to_thread(migrate_sqlite, writer, apply=self.migrate)
        self._pool = ThreadPoolExecutor(self.readers, thread_name_prefix="cetate-sqlite-read")
        self._writer = threading.Thread(target=self._write_loop, args=(writer,),
                                        name="cetate-sqlite-write", daemon=True)
        self._writer.start()

    async def close(self) -> None:
        if self._closed or self._writer is None:
            self._closed = True
            return
        self._closed = True
        self._jobs.put(_STOP)
        await asyncio.to_thread(self._writer.join)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        with self._lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()

    async def healthy(self) -> bool:
        try:
            return bool(await self._read(lambda c: c.execute("SELECT 1").fetchone()[0] == 1))
        except Exception:
            return False

    # -- the writer --------------------------------------------------------------------------
    def _write_loop(self, conn: sqlite3.Connection) -> None:
        stopping = False
        while not stopping:
            first = self._jobs.get()
            if first is _STOP:
                break
            group = [first]
            while len(group) < GROUP_COMMIT_MAX:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is _STOP:
                    stopping = True
                    break
                group.append(job)
            self._commit_group(conn, group)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()

    def _commit_group(self, conn: sqlite3.Connection, group: list[_Job]) -> None:
        outcomes: list[tuple[_Job, bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in group:
                conn.execute("SAVEPOINT job")
                try:
                    result = job.run(conn)
                except BaseException as exc:  # the job's own failure: undo only the job
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    outcomes.append((job, False, exc))
                else:
                    conn.execute("RELEASE job")
                    outcomes.append((job, True, result))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            log.exception("group commit failed")
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            failure = RuntimeError(f"The store could not commit: {exc}")
            outcomes = [(job, False, failure) for job in group]
        for job, ok, value in outcomes:
            if job.future is not None:
                job.loop.call_soon_threadsafe(_settle, job.future, ok, value)

    def _submit(self, run: Callable[[sqlite3.Connection], Any], *,
                wait: bool = True) -> asyncio.Future[Any] | None:
        if self._closed or self._writer is None:
            raise StoreClosed("The store is closed")
        loop = asyncio.get_running_loop()
        future = loop.create_future() if wait else None
        self._jobs.put(_Job(run, future, loop))
        return future

    async def _write(self, run: Callable[[sqlite3.Connection], T]) -> T:
        future = self._submit(run)
        assert future is not None
        return await future

    async def _read(self, run: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed or self._pool is None:
            raise StoreClosed("The store is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: run(self._reader()))

    # -- entities ----------------------------------------------------------------------------
    async def tenant_exists(self, tenant: str) -> bool:
        # Tenants are never removed, so a tenant seen once needs no more reads.
        if tenant == "" or tenant in self._known_tenants:
            return True
        found = await self._read(lambda c: c.execute(
            "SELECT 1 FROM tenants WHERE name = ?", (tenant,)).fetchone() is not None)
        if found:
            self._known_tenants.add(tenant)
        return found

    async def get_entity(self, tenant: str, entity_id: str) -> Entity | None:
        def run(c: sqlite3.Connection) -> Entity | None:
            row = c.execute("SELECT doc FROM entities WHERE tenant = ? AND id = ?",
                            (tenant, entity_id)).fetchone()
            return orjson.loads(row[0]) if row else None
        return await self._read(run)

    async def get_entities(self, tenant: str, entity_ids: Sequence[str]) -> list[Entity]:
        ids = list(dict.fromkeys(entity_ids))

        def run(c: sqlite3.Connection) -> list[Entity]:
            found = []
            for start in range(0, len(ids), IN_LIST_CHUNK):
                chunk = ids[start:start + IN_LIST_CHUNK]
                marks = ",".join("?" * len(chunk))
                found += [orjson.loads(r[0]) for r in c.execute(
                    f"SELECT doc FROM entities WHERE tenant = ? AND id IN ({marks})",
                    (tenant, *chunk))]
            return found
        return await self._read(run)

    async def apply(self, tenant: str, entity_id: str, mutation: Mutation[T]) -> T:
        return await self._write(lambda c: _apply(c, tenant, entity_id, mutation))

    async def apply_many(self, tenant: str,
                         changes: Sequence[tuple[str, Mutation[Any]]]) -> list[Any]:
        futures: list[asyncio.Future[Any]] = []
        for entity_id, mutation in changes:
            future = self._submit(
                lambda c, e=entity_id, m=mutation: _apply(c, tenant, e, m))  # type: ignore[misc]
            assert future is not None
            futures.append(future)
        return list(await asyncio.gather(*futures, return_exceptions=True))

    async def query_entities(self, tenant: str, query: EntityQuery) -> QueryResult:
        compiled = compile_where(tenant, query)

        def run(c: sqlite3.Connection) -> QueryResult:
            sql = f"SELECT e.doc FROM entities e WHERE {compiled.where} ORDER BY e.rid"
            if compiled.exact_geo:
                # The R*Tree gave candidates by bounding box; shapely decides, then we page.
                matches = [doc for doc in (orjson.loads(r[0]) for r in c.execute(
                    sql, compiled.params)) if _geo_hit(query.geo, doc)]
                page = matches[query.offset:query.offset + query.limit]
                return QueryResult(page, len(matches) if query.count else None)
            rows = c.execute(sql + " LIMIT ? OFFSET ?",
                             (*compiled.params, query.limit, query.offset))
            entities = [orjson.loads(r[0]) for r in rows]
            total = None
            if query.count:
                total = c.execute(f"SELECT count(*) FROM entities e WHERE {compiled.where}",
                                  compiled.params).fetchone()[0]
            return QueryResult(entities, total)
        return await self._read(run)

    # -- contexts ----------------------------------------------------------------------------
    async def put_context(self, ctx: StoredContext) -> None:
        await self._write(lambda c: c.execute(
            "INSERT OR REPLACE INTO contexts VALUES (?, ?, ?, ?, ?, ?, ?)",
            (ctx.id, ctx.url, ctx.kind, orjson.dumps(ctx.body).decode(), ctx.created_at,
             ctx.last_used_at, ctx.number_of_hits)))

    async def get_context(self, context_id: str) -> StoredContext | None:
        def run(c: sqlite3.Connection) -> StoredContext | None:
            row = c.execute("SELECT * FROM contexts WHERE id = ? UNION ALL "
                            "SELECT * FROM contexts WHERE url = ? LIMIT 1",
                            (context_id, context_id)).fetchone()
            return _context(row) if row else None
        return await self._read(run)

    async def list_contexts(self, kind: str | None = None) -> list[StoredContext]:
        def run(c: sqlite3.Connection) -> list[StoredContext]:
            if kind is None:
                rows = c.execute("SELECT * FROM contexts ORDER BY created_at, id")
            else:
                rows = c.execute("SELECT * FROM contexts WHERE kind = ? ORDER BY created_at, id",
                                 (kind,))
            return [_context(r) for r in rows]
        return await self._read(run)

    async def delete_context(self, context_id: str) -> bool:
        return await self._write(lambda c: c.execute(
            "DELETE FROM contexts WHERE id = ?", (context_id,)).rowcount > 0)

    async def touch_context(self, context_id: str, when: str) -> None:
        # Usage statistics are best effort: not worth making a request wait for an fsync.
        self._submit(lambda c: c.execute(
            "UPDATE contexts SET last_used_at = ?, hits = hits + 1 WHERE id = ?",
            (when, context_id)), wait=False)


@functools.lru_cache(maxsize=256)
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(text)


def _regexp(pattern: str, value: str | None) -> bool:
    return value is not None and _pattern(pattern).search(value) is not None


def _geo_hit(query: GeoQuery, entity: Entity) -> bool:
    return any(inst.get("type") == "GeoProperty" and geo_matches(query, inst.get("value"))
               for inst in entity["attrs"].get(query.geoproperty, ()))


def _context(row: Sequence[Any]) -> StoredContext:
    return StoredContext(id=row[0], url=row[1], kind=row[2], body=orjson.loads(row[3]),
                         created_at=row[4], last_used_at=row[5], number_of_hits=row[6])


def _apply(conn: sqlite3.Connection, tenant: str, entity_id: str, mutation: Mutation[T]) -> T:
    """One write job: read, mutate (pure), write the document and its derived rows."""
    row = conn.execute("SELECT rid, doc FROM entities WHERE tenant = ? AND id = ?",
                       (tenant, entity_id)).fetchone()
    current = orjson.loads(row[1]) if row else None
    new, result = mutation(current)
    if row is not None:
        conn.execute("DELETE FROM geo_boxes WHERE gid IN (SELECT gid FROM geo_index "
                     "WHERE rid = ?)", (row[0],))
    if new is None:
        if row is not None:
            conn.execute("DELETE FROM entities WHERE rid = ?", (row[0],))
        return result
    doc = orjson.dumps(new).decode()
    if row is None:
        if tenant:
            conn.execute("INSERT OR IGNORE INTO tenants VALUES (?, ?)", (tenant, new["createdAt"]))
        rid = conn.execute(
            "INSERT INTO entities (tenant, id, created_at, modified_at, doc) "
            "VALUES (?, ?, ?, ?, ?)",
            (tenant, entity_id, new["createdAt"], new["modifiedAt"], doc)).lastrowid
    else:
        rid = row[0]
        conn.execute("UPDATE entities SET created_at = ?, modified_at = ?, doc = ? "
                     "WHERE rid = ?", (new["createdAt"], new["modifiedAt"], doc, rid))
        for table in ("entity_types", "attrs", "geo_index"):
            conn.execute(f"DELETE FROM {table} WHERE rid = ?", (rid,))
    conn.executemany("INSERT INTO entity_types VALUES (?, ?, ?)",
                     [(rid, tenant, t) for t in new["type"]])
    conn.executemany(
        "INSERT INTO attrs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(rid, tenant, r.name, r.dataset_id, r.kind, r.value_num, r.value_text, r.value_bool,
          r.object, r.observed_at, r.value_json) for r in attribute_rows(new)])
    for box in geo_boxes(new):
        gid = conn.execute("INSERT INTO geo_index (rid, tenant, name, dataset_id) "
                           "VALUES (?, ?, ?, ?)",
                           (rid, tenant, box.name, box.dataset_id)).lastrowid
        conn.execute("INSERT INTO geo_boxes VALUES (?, ?, ?, ?, ?)",
                     (gid, box.min_x, box.max_x, box.min_y, box.max_y))
    return result
