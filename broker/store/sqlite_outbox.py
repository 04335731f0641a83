"""The notification outbox (broker/subscriptions/outbox.py) on SQLite's tables.

Every method is one job of the store's writer, so it runs inside BEGIN IMMEDIATE: the write
lock is held across processes sharing the file (cetate serve --workers N), and a claim's
UPDATE ... RETURNING leases rows nobody else holds; the lease columns decide, as on PostgreSQL.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import orjson

from broker.store import sqlite_subscriptions as subs
from broker.subscriptions.notification import Outgoing
from broker.subscriptions.outbox import PendingNotification, draft_from_rows
from broker.subscriptions.sender import Result

T = TypeVar("T")
Write = Callable[[Callable[[sqlite3.Connection], T]], Awaitable[T]]

_CLAIMED = ("id, tenant, subscription_id, notification_id, endpoint_key, message, draft, "
            "change_id, created_at, due, attempt, first_attempt_at")


def _pending(r: Sequence[Any], bodies: dict[int, list[Any]]) -> PendingNotification:
    (row_id, tenant, sub_id, notification_id, key, message, draft, change_id, created_at, due,
     attempt, first_attempt_at) = r
    if message is not None:
        return PendingNotification(row_id, Outgoing.from_json(orjson.loads(message)), due,
                                   created_at, attempt, first_attempt_at, key=key)
    return PendingNotification(
        row_id, None, due, created_at, attempt, first_attempt_at,
        draft=draft_from_rows(notification_id, sub_id, tenant, orjson.loads(draft),
                              bodies[change_id]), key=key)


def _claim(c: sqlite3.Connection, owner: str, now: float, limit: int, lease: float,
           skip: frozenset[str]) -> list[PendingNotification]:
    keys = sorted(skip)
    not_skipped = f"AND endpoint_key NOT IN ({','.join('?' * len(keys))})" if keys else ""
    rows = c.execute(
        f"UPDATE notification_outbox SET lease_owner = ?, lease_until = ? "
        f"WHERE id IN (SELECT id FROM notification_outbox "
        f"             WHERE state = 'pending' AND due <= ? "
        f"               AND (lease_until IS NULL OR lease_until < ?) {not_skipped} "
        f"             ORDER BY due, id LIMIT ?) "
        f"RETURNING {_CLAIMED}",
        (owner, now + lease, now, now, *keys, limit)).fetchall()
    rows.sort(key=lambda r: (r[9], r[0]))  # RETURNING keeps no order
    # Each write's changes once, however many of its rows this claim took.
    wanted = sorted({r[7] for r in rows if r[5] is None})
    bodies: dict[int, list[Any]] = {}
    for change_id in wanted:
        (body,) = c.execute("SELECT body FROM notification_changes WHERE id = ?",
                            (change_id,)).fetchone()
        bodies[change_id] = orjson.loads(body)
    return [_pending(r, bodies) for r in rows]


def _count(c: sqlite3.Connection, found: Sequence[Any] | None, at: float, sent: bool) -> None:
    """Update the delivery state of the row's subscription (if it still exists)."""
    if found is None:
        return
    tenant, sub_id = found[0], found[1]
    if sent:
        c.execute("UPDATE subscription_delivery SET times_sent = times_sent + 1, "
                  "last_notification = ?, last_success = ? "
                  "WHERE tenant = ? AND subscription_id = ?", (at, at, tenant, sub_id))
    else:
        c.execute("UPDATE subscription_delivery SET times_failed = times_failed + 1, "
                  "last_notification = ?, last_failure = ? "
                  "WHERE tenant = ? AND subscription_id = ?", (at, at, tenant, sub_id))


def _remove(c: sqlite3.Connection, row_id: int) -> Sequence[Any] | None:
    found = c.execute("DELETE FROM notification_outbox WHERE id = ? "
                      "RETURNING tenant, subscription_id, change_id", (row_id,)).fetchone()
    if found is not None:
        subs.release_change(c, found[2])
    return found


class SQLiteOutbox:
    """The Outbox protocol; `write` queues a job on the store's writer."""

    def __init__(self, write: Write[Any]) -> None:
        self._write = write
        self.owner = f"sqlite-{uuid.uuid4()}"  # this process's leases

    async def add(self, out: Outgoing, due: float, created_at: float = 0.0) -> int:
        """Record a prepared message (a row with `message`, not a draft); its row id."""
        def run(c: sqlite3.Connection) -> int:
            row_id = c.execute(
                "INSERT INTO notification_outbox (tenant, subscription_id, notification_id, "
                "endpoint_key, message, created_at, due) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (out.tenant, out.subscription_id, out.notification_id, out.endpoint_key,
                 orjson.dumps(out.to_json()).decode(), created_at, due)).lastrowid
            assert row_id is not None
            return row_id
        result: int = await self._write(run)
        return result

    async def claim(self, now: float, limit: int, lease: float,
                    skip: frozenset[str] = frozenset()) -> list[PendingNotification]:
        result: list[PendingNotification] = await self._write(
            lambda c: _claim(c, self.owner, now, limit, lease, skip))
        return result

    async def delivered(self, row: PendingNotification, at: float, result: Result) -> None:
        # A row gone already (its lease ran out and another claimer delivered it, or the
        # subscription was deleted) counts nothing twice.
        await self._write(lambda c: _count(c, _remove(c, row.row_id), at, sent=True))

    async def reschedule(self, row: PendingNotification, due: float, at: float,
                         result: Result) -> None:
        await self._write(lambda c: _count(c, c.execute(
            "UPDATE notification_outbox SET attempt = attempt + 1, "
            "first_attempt_at = coalesce(first_attempt_at, ?), due = ?, lease_owner = NULL, "
            "lease_until = NULL, last_error = ? WHERE id = ? RETURNING tenant, subscription_id",
            (at, due, result.detail, row.row_id)).fetchone(), at, sent=False))

    async def failed(self, row: PendingNotification, at: float, result: Result) -> None:
        await self._write(lambda c: _count(c, c.execute(
            "UPDATE notification_outbox SET state = 'failed', lease_owner = NULL, "
            "lease_until = NULL, last_error = ? WHERE id = ? RETURNING tenant, subscription_id",
            (result.detail, row.row_id)).fetchone(), at, sent=False))

    async def postpone(self, row: PendingNotification, due: float) -> None:
        await self._write(lambda c: c.execute(
            "UPDATE notification_outbox SET due = ?, lease_owner = NULL, lease_until = NULL "
            "WHERE id = ?", (due, row.row_id)))

    async def discard(self, row: PendingNotification) -> None:
        await self._write(lambda c: _remove(c, row.row_id))

    async def renew(self, now: float, lease: float) -> None:
        await self._write(lambda c: c.execute(
            "UPDATE notification_outbox SET lease_until = ? WHERE lease_owner = ? "
            "AND state = 'pending'", (now + lease, self.owner)))

    async def expedite(self, endpoint_key: str, now: float) -> None:
        await self._write(lambda c: c.execute(
            "UPDATE notification_outbox SET due = ? WHERE state = 'pending' "
            "AND endpoint_key = ? AND attempt > 0 AND due > ? "
            "AND (lease_until IS NULL OR lease_until < ?)", (now, endpoint_key, now, now)))
