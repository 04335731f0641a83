"""The audit log in the SQLite store's own database, committed by the store's writer.

Entries are queued here (from the event loop); the writer seals those still to seal (security/
audit/log.py `prepare`) and appends every queued entry in its group transaction just before
COMMIT (`before_commit`, in a savepoint of its own), so they share the commit — and the one
fsync — of whatever entity writes that group holds. Only after COMMIT are their futures
resolved (`after_commit`). An urgent entry rides with the next group when one will come anyway
(jobs are queued, or a group has not reached its COMMIT yet); only with the writer idle does it
submit an empty job to start one. A read's entry waits for the next group (anyone's write, an
urgent entry, a tree head).

A write's entry is durable before its response without the response waiting for it: a write
request announces its record (PENDING_ENTRY, security/audit/log.py) and its jobs carry it. When
one of its jobs succeeds, the group writes the record's facts to audit_pending in the same
transaction (`Announced.row`), so the write and the facts of its access commit together, or
neither. The request is answered after that COMMIT, as without the log; its entry (with the
response's status) is then sealed with the reads' batch, and its append deletes the row in the
same transaction. A broker that dies in between leaves the row: `recover` seals it from its
facts (status null: the response was never recorded) when security/audit/pending.py says
they are due.
A write request none of whose jobs committed (refused, invalid, failed) appends its entry
durably, and waits for it, as before.
Sequencing is audit_tree's row read inside the writer's BEGIN IMMEDIATE transaction
(security/audit/sqlite_log.py), safe across processes sharing one file.
Reads use connections of their own (SQLiteAuditStorage with create=False: the migrations made
the tables).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from security.audit.bundles import build
from security.audit.entry import Pseudonyms, facts, now
from security.audit.log import (
    GROUP_COMMIT_MAX,
    PENDING_ENTRY,
    Announced,
    Batch,
    Pending,
    Queued,
    fail,
    prepare,
    settle,
)
from security.audit.pending import RECOVER_MAX, instance_id, own_cutoff, recovered
from security.audit.sqlite_log import SQLiteAuditStorage, add_checkpoint, append_rows, erase_subject

log = logging.getLogger("cetate.audit")

WriteRun = Callable[[sqlite3.Connection], Any]
BATCH_MAX = 4 * GROUP_COMMIT_MAX  # entries one group appends; the rest wait for the next
@dataclass
class Taken:
    """What one group transaction appended (the entries and their first index, or why not),
    and the write records whose facts it kept."""

    batch: Batch = field(default_factory=lambda: Batch([], []))
    first: int | Exception = 0
    announced: list[Announced] = field(default_factory=list)


class SQLiteStoreAudit:
    """The audit Committer of a SQLiteStore (security/audit/log.py), and its read storage."""

    def __init__(self, path: str, write: Callable[[WriteRun], Awaitable[Any]],
                 submit: Callable[[Sequence[WriteRun]], object],
                 accepting: Callable[[], bool], queued: Callable[[], int]) -> None:
        self.storage = SQLiteAuditStorage(path, create=False)
        self.instance = instance_id()
        self._write = write  # a job awaited (the store's writer)
        self._submit = submit  # a job nobody waits for
        self._accepting = accepting
        self._queued = queued  # jobs waiting for the writer (each will run a group)
        self._queue: list[Pending] = []
        self._lock = threading.Lock()  # the queue is filled on the loop, drained by the writer
        self._woken = False  # an empty job is queued to start a group
        self._open = False  # a group is running and has not drained the queue yet
        self._loop: asyncio.AbstractEventLoop | None = None  # the futures' (put's) loop

    # -- Committer ------------------------------------------------------------------------------

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def ready(self) -> bool:
        return self._accepting()

    def put(self, entry: Queued, future: asyncio.Future[int] | None, urgent: bool) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        with self._lock:
            self._queue.append((entry, future))
            # Appended before looking: any group starting from now on drains it.
            coming = self._open or self._woken or self._queued() > 0
            full = len(self._queue) >= GROUP_COMMIT_MAX
        if (urgent and not coming) or full:
            self.wake()

    def wake(self) -> None:
        with self._lock:
            if self._woken or not self._queue:
                return
            self._woken = True
        try:
            self._submit([_nothing])
        except Exception as exc:  # the store is closed: nothing will commit what is queued
            with self._lock:
                items, self._queue, self._woken = self._queue, [], False
            fail(items, exc)

    async def add_checkpoint(self, size: int, note: str) -> None:
        await self._write(lambda c: add_checkpoint(c, size, note))

    async def erase_subject(self, subject: str) -> int:
        count: int = await self._write(lambda c: erase_subject(c, subject))
        return count

    async def recover(self, pseudonyms: Pseudonyms) -> int:
        count: int = await self._write(lambda c: self._recover(c, pseudonyms, time.time()))
        return count

    def _recover(self, conn: sqlite3.Connection, pseudonyms: Pseudonyms, at: float) -> int:
        # this broker's own recent facts are its entries still coming: not even read
        rows = conn.execute(
            "SELECT id, instance, at, facts FROM audit_pending WHERE instance != ? OR at < ? "
            "ORDER BY id LIMIT ?", (self.instance, own_cutoff(at), RECOVER_MAX)).fetchall()
        batch = recovered(rows, self.instance, at, pseudonyms)
        if batch:
            append_rows(conn, [build(batch)])
            log.warning("sealed %d audit entries of writes whose broker stopped before "
                        "appending them", len(batch))
        return len(batch)

    # -- the writer's hooks (writer thread, inside the group transaction) -----------------------

    @staticmethod
    def caller_entry() -> Announced | None:
        """The record the calling request announced (on the loop, when a job is queued)."""
        return PENDING_ENTRY.get()

    def group_started(self) -> None:
        """A group transaction began: its before_commit will drain what is queued by then."""
        with self._lock:
            self._open = True

    def before_commit(self, conn: sqlite3.Connection,
                      committed: Sequence[Announced | None] = ()) -> Taken | None:
        """Keep the facts of the announced records of the group's successful jobs, and append
        what is queued, in the group's transaction; None when there is nothing to do. A
        failure to keep facts fails the group (no write acknowledged without them)."""
        announced: list[Announced] = []
        for key in committed:
            if key is not None and key.row is None:
                key.row = conn.execute(
                    "INSERT INTO audit_pending (instance, at, facts) VALUES (?, ?, ?)",
                    (self.instance, time.time(), facts(key.record, now(), key.request_id)),
                ).lastrowid
                announced.append(key)
        with self._lock:
            self._open = False
            if not self._queue:
                self._woken = False
                return Taken(announced=announced) if announced else None
            items, self._queue = self._queue[:BATCH_MAX], self._queue[BATCH_MAX:]
            self._woken = bool(self._queue)
        if self._woken:
            with contextlib.suppress(Exception):  # closing: the rest fail with the store
                self._submit([_nothing])  # the rest in the next group
        taken = Taken(prepare(items), announced=announced)  # sealed here, in one loop
        if not taken.batch.bundles:  # only flush markers
            return taken
        conn.execute("SAVEPOINT audit")
        try:
            taken.first, _ = append_rows(conn, taken.batch.bundles)
        except Exception as exc:  # only the audit rows go; the group's entity writes commit
            log.exception("audit append of %d bundles failed", len(taken.batch.bundles))
            conn.execute("ROLLBACK TO audit")
            taken.first = exc
        conn.execute("RELEASE audit")
        return taken

    def after_commit(self, taken: Taken | None, failure: Exception | None) -> None:
        """Resolve the futures of a group's entries: their indices once committed, else the
        failure (of COMMIT or of the append). After a failure the facts the group kept are
        gone with it, and what is queued needs another group."""
        if failure is not None:
            for key in taken.announced if taken else ():
                key.row = None
            with self._lock:
                self._open = False
            with contextlib.suppress(Exception):
                self.wake()
        if taken is None or not taken.batch.waiters or self._loop is None:
            return
        outcome = failure if failure is not None else taken.first
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody left to tell
            self._loop.call_soon_threadsafe(settle, taken.batch, outcome)


def _nothing(conn: sqlite3.Connection) -> None:
    """An empty job: it starts a group, whose before_commit appends the queued entries."""
