"""The PostgreSQL/PostGIS engine: asyncpg, a pool of connections, one transaction per write.

Several broker processes (on several hosts) may share one database: every write locks the
entity's row (SELECT ... FOR UPDATE) in its own transaction, so concurrent mutations of one
entity run one after the other and none is lost; the caches here (known tenants) only ever hold
facts that cannot become false (a tenant is never removed), so they are safe to lose.

Durability is PostgreSQL's: a commit returns once the WAL is flushed (synchronous_commit), and
the server groups concurrent commits into one flush by itself. `apply_many` still runs its
changes in one transaction, each in a savepoint, so a batch costs one commit.

Subscriptions (postgres_subscriptions.py) and the notification outbox (postgres_outbox.py):
each apply / apply_many transaction hands what it wrote to the write observer before COMMIT and
inserts the outbox rows it plans, so an acknowledged write always has its notifications.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import orjson

from broker.errors import BadRequestData, InternalError
from broker.store import postgres_subscriptions as subs
from broker.store.postgres_audit import LOCK_KEEPING, Keeping, PostgresStoreAudit
from broker.store.postgres_migrate import migrate_postgres
from broker.store.postgres_outbox import PostgresOutbox
from broker.store.postgres_query import compile_where
from broker.store.protocol import (
    AttributeSummary,
    Entity,
    EntityQuery,
    EntityWrite,
    Mutation,
    QueryResult,
    StoredContext,
    SubscriptionEdit,
    SubscriptionRow,
    TypeSummary,
    WriteObserver,
)
from broker.store.rows import attribute_rows, geo_boxes
from broker.store.sql_compile import exact_geo_page
from broker.store.sqlite import CommitFailed, StoreClosed, StoreError
from security.audit.log import Announced

if TYPE_CHECKING:
    from broker.subscriptions.outbox import PlannedWrite

log = logging.getLogger("cetate.store")
T = TypeVar("T")

POOL_MIN = 2
POOL_MAX = 10  # per process; N replicas hold N x POOL_MAX connections (max_connections: 100)
CONNECT_TIMEOUT_S = 10.0
HEALTH_TIMEOUT_S = 3.0  # under the 5 s a load balancer's health check usually allows
# Retries of a transaction that lost a race PostgreSQL resolves by aborting it: two creators
# of one new entity (the unique key), or two batches locking rows in opposite orders.
WRITE_RETRIES = 5
_RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
# The engine runs ANALYZE itself after this many writes, then whenever the writes since the
# last one reach ANALYZE_GROWTH of the entities it counted then (see PostgresStore._wrote).
ANALYZE_AFTER_WRITES = 500
ANALYZE_GROWTH = 0.1
ANALYZE_LOCK_KEY = 0x636574617466  # pg_try_advisory_lock key, next to MIGRATION_LOCK_KEY
_QUERIED_TABLES = ("entities", "entity_types", "entity_scopes", "attrs", "geo_index")
# URL query options this engine reads itself (the rest go to asyncpg as server settings).
_URL_OPTIONS = {"pool_min": int, "pool_max": int}
_NOW_TEXT = "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"


class _CreateRaced(Exception):
    """Another transaction created the entity between our read and our insert: start over."""


def split_url(url: str) -> tuple[str, dict[str, int]]:
    """(the DSN for asyncpg, this engine's options) from a postgresql:// URL. Pure."""
    parts = urlsplit(url)
    options: dict[str, int] = {}
    rest = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _URL_OPTIONS:
            try:
                options[key] = _URL_OPTIONS[key](value)
            except ValueError:
                raise ValueError(f"Store URL option {key}={value!r} is not a number") from None
        else:
            rest.append((key, value))
    return urlunsplit(parts._replace(query=urlencode(rest))), options


class PostgresStore:
    """The Store protocol on PostgreSQL with PostGIS (broker/store/protocol.py)."""

    def __init__(self, dsn: str, *, migrate: bool = True, pool_min: int = POOL_MIN,
                 pool_max: int = POOL_MAX) -> None:
        if not 1 <= pool_min <= pool_max:
            raise ValueError("need 1 <= pool_min <= pool_max")
        self.dsn = dsn
        self.migrate = migrate
        self.pool_min, self.pool_max = pool_min, pool_max
        self._pool: asyncpg.Pool | None = None
        self._accepting = False
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing: asyncio.Task[None] | None = None
        self._known_tenants: set[str] = {""}
        self._background: set[asyncio.Task[Any]] = set()  # recorded uses of contexts
        self._writes_since_analyze = 0
        self._rows_at_analyze = 0.0
        self._analyzing: asyncio.Task[None] | None = None
        self._observer: WriteObserver | None = None
        self._outbox = PostgresOutbox(self._connection)
        self._audit = PostgresStoreAudit(dsn, self._connection, lambda: self._accepting)

    # -- lifecycle ---------------------------------------------------------------------------
    async def open(self) -> None:
        if self._pool is not None or self._closing is not None:
            raise RuntimeError("PostgresStore.open() is called once")
        conn = await asyncpg.connect(self.dsn, timeout=CONNECT_TIMEOUT_S)
        try:
            await migrate_postgres(conn, apply=self.migrate)
        finally:
            await conn.close()
        self._pool = await asyncpg.create_pool(self.dsn, min_size=self.pool_min,
                                               max_size=self.pool_max,
                                               timeout=CONNECT_TIMEOUT_S)
        self._accepting = True

    async def close(self) -> None:
        """Stop taking work, let in-flight calls finish, close the pool."""
        self._accepting = False
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._shut_down())
        await asyncio.shield(self._closing)

    async def _shut_down(self) -> None:
        if self._analyzing is not None:
            await asyncio.gather(self._analyzing, return_exceptions=True)
        await self._idle.wait()
        if self._pool is not None:
            await self._pool.close()

    async def healthy(self) -> bool:
        async def probe() -> bool:
            async with self._connection() as conn:
                return bool(await conn.fetchval("SELECT 1") == 1)
        try:
            return await asyncio.wait_for(probe(), HEALTH_TIMEOUT_S)
        except Exception:  # unreachable, closed, or too slow to count as serving
            return False

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection for one call; close() waits for every call that got one."""
        if not self._accepting or self._pool is None:
            raise StoreClosed("The store is closed")
        self._inflight += 1
        self._idle.clear()
        try:
            try:
                conn_cm = self._pool.acquire()
                conn = await conn_cm.__aenter__()
            except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
                raise StoreError(f"The store is unreachable: {exc}") from exc
            try:
                yield conn
            finally:
                await conn_cm.__aexit__(None, None, None)
        finally:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.set()

    async def _fetch(self, run: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        async with self._connection() as conn:
            return await run(conn)

    # -- engine-specific ---------------------------------------------------------------------
    async def read_sql(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement in a read-only transaction (tests and tools; $1-style params)."""
        async with self._connection() as conn, conn.transaction(readonly=True):
            return [tuple(r) for r in await conn.fetch(sql, *params)]

    def pool(self) -> asyncpg.Pool:
        """The connection pool, for components sharing the database (leases)."""
        if self._pool is None:
            raise StoreClosed("The store is not open")
        return self._pool

    # -- tenants -----------------------------------------------------------------------------
    async def tenant_exists(self, tenant: str) -> bool:
        if tenant in self._known_tenants:
            return True
        found = await self._fetch(lambda c: c.fetchval(
            "SELECT true FROM tenants WHERE name = $1", tenant))
        if found:
            self._known_tenants.add(tenant)
        return bool(found)

    # -- entities ----------------------------------------------------------------------------
    async def get_entity(self, tenant: str, entity_id: str) -> Entity | None:
        doc = await self._fetch(lambda c: c.fetchval(
            "SELECT doc FROM entities WHERE tenant = $1 AND id = $2", tenant, entity_id))
        return orjson.loads(doc) if doc is not None else None

    async def get_entities(self, tenant: str, entity_ids: Sequence[str]) -> list[Entity]:
        ids = list(dict.fromkeys(entity_ids))
        if not ids:
            return []
        rows = await self._fetch(lambda c: c.fetch(
            "SELECT doc FROM entities WHERE tenant = $1 AND id = ANY($2::text[])", tenant, ids))
        return [orjson.loads(r[0]) for r in rows]

    async def query_entities(self, tenant: str, query: EntityQuery) -> QueryResult:
        try:
            return await self._query(tenant, query)
        except asyncpg.InvalidRegularExpressionError as exc:
            # Python's re accepted it (the HTTP layer checks), PostgreSQL's ARE does not.
            raise BadRequestData(f"Unsupported regular expression: {exc}") from None

    async def _query(self, tenant: str, query: EntityQuery) -> QueryResult:
        compiled = compile_where(tenant, query)
        sql = f"SELECT e.doc FROM entities e WHERE {compiled.where} ORDER BY e.rid"
        params = list(compiled.params)
        async with self._snapshot() as conn:
            if compiled.exact_geo:
                # The GiST index gave candidates by bounding box; geo_eval decides, then we page.
                return exact_geo_page(
                    (orjson.loads(r[0]) for r in await conn.fetch(sql, *params)), query)
            n = len(params)
            rows = await conn.fetch(f"{sql} LIMIT ${n + 1} OFFSET ${n + 2}", *params,
                                    query.limit, query.offset)
            total = None
            if query.count:
                total = await conn.fetchval(
                    f"SELECT count(*) FROM entities e WHERE {compiled.where}", *params)
            return QueryResult([orjson.loads(r[0]) for r in rows], total)

    # -- discovery (clauses 5.7.5-5.7.10) ---------------------------------------------------
    async def entity_types(self, tenant: str) -> list[str]:
        return await self._fetch(lambda c: _column(c, _DISTINCT_TYPES, tenant))

    async def describe_types(self, tenant: str,
                             types: Sequence[str] | None = None) -> list[TypeSummary]:
        async with self._snapshot() as c:
            wanted = sorted(set(types)) if types is not None else await _column(
                c, _DISTINCT_TYPES, tenant)
            found = []
            for type_iri in wanted:
                count = await c.fetchval("SELECT count(*) FROM entity_types WHERE tenant = $1 "
                                         "AND type = $2", tenant, type_iri)
                if count:
                    rows = await c.fetch(_TYPE_ATTRIBUTES, tenant, type_iri)
                    found.append(TypeSummary(type_iri, count, _summaries(rows)))
            return found

    async def attribute_names(self, tenant: str) -> list[str]:
        return await self._fetch(lambda c: _column(c, _DISTINCT_ATTRS, tenant))

    async def describe_attributes(self, tenant: str, names: Sequence[str] | None = None
                                  ) -> list[AttributeSummary]:
        async with self._snapshot() as c:
            wanted = sorted(set(names)) if names is not None else await _column(
                c, _DISTINCT_ATTRS, tenant)
            found = []
            for name in wanted:
                kinds = await c.fetch("SELECT kind, count(*) FROM attrs WHERE tenant = $1 AND "
                                      "depth = 0 AND name = $2 GROUP BY kind ORDER BY kind",
                                      tenant, name)
                if kinds:
                    types = [r[0] for r in await c.fetch(_ATTRIBUTE_TYPES, tenant, name)]
                    found.append(AttributeSummary(name, sum(r[1] for r in kinds),
                                                  tuple(r[0] for r in kinds), tuple(types)))
            return found

    @contextlib.asynccontextmanager
    async def _snapshot(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection in a read-only transaction: its statements see one commit."""
        async with self._connection() as conn, conn.transaction(readonly=True,
                                                                isolation="repeatable_read"):
            yield conn

    async def apply(self, tenant: str, entity_id: str, mutation: Mutation[T]) -> T:
        keeping = self._audit.keeping()  # inserted by the write's first statement
        async with self._connection() as conn:
            for attempt in range(WRITE_RETRIES):
                try:
                    async with conn.transaction():
                        written = self._collecting()
                        result = await self._write_entity(conn, tenant, entity_id, mutation,
                                                          written, keeping)
                        await self._observe(conn, written)
                        kept = await self._audit.keep(conn, keeping)
                    _committed(kept)
                    self._wrote(1)
                    return result
                except (_CreateRaced, *_RETRYABLE):
                    if attempt == WRITE_RETRIES - 1:
                        raise
            raise AssertionError("unreachable")

    async def apply_many(self, tenant: str,
                         changes: Sequence[tuple[str, Mutation[Any]]]) -> list[Any]:
        """One transaction for the batch. The fast path reads every entity in one statement,
        runs the mutations in order, and writes all documents and derived rows in a few
        statements; if the database refuses any of it, the batch runs again change by change,
        each in a savepoint, so only the failing change fails."""
        if not changes:
            return []
        async with self._connection() as conn:
            for attempt in range(WRITE_RETRIES):
                try:
                    async with conn.transaction():
                        # Two batches touching the same entities in different orders would
                        # deadlock on their row locks (PostgreSQL then aborts one after
                        # deadlock_timeout, 1 s): so first lock every id, present or not, in
                        # one order. Single writes hold one lock at a time, so no cycle remains.
                        await conn.execute(_LOCK_IDS, tenant, [c[0] for c in changes])
                        written = self._collecting()
                        try:
                            async with conn.transaction():
                                results = await self._write_batch(conn, tenant, changes,
                                                                  written)
                        except (_CreateRaced, asyncpg.PostgresError) as exc:
                            if isinstance(exc, _RETRYABLE):
                                raise
                            written = self._collecting()
                            results = [await self._write_in_savepoint(conn, tenant, entity_id,
                                                                      mutation, written)
                                       for entity_id, mutation in changes]
                        await self._observe(conn, written)
                        kept = await self._audit.keep(conn)
                    _committed(kept)
                    self._wrote(len(changes))
                    return results
                except CommitFailed as exc:
                    # The observer failed: the whole batch fails like a failed commit (as on
                    # SQLite), and the transaction was rolled back.
                    return [exc] * len(changes)
                except _RETRYABLE:
                    if attempt == WRITE_RETRIES - 1:
                        raise
            raise AssertionError("unreachable")

    def _wrote(self, count: int) -> None:
        """Count committed writes; past a threshold, refresh the planner's statistics.

        Autovacuum analyzes a table only after autovacuum_naptime (1 min) and a 10% change,
        and a table that grew from empty has no statistics until then: the planner then takes
        every subquery for one row and picks nested loops that cost seconds per query
        (measured with bench/engines.py: 20 queries/s instead of 120 on 2,000 entities).
        """
        self._writes_since_analyze += count
        due = max(ANALYZE_AFTER_WRITES, ANALYZE_GROWTH * self._rows_at_analyze)
        if self._writes_since_analyze >= due and self._analyzing is None and self._accepting:
            self._writes_since_analyze = 0
            self._analyzing = asyncio.ensure_future(self._analyze())

    async def _analyze(self) -> None:
        try:
            async with self._connection() as conn:
                # One replica at a time: the others' statistics are as fresh once it is done.
                if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", ANALYZE_LOCK_KEY):
                    return
                try:
                    await conn.execute(f"ANALYZE {', '.join(_QUERIED_TABLES)}")
                    self._rows_at_analyze = float(await conn.fetchval(
                        "SELECT greatest(reltuples, 0) FROM pg_class "
                        "WHERE oid = 'entities'::regclass"))
                finally:
                    await conn.execute("SELECT pg_advisory_unlock($1)", ANALYZE_LOCK_KEY)
        except Exception as exc:  # statistics are an optimisation: never fail a caller for them
            log.warning("refreshing planner statistics failed: %r", exc)
        finally:
            self._analyzing = None

    def _collecting(self) -> list[EntityWrite] | None:
        """Where a write transaction gathers its EntityWrites; None (nothing gathered, no cost)
        without an observer."""
        return [] if self._observer is not None else None

    async def _observe(self, conn: asyncpg.Connection,
                       written: list[EntityWrite] | None) -> None:
        """The observer's plan for what the transaction wrote, stored before COMMIT."""
        if written and self._observer is not None:
            await subs.observe(conn, self._observer, written)

    async def _write_batch(self, conn: asyncpg.Connection, tenant: str,
                           changes: Sequence[tuple[str, Mutation[Any]]],
                           written: list[EntityWrite] | None = None) -> list[Any]:
        ids = list(dict.fromkeys(c[0] for c in changes))
        stored = {r["id"]: (r["rid"], orjson.loads(r["doc"])) for r in await conn.fetch(
            "SELECT id, rid, doc FROM entities WHERE tenant = $1 AND id = ANY($2::text[]) "
            "FOR UPDATE", tenant, ids)}
        current: dict[str, Entity | None] = {i: stored[i][1] if i in stored else None
                                             for i in ids}
        touched: set[str] = set()
        results: list[Any] = []
        for entity_id, mutation in changes:
            before = current[entity_id]
            given = before
            if written is not None and before is not None:
                # A copy for the mutation: nothing guarantees it leaves its input untouched,
                # and `before` is also the `after` of this entity's previous change here.
                given = orjson.loads(orjson.dumps(before))
            try:
                new, result = mutation(given)
                if new is not None and new.get("id") != entity_id:
                    raise InternalError(f"A mutation of {entity_id} returned entity "
                                        f"{new.get('id')}")
            except Exception as exc:  # this change fails alone; nothing of it is written
                results.append(exc)
                continue
            if written is not None and (before is not None or new is not None):
                written.append(EntityWrite(tenant, before, new))
            current[entity_id] = new
            touched.add(entity_id)
            results.append(result)
        gone: list[int] = []
        kept: dict[int, Entity] = {}  # rid -> its new document
        born: dict[str, Entity] = {}  # id -> the document of an entity created here
        for i in ids:  # in the order of the changes: new rids keep creation order
            if i not in touched:
                continue
            doc = current[i]
            if i in stored:
                if doc is None:
                    gone.append(stored[i][0])
                else:
                    kept[stored[i][0]] = doc
            elif doc is not None:
                born[i] = doc
        if gone:
            await conn.execute("DELETE FROM entities WHERE rid = ANY($1::bigint[])", gone)
        derived = _Derived()
        if kept:
            docs = list(kept.values())
            await conn.execute(_REWRITE_MANY, list(kept), [d["createdAt"] for d in docs],
                               [d["modifiedAt"] for d in docs],
                               [orjson.dumps(d).decode() for d in docs])
            for rid, doc in kept.items():
                derived.add(rid, doc)
        if born:
            await self._ensure_tenant(conn, tenant)
            docs = list(born.values())
            rids = {r["id"]: r["rid"] for r in await conn.fetch(
                _INSERT_MANY, tenant, list(born), [d["createdAt"] for d in docs],
                [d["modifiedAt"] for d in docs], [orjson.dumps(d).decode() for d in docs])}
            if len(rids) != len(born):
                raise _CreateRaced("a single write created one of the batch's entities")
            for entity_id, doc in born.items():
                derived.add(rids[entity_id], doc)
        await derived.write(conn, tenant)
        return results

    async def _write_in_savepoint(self, conn: asyncpg.Connection, tenant: str, entity_id: str,
                                  mutation: Mutation[Any],
                                  written: list[EntityWrite] | None = None) -> Any:
        """One change of a batch: its own savepoint, its failure as its result."""
        for _ in range(WRITE_RETRIES):
            # Kept only if the savepoint holds: a change that fails owes no notification.
            mine: list[EntityWrite] | None = [] if written is not None else None
            try:
                async with conn.transaction():
                    result = await self._write_entity(conn, tenant, entity_id, mutation, mine)
                if written is not None and mine:
                    written.extend(mine)
                return result
            except _CreateRaced:
                continue
            except _RETRYABLE:
                raise
            except Exception as exc:
                return exc
        return StoreError(f"Could not create {entity_id}: kept racing with other writers")

    async def _ensure_tenant(self, conn: asyncpg.Connection, tenant: str) -> None:
        if tenant not in self._known_tenants:
            await conn.execute(f"INSERT INTO tenants VALUES ($1, {_NOW_TEXT}) "
                               "ON CONFLICT DO NOTHING", tenant)

    async def _write_entity(self, conn: asyncpg.Connection, tenant: str, entity_id: str,
                            mutation: Mutation[T], written: list[EntityWrite] | None = None,
                            keeping: Keeping | None = None) -> T:
        """Read the stored document under a row lock, run the pure mutation, write the result
        and rewrite its derived rows; inside the caller's transaction. The change goes to
        `written` (what the write observer plans notifications from); `keeping`'s audit facts
        are inserted by the locking statement (one round trip for both: a single write made
        six, the facts' own INSERT one of them)."""
        if keeping is not None:
            locked = await conn.fetchrow(LOCK_KEEPING, tenant, entity_id, *keeping.values)
            keeping.row = locked["kept"]  # this transaction's: set again on a retry
            row = locked if locked["rid"] is not None else None
        else:
            row = await conn.fetchrow("SELECT rid, doc FROM entities WHERE tenant = $1 AND "
                                      "id = $2 FOR UPDATE", tenant, entity_id)
        rid: int | None = row["rid"] if row else None
        new, result = mutation(orjson.loads(row["doc"]) if row else None)
        if written is not None and (row is not None or new is not None):
            # A fresh copy of `before`: nothing guarantees the mutation left its input untouched.
            written.append(EntityWrite(tenant, orjson.loads(row["doc"]) if row else None, new))
        if new is None:
            if rid is not None:
                await conn.execute("DELETE FROM entities WHERE rid = $1", rid)
            return result
        if new.get("id") != entity_id:
            raise InternalError(f"A mutation of {entity_id} returned entity {new.get('id')}")
        doc = orjson.dumps(new).decode()
        if rid is None:
            await self._ensure_tenant(conn, tenant)
            rid = await conn.fetchval(
                "INSERT INTO entities (tenant, id, created_at, modified_at, doc) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant, id) DO NOTHING RETURNING rid",
                tenant, entity_id, new["createdAt"], new["modifiedAt"], doc)
            if rid is None:
                raise _CreateRaced(entity_id)
        else:
            await conn.execute(_REWRITE_MANY, [rid], [new["createdAt"]], [new["modifiedAt"]],
                               [doc])
        derived = _Derived()
        derived.add(rid, new)
        await derived.write(conn, tenant)
        return result

    # -- contexts ----------------------------------------------------------------------------
    async def _settle_touches(self) -> None:
        """Let recorded uses land first, so a later write of the context is not undone by an
        earlier use (SQLite's one writer queue gives that order for free)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def put_context(self, ctx: StoredContext) -> None:
        await self._settle_touches()
        await self._fetch(lambda c: c.execute(
            f"INSERT INTO contexts ({_CONTEXT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) "
            "ON CONFLICT (id) DO UPDATE SET url = excluded.url, kind = excluded.kind, "
            "body = excluded.body, created_at = excluded.created_at, "
            "last_used_at = excluded.last_used_at, hits = excluded.hits",
            ctx.id, ctx.url, ctx.kind, orjson.dumps(ctx.body).decode(), ctx.created_at,
            ctx.last_used_at, ctx.number_of_hits))

    async def get_context(self, context_id: str) -> StoredContext | None:
        row = await self._fetch(lambda c: c.fetchrow(
            f"SELECT {_CONTEXT_COLUMNS} FROM contexts WHERE id = $1 OR url = $1 "
            "ORDER BY id <> $1, created_at LIMIT 1", context_id))
        return _context(row) if row else None

    async def list_contexts(self, kind: str | None = None) -> list[StoredContext]:
        rows = await self._fetch(lambda c: c.fetch(
            f"SELECT {_CONTEXT_COLUMNS} FROM contexts WHERE $1::text IS NULL OR kind = $1 "
            "ORDER BY created_at, id", kind))
        return [_context(r) for r in rows]

    async def delete_context(self, context_id: str) -> bool:
        await self._settle_touches()
        status = await self._fetch(lambda c: c.execute(
            "DELETE FROM contexts WHERE id = $1", context_id))
        return bool(status != "DELETE 0")

    async def touch_context(self, context_id: str, when: str) -> None:
        # Best effort and off the request's path, as on SQLite: usage statistics are not worth
        # a round trip's wait, nor a failed request while the store shuts down.
        if not self._accepting:
            return

        async def touch() -> None:
            try:
                await self._fetch(lambda c: c.execute(
                    "UPDATE contexts SET last_used_at = $1, hits = hits + 1 WHERE id = $2",
                    when, context_id))
            except Exception as exc:
                log.warning("recording a use of context %s failed: %r", context_id, exc)

        task = asyncio.ensure_future(touch())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- subscriptions and their outbox (postgres_subscriptions.py, postgres_outbox.py) ------
    def observe(self, observer: WriteObserver) -> None:
        self._observer = observer

    @property
    def outbox(self) -> PostgresOutbox:
        return self._outbox

    @property
    def audit(self) -> PostgresStoreAudit:
        """The audit log's committer and storage in this database (security/audit/log.py)."""
        return self._audit

    async def _in_transaction(self, run: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """`run` in one read-committed transaction, retried (as writes are) when PostgreSQL
        aborts it for a deadlock or a serialization failure."""
        async with self._connection() as conn:
            for attempt in range(WRITE_RETRIES):
                try:
                    async with conn.transaction():
                        result = await run(conn)
                        kept = await self._audit.keep(conn)
                    _committed(kept)
                    return result
                except _RETRYABLE:
                    if attempt == WRITE_RETRIES - 1:
                        raise
            raise AssertionError("unreachable")

    async def create_subscription(self, tenant: str, sub_id: str,
                                  record: dict[str, Any]) -> bool:
        return await self._in_transaction(lambda c: subs.create(c, tenant, sub_id, record))

    async def get_subscription(self, tenant: str, sub_id: str) -> SubscriptionRow | None:
        return await self._fetch(lambda c: subs.get(c, tenant, sub_id))

    async def list_subscriptions(self, tenant: str, limit: int,
                                 offset: int) -> tuple[list[SubscriptionRow], int]:
        async with self._snapshot() as conn:
            return await subs.page(conn, tenant, limit, offset)

    async def update_subscription(self, tenant: str, sub_id: str,
                                  edit: SubscriptionEdit) -> dict[str, Any] | None:
        return await self._in_transaction(lambda c: subs.update(c, tenant, sub_id, edit))

    async def delete_subscription(self, tenant: str, sub_id: str) -> bool:
        return await self._in_transaction(lambda c: subs.delete(c, tenant, sub_id))

    async def subscriptions(self) -> tuple[int, list[SubscriptionRow]]:
        return await self._fetch(subs.every)

    async def subscriptions_version(self) -> int:
        return await self._fetch(subs.version)

    async def enqueue_periodic(self, tenant: str, sub_id: str, expected_last: float | None,
                               now: float, planned: PlannedWrite | None) -> bool:
        return await self._in_transaction(lambda c: subs.enqueue_periodic(
            c, tenant, sub_id, expected_last, now, planned))


# Transaction-scoped advisory locks on (tenant, id) keys, taken in sorted order.
_LOCK_IDS = """
SELECT pg_advisory_xact_lock(hashtextextended($1 || chr(1) || id, 0))
FROM (SELECT DISTINCT unnest($2::text[]) AS id ORDER BY 1) ids
"""

# Rewrites documents and drops their derived rows in one round trip (they are re-inserted).
_REWRITE_MANY = """
WITH u AS (SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::json[])
                         AS u(rid, created_at, modified_at, doc)),
     docs AS (UPDATE entities e SET created_at = u.created_at, modified_at = u.modified_at,
                                    doc = u.doc FROM u WHERE e.rid = u.rid),
     a AS (DELETE FROM attrs WHERE rid = ANY($1::bigint[])),
     t AS (DELETE FROM entity_types WHERE rid = ANY($1::bigint[])),
     s AS (DELETE FROM entity_scopes WHERE rid = ANY($1::bigint[]))
DELETE FROM geo_index WHERE rid = ANY($1::bigint[])
"""
_INSERT_MANY = """
INSERT INTO entities (tenant, id, created_at, modified_at, doc)
SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::json[])
ON CONFLICT (tenant, id) DO NOTHING
RETURNING id, rid
"""


class _Derived:
    """The derived rows (broker/store/rows.py) of written entities, gathered column by column
    and sent in one call of cetate_put_derived (migrations/postgresql)."""

    def __init__(self) -> None:
        self.types: tuple[list[Any], list[Any]] = ([], [])
        self.scopes: tuple[list[Any], list[Any]] = ([], [])
        self.attrs: tuple[list[Any], ...] = tuple([] for _ in range(14))
        self.geo: tuple[list[Any], ...] = tuple([] for _ in range(7))

    def add(self, rid: int, entity: Entity) -> None:
        for t in dict.fromkeys(entity["type"]):
            self.types[0].append(rid)
            self.types[1].append(t)
        for scope in dict.fromkeys(entity.get("scope", ())):
            self.scopes[0].append(rid)
            self.scopes[1].append(scope)
        for r in attribute_rows(entity):
            for column, value in zip(self.attrs, (
                    rid, r.name, r.dataset_id, r.kind, r.value_num, r.value_text, r.value_bool,
                    r.object, r.observed_at, r.value_json, r.created_at, r.modified_at,
                    r.unit_code, r.depth), strict=True):
                column.append(value)
        for b in geo_boxes(entity):
            for column, cell in zip(self.geo, (rid, b.name, b.dataset_id, b.min_x, b.max_x,
                                               b.min_y, b.max_y), strict=True):
                column.append(cell)

    async def write(self, conn: asyncpg.Connection, tenant: str) -> None:
        await conn.execute(_PUT_DERIVED, tenant, *self.types, *self.scopes, *self.attrs,
                           *self.geo)


_PUT_DERIVED = ("SELECT cetate_put_derived($1, " + ", ".join(
    f"${n}::{t}[]" for n, t in enumerate(
        ["bigint", "text", "bigint", "text",
         "bigint", "text", "text", "text", "float8", "text", "int", "text", "text", "jsonb",
         "text", "text", "text", "int",
         "bigint", "text", "text", "float8", "float8", "float8", "float8"], start=2)) + ")")


# Distinct values by skip-scan (as on SQLite): one index seek per distinct value, so the cost
# grows with the number of types or names, not of rows.
_DISTINCT_TYPES = """
WITH RECURSIVE seen(v) AS (
    SELECT min(type) FROM entity_types WHERE tenant = $1
    UNION ALL
    SELECT (SELECT min(type) FROM entity_types WHERE tenant = $1 AND type > seen.v)
      FROM seen WHERE seen.v IS NOT NULL)
SELECT v FROM seen WHERE v IS NOT NULL"""
_DISTINCT_ATTRS = """
WITH RECURSIVE seen(v) AS (
    SELECT min(name) FROM attrs WHERE tenant = $1 AND depth = 0
    UNION ALL
    SELECT (SELECT min(name) FROM attrs WHERE tenant = $1 AND depth = 0 AND name > seen.v)
      FROM seen WHERE seen.v IS NOT NULL)
SELECT v FROM seen WHERE v IS NOT NULL"""
_TYPE_ATTRIBUTES = """
SELECT a.name, a.kind, count(*) FROM entity_types t JOIN attrs a ON a.rid = t.rid
 WHERE t.tenant = $1 AND t.type = $2 AND a.depth = 0
 GROUP BY a.name, a.kind ORDER BY a.name, a.kind"""
_ATTRIBUTE_TYPES = """
SELECT DISTINCT t.type FROM attrs a JOIN entity_types t ON t.rid = a.rid
 WHERE a.tenant = $1 AND a.depth = 0 AND a.name = $2 ORDER BY t.type"""


def _committed(kept: tuple[Announced, int] | None) -> None:
    """A write committed with its request's audit facts: its entry need not be waited for
    (broker/http/audit.py, security/audit/pending.py)."""
    if kept is not None:
        kept[0].row = kept[1]


async def _column(conn: asyncpg.Connection, sql: str, tenant: str) -> list[str]:
    return [r[0] for r in await conn.fetch(sql, tenant)]


def _summaries(rows: Sequence[asyncpg.Record]) -> tuple[AttributeSummary, ...]:
    """(name, kind, count) rows, sorted by name, as one AttributeSummary per name; a type's
    attributes carry no count (protocol.TypeSummary)."""
    merged: dict[str, list[str]] = {}
    for name, kind, _ in rows:
        merged.setdefault(name, []).append(kind)
    return tuple(AttributeSummary(name, None, tuple(kinds)) for name, kinds in merged.items())


_CONTEXT_COLUMNS = "id, url, kind, body, created_at, last_used_at, hits"


def _context(row: asyncpg.Record) -> StoredContext:
    return StoredContext(id=row[0], url=row[1], kind=row[2], body=orjson.loads(row[3]),
                         created_at=row[4], last_used_at=row[5], number_of_hits=row[6])
