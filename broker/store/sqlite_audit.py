"""The audit log in the SQLite store's own database, committed by the store's writer.

Entries are queued here (from the event loop); the writer seals those still to seal (a write's
record, security/audit/log.py `prepare`) and appends every queued entry in its group transaction
just before COMMIT (`before_commit`, in a savepoint of its own), so they share
the commit — and the one fsync — of whatever entity writes that group holds. Only after COMMIT
are their futures resolved (`after_commit`), so a write's entry is durable before its response.
An urgent entry (a write's) rides with the next group when one will come anyway (jobs are
queued, or a group has not reached its COMMIT yet); only with the writer idle does it submit
an empty job to start one, so under load a write's entry shares the commit of other requests'
entity writes instead of costing a commit of its own. A read's entry waits for the next group
(anyone's write, an urgent entry, a tree head).

A write's own entry in its write's commit: a write request announces its entry (PENDING_ENTRY,
security/audit/log.py) and its jobs carry that key. After running a group's jobs the writer
answers the keyed ones at once (`hold`), still inside the transaction, and waits (at most
HOLD_S) for their requests' entries, which the middleware appends as soon as the handler has
answered; then they are drained and committed with the writes: one commit per write request
instead of two in a row. Nothing is answered before COMMIT: the response waits for its entry's
future, resolved after COMMIT. If COMMIT fails, those entries fail (500, not 2xx), and so does an
entry that arrives too late for the failed group (its key is doomed).
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

from security.audit.log import (
    GROUP_COMMIT_MAX,
    PENDING_ENTRY,
    Batch,
    Pending,
    Queued,
    fail,
    prepare,
    settle,
)
from security.audit.sqlite_log import SQLiteAuditStorage, add_checkpoint, append_rows, erase_subject


class CommitFailed(RuntimeError):
    """The write an entry records did not commit (so neither may its entry)."""

log = logging.getLogger("cetate.audit")

WriteRun = Callable[[sqlite3.Connection], Any]
BATCH_MAX = 4 * GROUP_COMMIT_MAX  # entries one group appends; the rest wait for the next
HOLD_S = 0.010  # longest a group waits for its requests' entries (a handler doing more work)


@dataclass
class Held:
    """The jobs a group answered before COMMIT, and the entry keys of their requests."""

    jobs: set[int]  # id() of the jobs
    keys: set[object]


@dataclass
class Taken:
    """What one group transaction appended: the entries and their first index, or why not."""

    batch: Batch = field(default_factory=lambda: Batch([], []))
    first: int | Exception = 0
    keys: list[object] = field(default_factory=list)  # the announced entries among them


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
        self._arrived = threading.Condition(self._lock)  # an announced entry was queued
        self._keys: dict[int, object] = {}  # id(future) -> key of the queued keyed entries
        self._awaiting: set[object] = set()  # keys the holding group still waits for
        self._doomed: set[object] = set()  # keys whose write's commit failed after an answer
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

    def put(self, entry: Queued, future: asyncio.Future[int] | None, urgent: bool,
            key: object | None = None) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        with self._lock:
            if key is not None and key in self._doomed:  # its write was not committed
                self._doomed.discard(key)
                if future is not None:
                    future.set_exception(CommitFailed("The write this entry records did not "
                                                      "commit"))
                return
            self._queue.append((entry, future))
            if key is not None and future is not None:
                self._keys[id(future)] = key
                # The holding group is woken once, by the last entry it waits for, not by
                # every entry queued meanwhile.
                if key in self._awaiting:
                    self._awaiting.discard(key)
                    if not self._awaiting:
                        self._arrived.notify()
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

    # -- the writer's hooks (writer thread, inside the group transaction) -----------------------

    @staticmethod
    def caller_entry() -> object | None:
        """The entry key the calling request announced (on the loop, when a job is queued)."""
        return PENDING_ENTRY.get()

    def hold(self, outcomes: Sequence[tuple[Any, bool, Any]],
             deliver: Callable[[Any, bool, Any], None]) -> Held | None:
        """Answer the keyed jobs now and wait (HOLD_S at most) until their requests' entries
        are queued, so the group's COMMIT holds them too; None if the group has no keyed job."""
        keyed = [o for o in outcomes if o[0].entry is not None]
        if not keyed:
            return None
        held = Held({id(o[0]) for o in keyed}, {o[0].entry for o in keyed})
        for job, ok, value in keyed:
            deliver(job, ok, value)
        with self._arrived:
            self._awaiting = held.keys - set(self._keys.values())
            if self._awaiting:
                self._arrived.wait_for(lambda: not self._awaiting, HOLD_S)
            self._awaiting = set()
        return held

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
            drained_keys = [self._keys.pop(id(f)) for _, f in items
                            if f is not None and id(f) in self._keys]
        if self._woken:
            with contextlib.suppress(Exception):  # closing: the rest fail with the store
                self._submit([_nothing])  # the rest in the next group
        taken = Taken(prepare(items), keys=drained_keys)  # sealed here, in one loop
        if not taken.batch.sealed:  # only flush markers
            return taken
        conn.execute("SAVEPOINT audit")
        try:
            taken.first, _ = append_rows(conn, taken.batch.sealed)
        except Exception as exc:  # only the audit rows go; the group's entity writes commit
            log.exception("audit append of %d entries failed", len(taken.batch.sealed))
            conn.execute("ROLLBACK TO audit")
            taken.first = exc
        conn.execute("RELEASE audit")
        return taken

    def after_commit(self, taken: Taken | None, failure: Exception | None,
                     held: Held | None = None) -> None:
        """Resolve the futures of a group's entries: their indices once committed, else the
        failure (of COMMIT or of the append). After a failure, the entries of answered writes
        not in this group are doomed: they fail when they come."""
        if failure is not None and held is not None:
            late = held.keys - set(taken.keys if taken else ())
            with self._lock:
                self._doomed |= late
                doomed_now = [(s, f) for s, f in self._queue
                              if f is not None and self._keys.get(id(f)) in late]
                self._queue = [(s, f) for s, f in self._queue if (s, f) not in doomed_now]
                for _, f in doomed_now:
                    self._doomed.discard(self._keys.pop(id(f)))
            if doomed_now and self._loop is not None:
                with contextlib.suppress(RuntimeError):
                    self._loop.call_soon_threadsafe(fail, doomed_now, failure)
        if taken is None:
            if failure is not None:  # failed before draining: what is queued needs a group
                with self._lock:
                    self._open = False
                with contextlib.suppress(Exception):
                    self.wake()
            return
        outcome = failure if failure is not None else taken.first
        if not taken.batch.waiters or self._loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody left to tell
            self._loop.call_soon_threadsafe(settle, taken.batch, outcome)


def _nothing(conn: sqlite3.Connection) -> None:
    """An empty job: it starts a group, whose before_commit appends the queued entries."""
