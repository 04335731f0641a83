"""Subscriptions and the write path's outbox rows on PostgreSQL: statements on one connection.

Each function runs inside a transaction the caller holds (broker/store/postgres.py opens it).
Tables: migrations/postgresql/0002_subscriptions.sql, the same as SQLite's.

Replicas share one database, so what SQLite gets from its single writer is asked of row locks
here: a subscription's edit locks its row (FOR UPDATE), the periodic tick is one conditional
UPDATE (the loser re-reads the winner's row and matches nothing), and writes owing throttled
notifications lock the subscription's delivery row while they pick a due time, so two replicas
never give a burst the same window.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import asyncpg
import orjson

from broker.store.protocol import EntityWrite, SubscriptionEdit, SubscriptionRow, WriteObserver
from broker.store.sqlite import CommitFailed
from broker.subscriptions.outbox import (
    PlannedNotification,
    PlannedWrite,
    change_to_json,
    draft_items_to_json,
)
from broker.subscriptions.schedule import instant
from broker.subscriptions.subscription import DeliveryState

T = TypeVar("T")

_NOW_TEXT = "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
_ROW_COLUMNS = ("s.tenant, s.id, s.record, d.times_sent, d.times_failed, d.last_notification, "
                "d.last_success, d.last_failure, d.periodic_last")
_FROM = ("FROM subscriptions s LEFT JOIN subscription_delivery d "
         "ON d.tenant = s.tenant AND d.subscription_id = s.id")


def _iso(seconds: float | None) -> str | None:
    return instant(seconds) if seconds is not None else None


def _row(r: Sequence[Any]) -> SubscriptionRow:
    delivery = DeliveryState(r[3] or 0, r[4] or 0, _iso(r[5]), _iso(r[6]), _iso(r[7]))
    return SubscriptionRow(r[0], r[1], orjson.loads(r[2]), delivery, r[8])


async def version(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT version FROM subscriptions_version WHERE one = 1"))


async def _bump(conn: asyncpg.Connection) -> None:
    await conn.execute("UPDATE subscriptions_version SET version = version + 1 WHERE one = 1")


async def create(conn: asyncpg.Connection, tenant: str, sub_id: str,
                 record: dict[str, Any]) -> bool:
    await conn.execute(f"INSERT INTO tenants VALUES ($1, {_NOW_TEXT}) ON CONFLICT DO NOTHING",
                       tenant)
    seq = await conn.fetchval(
        "INSERT INTO subscriptions (tenant, id, record) VALUES ($1, $2, $3) "
        "ON CONFLICT (tenant, id) DO NOTHING RETURNING seq",
        tenant, sub_id, orjson.dumps(record).decode())
    if seq is None:
        return False
    # A leftover row (none should be: delete removes it) must not carry counts over.
    await conn.execute(
        "INSERT INTO subscription_delivery (tenant, subscription_id) VALUES ($1, $2) "
        "ON CONFLICT (tenant, subscription_id) DO UPDATE SET times_sent = 0, "
        "times_failed = 0, last_notification = NULL, last_success = NULL, "
        "last_failure = NULL, periodic_last = NULL", tenant, sub_id)
    await _bump(conn)
    return True


async def get(conn: asyncpg.Connection, tenant: str, sub_id: str) -> SubscriptionRow | None:
    r = await conn.fetchrow(f"SELECT {_ROW_COLUMNS} {_FROM} WHERE s.tenant = $1 AND s.id = $2",
                            tenant, sub_id)
    return _row(r) if r is not None else None


async def page(conn: asyncpg.Connection, tenant: str, limit: int,
               offset: int) -> tuple[list[SubscriptionRow], int]:
    """Inside one snapshot (the caller's repeatable-read transaction): page and count agree."""
    rows = [_row(r) for r in await conn.fetch(
        f"SELECT {_ROW_COLUMNS} {_FROM} WHERE s.tenant = $1 ORDER BY s.seq "
        "LIMIT $2 OFFSET $3", tenant, limit, offset)]
    total = await conn.fetchval("SELECT count(*) FROM subscriptions WHERE tenant = $1", tenant)
    return rows, int(total)


async def every(conn: asyncpg.Connection) -> tuple[int, list[SubscriptionRow]]:
    """Every tenant's subscriptions and the version they are of, read by one statement (one
    snapshot even in a read-committed write transaction)."""
    found = await conn.fetch(
        f"SELECT v.version, {_ROW_COLUMNS} FROM subscriptions_version v "
        f"LEFT JOIN (subscriptions s LEFT JOIN subscription_delivery d "
        f"           ON d.tenant = s.tenant AND d.subscription_id = s.id) ON true "
        f"WHERE v.one = 1 ORDER BY s.seq")
    return int(found[0][0]), [_row(tuple(r)[1:]) for r in found if r[1] is not None]


async def update(conn: asyncpg.Connection, tenant: str, sub_id: str,
                 edit: SubscriptionEdit) -> dict[str, Any] | None:
    # FOR UPDATE: two replicas patching one subscription apply their edits one after the other.
    r = await conn.fetchrow("SELECT seq, record FROM subscriptions WHERE tenant = $1 AND "
                            "id = $2 FOR UPDATE", tenant, sub_id)
    if r is None:
        return None
    new = edit(orjson.loads(r[1]))
    await conn.execute("UPDATE subscriptions SET record = $1 WHERE seq = $2",
                       orjson.dumps(new).decode(), r[0])
    await _bump(conn)
    return new


async def delete(conn: asyncpg.Connection, tenant: str, sub_id: str) -> bool:
    status = await conn.execute("DELETE FROM subscriptions WHERE tenant = $1 AND id = $2",
                                tenant, sub_id)
    if status == "DELETE 0":
        return False
    # Outbox rows (in id order, as the outbox's several-row statements), then the delivery
    # row, then changes: the order in which the outbox's outcomes lock them
    # (cetate_outbox_remove), so the two never deadlock. A dispatcher's
    # later outcome for a row deleted here finds it gone and counts nothing.
    held = await conn.fetch(
        "WITH gone AS (DELETE FROM notification_outbox WHERE id IN ("
        "  SELECT id FROM notification_outbox WHERE tenant = $1 AND subscription_id = $2 "
        "  ORDER BY id FOR UPDATE) RETURNING change_id) "
        "SELECT change_id, count(*) FROM gone WHERE change_id IS NOT NULL "
        "GROUP BY change_id ORDER BY change_id", tenant, sub_id)
    await conn.execute("DELETE FROM subscription_delivery WHERE tenant = $1 AND "
                       "subscription_id = $2", tenant, sub_id)
    if held:
        await release_changes(conn, [r[0] for r in held], [r[1] for r in held])
    await _bump(conn)
    return True


async def release_changes(conn: asyncpg.Connection, change_ids: Sequence[int],
                          counts: Sequence[int]) -> None:
    """These many outbox rows no longer point at these changes; each goes when none does."""
    # Two statements, not one with a CTE: the DELETE must see the UPDATE's result, and a
    # concurrent release of the same change waits on the row lock and decrements after us.
    done = await conn.fetch(
        "UPDATE notification_changes c SET refs = c.refs - u.n "
        "FROM unnest($1::bigint[], $2::int[]) AS u(id, n) WHERE c.id = u.id "
        "RETURNING c.id, c.refs", list(change_ids), list(counts))
    gone = [r[0] for r in done if r[1] <= 0]
    if gone:
        await conn.execute("DELETE FROM notification_changes WHERE id = ANY($1::bigint[])",
                           gone)


async def _dues(conn: asyncpg.Connection, notifications: Sequence[PlannedNotification],
                now: float) -> list[float]:
    """Clause 5.2.12 throttling: one notification per window after the latest pending one,
    else after the last one sent, so a burst is spread out, never dropped."""
    throttled = sorted({(n.tenant, n.subscription_id) for n in notifications
                        if n.throttling is not None})
    if not throttled:
        return [now] * len(notifications)
    tenants, ids = [t for t, _ in throttled], [s for _, s in throttled]
    # Lock first, then read in a statement of its own: under read committed it sees the rows
    # a concurrent writer of the same subscription committed while we waited for its lock.
    await conn.execute(
        "SELECT 1 FROM subscription_delivery d JOIN unnest($1::text[], $2::text[]) "
        "AS k(tenant, sub) ON d.tenant = k.tenant AND d.subscription_id = k.sub "
        "ORDER BY d.tenant, d.subscription_id FOR UPDATE OF d", tenants, ids)
    found = await conn.fetch(
        "SELECT k.tenant, k.sub, coalesce("
        "  (SELECT max(o.due) FROM notification_outbox o WHERE o.tenant = k.tenant AND "
        "   o.subscription_id = k.sub AND o.state = 'pending'), "
        "  (SELECT d.last_notification FROM subscription_delivery d WHERE d.tenant = k.tenant "
        "   AND d.subscription_id = k.sub)) "
        "FROM unnest($1::text[], $2::text[]) AS k(tenant, sub)", tenants, ids)
    last: dict[tuple[str, str], float | None] = {(r[0], r[1]): r[2] for r in found}
    dues = []
    for n in notifications:
        if n.throttling is None:
            dues.append(now)
            continue
        key = (n.tenant, n.subscription_id)
        previous = last.get(key)
        due = now if previous is None else max(now, previous + n.throttling)
        last[key] = due  # the next row of this subscription in this write goes a window later
        dues.append(due)
    return dues


async def insert_planned(conn: asyncpg.Connection, planned: PlannedWrite, now: float) -> None:
    """The write's changes once, then one outbox row per notification pointing into them."""
    notifications = planned.notifications
    if not notifications:
        return
    dues = await _dues(conn, notifications, now)
    await conn.execute(_INSERT_PLANNED,
                       orjson.dumps([change_to_json(ch) for ch in planned.changes]).decode(),
                       len(notifications), [n.tenant for n in notifications],
                       [n.subscription_id for n in notifications],
                       [n.notification_id for n in notifications],
                       [n.endpoint_key for n in notifications],
                       [orjson.dumps(draft_items_to_json(n.items)).decode()
                        for n in notifications], dues, now)


# One round trip for the changes and every row pointing into them.
_INSERT_PLANNED = """
WITH change AS (INSERT INTO notification_changes (body, refs) VALUES ($1, $2) RETURNING id)
INSERT INTO notification_outbox (tenant, subscription_id, notification_id, endpoint_key, draft,
                                 change_id, created_at, due)
SELECT t, s, n, k, d, (SELECT id FROM change), $9, due
FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::json[], $8::float8[])
     AS u(t, s, n, k, d, due)
"""


async def enqueue_periodic(conn: asyncpg.Connection, tenant: str, sub_id: str,
                           expected_last: float | None, now: float,
                           planned: PlannedWrite | None) -> bool:
    # A racing replica's UPDATE waits on our row lock, then re-checks the condition on our
    # committed row and matches nothing: one winner per tick.
    status = await conn.execute(
        "UPDATE subscription_delivery SET periodic_last = $3 WHERE tenant = $1 AND "
        "subscription_id = $2 AND periodic_last IS NOT DISTINCT FROM $4::float8",
        tenant, sub_id, now, expected_last)
    if status == "UPDATE 0":
        return False
    if planned is not None:
        await insert_planned(conn, planned, now)
    return True


async def observe(conn: asyncpg.Connection, observer: WriteObserver,
                  writes: Sequence[EntityWrite]) -> None:
    """The write observer's turn, in the write's transaction before COMMIT (protocol.py
    WriteObserver). A failure of the observer fails the write (CommitFailed): a write is
    never acknowledged without the notifications it owes."""
    current = await version(conn)
    rows: tuple[int, list[SubscriptionRow]] | None = None
    if _planning(lambda: observer.stale(current)):
        rows = await every(conn)
    now = time.time()

    def plan() -> PlannedWrite | None:
        # No await between load and plan: this plan sees subscriptions at least as new as the
        # version this transaction read, whatever other writes of this process load meanwhile.
        if rows is not None:
            observer.load(*rows)
        return observer.plan(writes, now)

    planned = _planning(plan)
    if planned is not None:
        await insert_planned(conn, planned, now)


def _planning(step: Callable[[], T]) -> T:
    try:
        return step()
    except Exception as exc:
        raise CommitFailed(f"The store could not plan the write's notifications: {exc}"
                           ) from exc
