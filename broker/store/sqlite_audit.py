"""The audit log in the SQLite store's own database, committed by the store's writer.

Entries are queued here (from the event loop); the writer appends every queued entry in its
group transaction just before COMMIT (`before_commit`, in a savepoint of its own), so they share
the commit — and the one fsync — of whatever entity writes that group holds. Only after COMMIT
are their futures resolved (`after_commit`), so a write's entry is durable before its response.
An urgent entry (a write's) rides with the next group when one will come anyway (jobs are
queued, or a group has not reached its COMMIT yet); only with the writer idle does it submit
an empty job to start one, so under load a write's entry shares the commit of other requests'
entity writes instead of costing a commit of its own. A read's entry waits for the next group
(anyone's write, an urgent entry, a tree head).
Sequencing is audit_tree's row read inside the writer's BEGIN IMMEDIATE transaction
(security/audit/sqlite_log.py), safe across processes sharing one file.
Reads use connections of their own (SQLiteAuditStorage with create=False: the migration
0004_audit.sql made the tables).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from security.audit.entry import Sealed
from security.audit.log import GROUP_COMMIT_MAX, settle
from security.audit.sqlite_log import SQLiteAuditStorage, add_checkpoint, append_rows, erase_subject

log = logging.getLogger("cetate.audit")

WriteRun = Callable[[sqlite3.Connection], Any]
Pending = tuple[Sealed, "asyncio.Future[int]"]
BATCH_MAX = 4 * GROUP_COMMIT_MAX  # entries one group appends; the rest wait for the next


@dataclass
class Taken:
    """What one group transaction appended: the entries and their first index, or why not."""

    items: list[Pending] = field(default_factory=list)
    first: int | Exception = 0


class SQLiteStoreAudit:
    """The audit Committer of a SQLiteStore (security/audit/log.py), and its read storage."""

    def __init__(self, path: str, write: Callable[[WriteRun], Awaitable[Any]],
                 submit: Callable[[Sequence[WriteRun]], object],
                 accepting: Callable[[], bool], queued: Callable[[], int]) -> None:
        self.storage = SQLiteAuditStorage(path, create=False)
        self._write = write  # a job awaited (the store's writer)
        self._submit = submit  # a job nobody waits for
        self._accepting = accepting
        self._queued = queued  # jobs waiting for the writer (each will run a group)
        self._queue: list[Pending] = []
        self._lock = threading.Lock()  # the queue is filled on the loop, drained by the writer
        self._woken = False  # an empty job is queued to start a group
        self._open = False  # a group is running and has not drained the queue yet

    # -- Committer ------------------------------------------------------------------------------

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def ready(self) -> bool:
        return self._accepting()

    def put(self, sealed: Sealed, future: asyncio.Future[int], urgent: bool) -> None:
        with self._lock:
            self._queue.append((sealed, future))
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
            settle(items, exc)

    async def add_checkpoint(self, size: int, note: str) -> None:
        await self._write(lambda c: add_checkpoint(c, size, note))

    async def erase_subject(self, subject: str) -> int:
        count: int = await self._write(lambda c: erase_subject(c, subject))
        return count

    # -- the writer's hooks (writer thread, inside the group transaction) -----------------------

    def group_started(self) -> None:
        """A group transaction began: its before_commit will drain what is queued by then."""
        with self._lock:
            self._open = True

    def before_commit(self, conn: sqlite3.Connection) -> Taken | None:
        """Append what is queued in the group's transaction; None when nothing is."""
        with self._lock:
            self._open = False
            if not self._queue:
                self._woken = False
                return None
            items, self._queue = self._queue[:BATCH_MAX], self._queue[BATCH_MAX:]
            self._woken = bool(self._queue)
        if self._woken:
            with contextlib.suppress(Exception):  # closing: the rest fail with the store
                self._submit([_nothing])  # the rest in the next group
        taken = Taken(items)
        conn.execute("SAVEPOINT audit")
        try:
            taken.first, _ = append_rows(conn, [s for s, _ in items])
        except Exception as exc:  # only the audit rows go; the group's entity writes commit
            log.exception("audit append of %d entries failed", len(items))
            conn.execute("ROLLBACK TO audit")
            taken.first = exc
        conn.execute("RELEASE audit")
        return taken

    def after_commit(self, taken: Taken | None, failure: Exception | None) -> None:
        """Resolve the futures of a group's entries: their indices once committed, else the
        failure (of COMMIT or of the append)."""
        if taken is None:
            if failure is not None:  # failed before draining: what is queued needs a group
                with self._lock:
                    self._open = False
                with contextlib.suppress(Exception):
                    self.wake()
            return
        outcome = failure if failure is not None else taken.first
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody left to tell
            taken.items[0][1].get_loop().call_soon_threadsafe(settle, taken.items, outcome)


def _nothing(conn: sqlite3.Connection) -> None:
    """An empty job: it starts a group, whose before_commit appends the queued entries."""
