"""Subscriptions and the write path's outbox rows on SQLite: statements on one connection.

Each function runs inside a transaction the caller holds (the writer's group transaction, or a
reader's snapshot); broker/store/sqlite.py queues them. Tables: migrations/sqlite/
0003_subscriptions.sql.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from broker.store.protocol import SubscriptionEdit, SubscriptionRow
from broker.subscriptions.outbox import PlannedWrite, change_to_json, draft_items_to_json
from broker.subscriptions.schedule import instant
from broker.subscriptions.subscription import DeliveryState

_ROW_COLUMNS = ("s.tenant, s.id, s.record, d.times_sent, d.times_failed, d.last_notification, "
                "d.last_success, d.last_failure, d.periodic_last")
_FROM = ("FROM subscriptions s LEFT JOIN subscription_delivery d "
         "ON d.tenant = s.tenant AND d.subscription_id = s.id")


def _iso(seconds: float | None) -> str | None:
    return instant(seconds) if seconds is not None else None


def _row(r: Sequence[Any]) -> SubscriptionRow:
    delivery = DeliveryState(r[3] or 0, r[4] or 0, _iso(r[5]), _iso(r[6]), _iso(r[7]))
    return SubscriptionRow(r[0], r[1], orjson.loads(r[2]), delivery, r[8])


def version(c: sqlite3.Connection) -> int:
    return int(c.execute("SELECT version FROM subscriptions_version WHERE one = 1").fetchone()[0])


def _bump(c: sqlite3.Connection) -> None:
    c.execute("UPDATE subscriptions_version SET version = version + 1 WHERE one = 1")


def create(c: sqlite3.Connection, tenant: str, sub_id: str, record: dict[str, Any]) -> bool:
    inserted = c.execute("INSERT OR IGNORE INTO subscriptions (tenant, id, record) "
                         "VALUES (?, ?, ?)",
                         (tenant, sub_id, orjson.dumps(record).decode())).rowcount
    if not inserted:
        return False
    c.execute("INSERT OR IGNORE INTO tenants (name, created_at) "
              "VALUES (?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))", (tenant,))
    # A leftover row (none should be: delete removes it) must not carry counts over.
    c.execute("INSERT OR REPLACE INTO subscription_delivery (tenant, subscription_id) "
              "VALUES (?, ?)", (tenant, sub_id))
    _bump(c)
    return True


def get(c: sqlite3.Connection, tenant: str, sub_id: str) -> SubscriptionRow | None:
    r = c.execute(f"SELECT {_ROW_COLUMNS} {_FROM} WHERE s.tenant = ? AND s.id = ?",
                  (tenant, sub_id)).fetchone()
    return _row(r) if r else None


def page(c: sqlite3.Connection, tenant: str, limit: int,
         offset: int) -> tuple[list[SubscriptionRow], int]:
    rows = [_row(r) for r in c.execute(
        f"SELECT {_ROW_COLUMNS} {_FROM} WHERE s.tenant = ? ORDER BY s.seq LIMIT ? OFFSET ?",
        (tenant, limit, offset))]
    (total,) = c.execute("SELECT count(*) FROM subscriptions WHERE tenant = ?",
                         (tenant,)).fetchone()
    return rows, int(total)


def every(c: sqlite3.Connection) -> list[SubscriptionRow]:
    return [_row(r) for r in c.execute(f"SELECT {_ROW_COLUMNS} {_FROM} ORDER BY s.seq")]


def update(c: sqlite3.Connection, tenant: str, sub_id: str,
           edit: SubscriptionEdit) -> dict[str, Any] | None:
    r = c.execute("SELECT seq, record FROM subscriptions WHERE tenant = ? AND id = ?",
                  (tenant, sub_id)).fetchone()
    if r is None:
        return None
    new = edit(orjson.loads(r[1]))
    c.execute("UPDATE subscriptions SET record = ? WHERE seq = ?",
              (orjson.dumps(new).decode(), r[0]))
    _bump(c)
    return new


def delete(c: sqlite3.Connection, tenant: str, sub_id: str) -> bool:
    if not c.execute("DELETE FROM subscriptions WHERE tenant = ? AND id = ?",
                     (tenant, sub_id)).rowcount:
        return False
    c.execute("DELETE FROM subscription_delivery WHERE tenant = ? AND subscription_id = ?",
              (tenant, sub_id))
    held = c.execute("SELECT change_id, count(*) FROM notification_outbox "
                     "WHERE tenant = ? AND subscription_id = ? AND change_id IS NOT NULL "
                     "GROUP BY change_id", (tenant, sub_id)).fetchall()
    c.execute("DELETE FROM notification_outbox WHERE tenant = ? AND subscription_id = ?",
              (tenant, sub_id))
    for change_id, count in held:
        release_change(c, change_id, count)
    _bump(c)
    return True


def release_change(c: sqlite3.Connection, change_id: int | None, count: int = 1) -> None:
    """`count` outbox rows no longer point at this change; it goes when none does."""
    if change_id is None:
        return
    c.execute("UPDATE notification_changes SET refs = refs - ? WHERE id = ?", (count, change_id))
    c.execute("DELETE FROM notification_changes WHERE id = ? AND refs <= 0", (change_id,))


def _throttled_due(c: sqlite3.Connection, tenant: str, sub_id: str, throttling: float,
                   now: float) -> float:
    """Clause 5.2.12 throttling: one notification per window after the latest pending one, else
    after the last one sent, so a burst is spread out, never dropped."""
    (last,) = c.execute("SELECT max(due) FROM notification_outbox WHERE tenant = ? AND "
                        "subscription_id = ? AND state = 'pending'", (tenant, sub_id)).fetchone()
    if last is None:
        found = c.execute("SELECT last_notification FROM subscription_delivery WHERE "
                          "tenant = ? AND subscription_id = ?", (tenant, sub_id)).fetchone()
        last = found[0] if found else None
    return now if last is None else max(now, float(last) + throttling)


def insert_planned(c: sqlite3.Connection, planned: PlannedWrite, now: float) -> None:
    """The write's changes once, then one outbox row per notification pointing into them."""
    if not planned.notifications:
        return
    change_id = c.execute(
        "INSERT INTO notification_changes (body, refs) VALUES (?, ?)",
        (orjson.dumps([change_to_json(ch) for ch in planned.changes]).decode(),
         len(planned.notifications))).lastrowid
    for n in planned.notifications:
        due = now if n.throttling is None else _throttled_due(
            c, n.tenant, n.subscription_id, n.throttling, now)
        c.execute("INSERT INTO notification_outbox (tenant, subscription_id, notification_id, "
                  "endpoint_key, draft, change_id, created_at, due) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                  (n.tenant, n.subscription_id, n.notification_id, n.endpoint_key,
                   orjson.dumps(draft_items_to_json(n.items)).decode(), change_id, now, due))


def enqueue_periodic(c: sqlite3.Connection, tenant: str, sub_id: str,
                     expected_last: float | None, now: float,
                     planned: PlannedWrite | None) -> bool:
    # `IS` compares NULL too: the first tick expects no previous one.
    took = c.execute("UPDATE subscription_delivery SET periodic_last = ? WHERE tenant = ? AND "
                     "subscription_id = ? AND periodic_last IS ?",
                     (now, tenant, sub_id, expected_last)).rowcount
    if not took:
        return False
    if planned is not None:
        insert_planned(c, planned, now)
    return True
