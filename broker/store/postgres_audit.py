"""The audit log in the PostgreSQL database every replica shares: one log for all of them.

Sequencing: each append batch runs in one transaction that first takes a transaction-scoped
advisory lock (pg_advisory_xact_lock(AUDIT_LOCK_KEY)), then reads the tree size and frontier,
numbers its leaves from there and writes leaves, nodes and the new frontier in one statement
each (unnest of arrays). The lock is released by COMMIT or ROLLBACK, so replicas on any number of
hosts never give one index twice, and a crash leaves the last committed tree, whole.
Batches: entries are queued per process; one flusher drains the queue into one transaction at a
time, so what arrives during a commit forms the next batch (PostgreSQL's own group commit
shares the WAL flush with concurrent entity writes). A write's entry waits for its batch's
commit (durable before the response) unless its facts were kept in its write's own
transaction (`keep`, called by the store): then it rides with the next batch, like a read's,
and its append deletes those facts (security/audit/pending.py recovers them otherwise).

Reads for the log's reader thread (the synchronous AuditStorage protocol) run on a connection
and an event loop of that thread's own (PostgresAuditStorage), and serve the CLI too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

import asyncpg
import orjson

from security.audit.bundles import (
    NODE_MIN_LEVEL,
    Built,
    Bundle,
    build,
    bundle_matches,
    bundle_row,
    erase_facets,
    hash_at,
    key_needles,
    key_of,
    needles,
    number,
    parse_details,
)
from security.audit.entry import Detail, Pseudonyms, Sealed, facts, now
from security.audit.log import (
    GROUP_COMMIT_MAX,
    PENDING_ENTRY,
    Announced,
    EntryQuery,
    Pending,
    Queued,
    prepare,
    settle,
)
from security.audit.merkle import Frontier, root
from security.audit.pending import RECOVER_MAX, instance_id, own_cutoff, recovered

log = logging.getLogger("cetate.audit")
T = TypeVar("T")

AUDIT_LOCK_KEY = 0x636574617564  # "cetaud": beside the store's other advisory lock keys
CONNECT_TIMEOUT_S = 10.0
Connect = Callable[[], AbstractAsyncContextManager[asyncpg.Connection]]

_INSERT_BUNDLE = ("INSERT INTO audit_bundles VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, "
                  "$10)")
_INSERT_NODES = """
INSERT INTO audit_nodes (level, idx, hash)
SELECT * FROM unnest($1::integer[], $2::bigint[], $3::bytea[])"""
# The bundles overlapping [$2, $1), in index order
_OVERLAPPING = ("FROM audit_bundles WHERE first < $1 AND first >= coalesce((SELECT first FROM "
                "audit_bundles WHERE first <= $2 ORDER BY first DESC LIMIT 1), 0) "
                "ORDER BY first")


async def append_batch(conn: asyncpg.Connection, bundles: Sequence[Built]) -> int:
    """Number and write bundles in the caller's transaction, under the advisory lock; the
    first index of the first."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", AUDIT_LOCK_KEY)
    size, blob = await conn.fetchrow("SELECT size, frontier FROM audit_tree WHERE id = 1")
    frontier = Frontier.from_bytes(size, bytes(blob))
    if not bundles:
        return int(size)
    for built in bundles:
        first = frontier.size
        nodes = number(frontier, built)
        row = bundle_row(first, built)
        await conn.execute(_INSERT_BUNDLE, *row[:6], row[6].decode(), row[7].decode(),
                           row[8].decode() if row[8] is not None else None, row[9])
        if nodes:
            await conn.execute(_INSERT_NODES, [n[0] for n in nodes], [n[1] for n in nodes],
                               [n[2] for n in nodes])
        if built.pending:  # the writes' facts these entries now hold
            await conn.execute("DELETE FROM audit_pending WHERE id = ANY($1::bigint[])",
                               list(built.pending))
    await conn.execute("UPDATE audit_tree SET size = $1, frontier = $2 WHERE id = 1",
                       frontier.size, frontier.to_bytes())
    return int(size)


async def add_checkpoint(conn: asyncpg.Connection, size: int, note: str) -> None:
    await conn.execute("INSERT INTO audit_checkpoints (size, note) VALUES ($1, $2) "
                       "ON CONFLICT (size) DO UPDATE SET note = excluded.note", size, note)


async def erase_subject(conn: asyncpg.Connection, subject: str) -> int:
    """Delete the kept details of a subject's entries; the leaves stay, unlinkable."""
    erased = 0
    async with conn.transaction():
        rows = await conn.fetch("SELECT first, facets, kept FROM audit_bundles WHERE kept IS "
                                "NOT NULL AND (keys IS NULL OR position($1::bytea IN keys) > 0) "
                                "FOR UPDATE", key_of("s", subject))
        for first, facets, kept in rows:
            count, left = erase_facets(subject, facets, kept)
            if count:
                erased += count
                await conn.execute("UPDATE audit_bundles SET kept = $1 WHERE first = $2",
                                   left, first)
    return erased


class Keeping:
    """A write request's audit facts on their way into its transaction's audit_pending row:
    a store statement may insert them with its own work (`LOCK_KEEPING`), saving the round
    trip of an INSERT of their own (`PostgresStoreAudit.keep`)."""

    __slots__ = ("key", "row", "values")

    def __init__(self, key: Announced, values: tuple[str, float, bytes]) -> None:
        self.key = key
        self.values = values  # (instance, at, facts): the row's columns
        self.row: int | None = None  # its id, once inserted in the running transaction


# A single-entity write's first statement, keeping its request's facts as it locks the entity
# row (or its absence): (kept row id, rid, doc), rid and doc NULL for an entity not stored.
LOCK_KEEPING = """
WITH kept AS (INSERT INTO audit_pending (instance, at, facts) VALUES ($3, $4, $5) RETURNING id),
     locked AS (SELECT rid, doc FROM entities WHERE tenant = $1 AND id = $2 FOR UPDATE)
SELECT kept.id AS kept, locked.rid, locked.doc FROM kept LEFT JOIN locked ON true"""


class PostgresStoreAudit:
    """The audit Committer of a PostgresStore (security/audit/log.py), and its read storage."""

    def __init__(self, dsn: str, connect: Connect, accepting: Callable[[], bool]) -> None:
        self.storage = PostgresAuditStorage(dsn)
        self.instance = instance_id()
        self._connect = connect  # a pooled connection of the store
        self._accepting = accepting
        self._queue: list[Pending] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._flusher(), name="audit-flusher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def ready(self) -> bool:
        return self._accepting()

    def put(self, entry: Queued, future: asyncio.Future[int] | None, urgent: bool) -> None:
        self._queue.append((entry, future))
        if urgent or len(self._queue) >= GROUP_COMMIT_MAX:
            self._wakeup.set()

    def wake(self) -> None:
        self._wakeup.set()

    def keeping(self) -> Keeping | None:
        """The facts the running write request's transaction is to keep, if it has to (once
        per request: the first write that commits keeps them)."""
        key = PENDING_ENTRY.get()
        if key is None or key.row is not None:
            return None
        return Keeping(key, (self.instance, time.time(), facts(key.record, now(),
                                                                key.request_id)))

    async def keep(self, conn: asyncpg.Connection, keeping: Keeping | None = None
                   ) -> tuple[Announced, int] | None:
        """In a write's transaction: keep the facts of the running request's announced record
        (once per request), unless a statement of the transaction already did (`keeping`
        carries its row); the caller sets Announced.row after COMMIT."""
        if keeping is None:
            keeping = self.keeping()
            if keeping is None:
                return None
        if keeping.row is None:
            keeping.row = int(await conn.fetchval(
                "INSERT INTO audit_pending (instance, at, facts) VALUES ($1, $2, $3) "
                "RETURNING id", *keeping.values))
        return keeping.key, keeping.row

    async def recover(self, pseudonyms: Pseudonyms) -> int:
        """Seal kept facts that are due (security/audit/pending.py); rows another replica is
        sealing are passed (SKIP LOCKED)."""
        at = time.time()
        async with self._connect() as conn, conn.transaction():
            # this broker's own recent facts are its entries still coming: not even read
            rows = await conn.fetch(
                "SELECT id, instance, at, facts FROM audit_pending WHERE instance <> $1 OR "
                "at < $2 ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED", self.instance,
                own_cutoff(at), RECOVER_MAX)
            batch = recovered([(r[0], r[1], r[2], bytes(r[3])) for r in rows], self.instance,
                              at, pseudonyms)
            if batch:
                await append_batch(conn, [build(batch)])
                log.warning("sealed %d audit entries of writes whose broker stopped before "
                            "appending them", len(batch))
        return len(batch)

    async def add_checkpoint(self, size: int, note: str) -> None:
        async with self._connect() as conn:
            await add_checkpoint(conn, size, note)

    async def erase_subject(self, subject: str) -> int:
        async with self._connect() as conn:
            return await erase_subject(conn, subject)

    async def _flusher(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                items, self._queue = self._queue[:GROUP_COMMIT_MAX], self._queue[GROUP_COMMIT_MAX:]
                batch = prepare(items)
                if not batch.bundles:  # only flush markers
                    settle(batch, 0)
                    continue
                try:
                    async with self._connect() as conn, conn.transaction():
                        first = await append_batch(conn, batch.bundles)
                except Exception as exc:
                    log.exception("audit append of %d bundles failed", len(batch.bundles))
                    settle(batch, exc)
                    continue
                settle(batch, first)


class PostgresAuditStorage:
    """The AuditStorage protocol (synchronous) on the audit tables of a PostgreSQL database:
    per calling thread, a connection and an event loop of its own."""

    def __init__(self, dsn: str) -> None:
        if dsn.startswith("postgres://"):
            dsn = "postgresql://" + dsn[len("postgres://"):]
        self.dsn = dsn
        self._local = threading.local()
        self._all: list[tuple[asyncio.AbstractEventLoop, asyncpg.Connection]] = []
        self._lock = threading.Lock()

    def _run(self, use: Callable[[asyncpg.Connection], Coroutine[Any, Any, T]]) -> T:
        loop: asyncio.AbstractEventLoop | None = getattr(self._local, "loop", None)
        if loop is None:
            loop = asyncio.new_event_loop()
            conn = loop.run_until_complete(asyncpg.connect(self.dsn, timeout=CONNECT_TIMEOUT_S))
            self._local.loop, self._local.conn = loop, conn
            with self._lock:
                self._all.append((loop, conn))
        return loop.run_until_complete(use(self._local.conn))

    def open(self) -> None:
        return None  # the store's migrations made the tables

    def close(self) -> None:
        # Each connection is closed on its own loop; called from the thread that used it last,
        # the loops are idle by then.
        with self._lock:
            for loop, conn in self._all:
                with contextlib.suppress(Exception):
                    loop.run_until_complete(conn.close())
                loop.close()
            self._all.clear()
        self._local = threading.local()

    def append(self, batch: Sequence[Sealed]) -> tuple[int, Frontier]:
        return self.append_built([build(batch)] if batch else [])

    def append_built(self, bundles: Sequence[Built]) -> tuple[int, Frontier]:
        async def run(conn: asyncpg.Connection) -> tuple[int, Frontier]:
            async with conn.transaction():
                first = await append_batch(conn, bundles)
            return first, await _head(conn)
        return self._run(run)

    def add_checkpoint(self, size: int, note: str) -> None:
        self._run(lambda c: add_checkpoint(c, size, note))

    def erase_subject(self, subject: str) -> int:
        return self._run(lambda c: erase_subject(c, subject))

    def head(self) -> Frontier:
        return self._run(_head)

    def perfect(self, level: int, index: int) -> bytes:
        return self._run(lambda c: _perfect(c, level, index))

    def entries(self, start: int, end: int) -> list[tuple[int, bytes]]:
        async def run(conn: asyncpg.Connection) -> list[tuple[int, bytes]]:
            out: list[tuple[int, bytes]] = []
            for first, count, sizes, blob in await conn.fetch(
                    f"SELECT first, count, sizes, entries {_OVERLAPPING}", end, start):
                bundle = Bundle(first, count, sizes, bytes(blob))
                out += [(i, bundle.entry(i))
                        for i in range(max(start, first), min(end, first + count))]
            return out
        return self._run(run)

    def latest_checkpoint(self) -> tuple[int, str] | None:
        async def run(conn: asyncpg.Connection) -> tuple[int, str] | None:
            row = await conn.fetchrow("SELECT size, note FROM audit_checkpoints "
                                      "ORDER BY size DESC LIMIT 1")
            return (row[0], row[1]) if row else None
        return self._run(run)

    def checkpoint_at(self, size: int) -> str | None:
        async def run(conn: asyncpg.Connection) -> str | None:
            note: str | None = await conn.fetchval(
                "SELECT note FROM audit_checkpoints WHERE size = $1", size)
            return note
        return self._run(run)

    def details(self, idx: int) -> list[Detail]:
        async def run(conn: asyncpg.Connection) -> list[Detail]:
            row = await conn.fetchrow("SELECT first, kept FROM audit_bundles WHERE first <= $1 "
                                      "ORDER BY first DESC LIMIT 1", idx)
            if row is None or row[1] is None:
                return []
            kept = orjson.loads(row[1])
            i = idx - row[0]
            return parse_details(kept[i]) if i < len(kept) else []
        return self._run(run)

    def query(self, q: EntryQuery) -> list[tuple[int, bytes]]:
        where = ["first >= coalesce((SELECT first FROM audit_bundles WHERE first <= $1 ORDER BY "
                 "first DESC LIMIT 1), 0)"]
        params: list[Any] = [q.after]

        def arg(value: Any) -> str:
            params.append(value)
            return f"${len(params)}"
        if q.since:
            where.append(f"time_max >= {arg(q.since)}")
        if q.until:
            where.append(f"time_min < {arg(q.until)}")
        for needle in needles(q):
            where.append(f"strpos(facets, {arg(needle)}) > 0")
        for key in key_needles(q):
            where.append(f"(keys IS NULL OR position({arg(key)}::bytea IN keys) > 0)")
        sql = ("SELECT first, count, sizes, facets, entries FROM audit_bundles WHERE "
               f"{' AND '.join(where)} ORDER BY first")

        async def run(conn: asyncpg.Connection) -> list[tuple[int, bytes]]:
            async with conn.transaction():  # a cursor: bundles are read until the page is full
                out: list[tuple[int, bytes]] = []
                async for r in conn.cursor(sql, *params, prefetch=8):
                    out += bundle_matches(q, (r[0], r[1], r[2], r[3], bytes(r[4])),
                                          q.limit - len(out))
                    if len(out) >= q.limit:
                        break
                return out
        return self._run(run)


async def _head(conn: asyncpg.Connection) -> Frontier:
    size, blob = await conn.fetchrow("SELECT size, frontier FROM audit_tree WHERE id = 1")
    return Frontier.from_bytes(size, bytes(blob))


async def _perfect(conn: asyncpg.Connection, level: int, index: int) -> bytes:
    if level >= NODE_MIN_LEVEL:
        found = await conn.fetchval("SELECT hash FROM audit_nodes WHERE level = $1 AND idx = $2",
                                    level, index)
        if found is None:
            raise LookupError(f"no subtree ({level}, {index}) in the audit log")
        return bytes(found)
    lo, n = index << level, 1 << level
    hashes: list[bytes] = []
    for first, count, blob in await conn.fetch(f"SELECT first, count, hashes {_OVERLAPPING}",
                                               lo + n, lo):
        hashes += [hash_at(blob, i - first)
                   for i in range(max(lo, first), min(lo + n, first + count))]
    if len(hashes) != n:
        raise LookupError(f"no subtree ({level}, {index}) in the audit log")
    return hashes[0] if n == 1 else root(hashes)

