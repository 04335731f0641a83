"""The notification outbox (broker/subscriptions/outbox.py) on PostgreSQL's tables.

Every method is one transaction on a pooled connection. A claim leases rows with one UPDATE
over a FOR UPDATE SKIP LOCKED selection, so replicas claiming at once take disjoint rows
without waiting on each other, and a row stays theirs until its lease runs out (the lease
columns decide, as on SQLite). Times are the callers' epoch seconds, not the database's clock:
the dispatcher's `now` decides what is due and leased, on every engine alike.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import asyncpg
import orjson

from broker.subscriptions.notification import Outgoing
from broker.subscriptions.outbox import PendingNotification, draft_from_rows
from broker.subscriptions.sender import Result

Connect = Callable[[], AbstractAsyncContextManager[asyncpg.Connection]]

_CLAIMED = ("id, tenant, subscription_id, notification_id, endpoint_key, message, draft, "
            "change_id, created_at, due, attempt, first_attempt_at")
_CLAIM = f"""
UPDATE notification_outbox SET lease_owner = $1, lease_until = $2::float8 + $3::float8
WHERE id IN (SELECT id FROM notification_outbox
             WHERE state = 'pending' AND due <= $2
               AND (lease_until IS NULL OR lease_until < $2)
               AND endpoint_key <> ALL($4::text[])
             ORDER BY due, id LIMIT $5 FOR UPDATE SKIP LOCKED)
RETURNING {_CLAIMED}
"""
# A failed attempt: the row's update and its subscription's count in one statement.
_COUNT_FAILED = """
WITH o AS ({update} WHERE id = $1 RETURNING tenant, subscription_id)
UPDATE subscription_delivery d SET times_failed = d.times_failed + 1,
       last_notification = $2, last_failure = $2
FROM o WHERE d.tenant = o.tenant AND d.subscription_id = o.subscription_id
"""
_RESCHEDULE = _COUNT_FAILED.format(update=(
    "UPDATE notification_outbox SET attempt = attempt + 1, "
    "first_attempt_at = coalesce(first_attempt_at, $2), due = $3, lease_owner = NULL, "
    "lease_until = NULL, last_error = $4"))
_FAIL = _COUNT_FAILED.format(update=(
    "UPDATE notification_outbox SET state = 'failed', lease_owner = NULL, lease_until = NULL, "
    "last_error = $3"))


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


class PostgresOutbox:
    """The Outbox protocol; `connect` lends a pooled connection (PostgresStore._connection)."""

    def __init__(self, connect: Connect) -> None:
        self._connect = connect
        self.owner = f"postgresql-{uuid.uuid4()}"  # this process's leases

    async def add(self, out: Outgoing, due: float, created_at: float = 0.0) -> int:
        """Record a prepared message (a row with `message`, not a draft); its row id."""
        async with self._connect() as conn:
            row_id = await conn.fetchval(
                "INSERT INTO notification_outbox (tenant, subscription_id, notification_id, "
                "endpoint_key, message, created_at, due) VALUES ($1, $2, $3, $4, $5, $6, $7) "
                "RETURNING id", out.tenant, out.subscription_id, out.notification_id,
                out.endpoint_key, orjson.dumps(out.to_json()).decode(), created_at, due)
        return int(row_id)

    async def claim(self, now: float, limit: int, lease: float,
                    skip: frozenset[str] = frozenset()) -> list[PendingNotification]:
        async with self._connect() as conn, conn.transaction():
            rows = [tuple(r) for r in await conn.fetch(_CLAIM, self.owner, now, lease,
                                                       sorted(skip), limit)]
            rows.sort(key=lambda r: (r[9], r[0]))  # RETURNING keeps no order
            # Each write's changes once, however many of its rows this claim took. Our row
            # locks keep them: deleting a subscription waits for this transaction.
            wanted = sorted({r[7] for r in rows if r[5] is None})
            bodies: dict[int, list[Any]] = {}
            if wanted:
                bodies = {r[0]: orjson.loads(r[1]) for r in await conn.fetch(
                    "SELECT id, body FROM notification_changes WHERE id = ANY($1::bigint[])",
                    wanted)}
        return [_pending(r, bodies) for r in rows]

    # The outcomes are one statement each, so one round trip and one commit (autocommit):
    # the dispatcher reports every delivery, and with 100 subscriptions on one write their
    # rows share a change row, whose lock each report holds until its commit.
    async def delivered(self, row: PendingNotification, at: float, result: Result) -> None:
        # A row gone already (its lease ran out and another claimer delivered it, or the
        # subscription was deleted) counts nothing twice.
        async with self._connect() as conn:
            await conn.execute("SELECT cetate_outbox_remove($1, $2)", row.row_id, at)

    async def reschedule(self, row: PendingNotification, due: float, at: float,
                         result: Result) -> None:
        async with self._connect() as conn:
            await conn.execute(_RESCHEDULE, row.row_id, at, due, result.detail)

    async def failed(self, row: PendingNotification, at: float, result: Result) -> None:
        async with self._connect() as conn:
            await conn.execute(_FAIL, row.row_id, at, result.detail)

    async def postpone(self, row: PendingNotification, due: float) -> None:
        async with self._connect() as conn:
            await conn.execute("UPDATE notification_outbox SET due = $1, lease_owner = NULL, "
                               "lease_until = NULL WHERE id = $2", due, row.row_id)

    async def discard(self, row: PendingNotification) -> None:
        async with self._connect() as conn:
            await conn.execute("SELECT cetate_outbox_remove($1, NULL)", row.row_id)

    # Statements changing several rows lock them in id order (as delete_subscription does),
    # so two of them never wait on each other in a cycle.
    async def renew(self, now: float, lease: float) -> None:
        async with self._connect() as conn:
            await conn.execute(
                "UPDATE notification_outbox SET lease_until = $1 WHERE id IN ("
                "SELECT id FROM notification_outbox WHERE lease_owner = $2 AND "
                "state = 'pending' ORDER BY id FOR UPDATE)", now + lease, self.owner)

    async def expedite(self, endpoint_key: str, now: float) -> None:
        async with self._connect() as conn:
            await conn.execute(
                "UPDATE notification_outbox SET due = $1 WHERE id IN ("
                "SELECT id FROM notification_outbox WHERE state = 'pending' "
                "AND endpoint_key = $2 AND attempt > 0 AND due > $1 "
                "AND (lease_until IS NULL OR lease_until < $1) ORDER BY id FOR UPDATE)",
                now, endpoint_key)

