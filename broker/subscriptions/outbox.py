"""The outbox: what the dispatcher needs of a store to deliver notifications at least once.

A store engine implements `Outbox` (next to broker.store.protocol.Store). The write path records
each notification in the same transaction as the change that caused it; the dispatcher
(broker/subscriptions/dispatcher.py) claims due rows, sends them and reports each outcome back
here, where the engine updates the row and the subscription's delivery state (timesSent,
timesFailed, lastNotification, lastSuccess, lastFailure: subscription.DeliveryState) in one
transaction.

Times are epoch seconds (float). Every method is safe to call from several broker processes
sharing one database (ARCHITECTURE.md invariant 4): a row is leased by one claimer at a time.

## The intended tables (SQL for SQLite; PostgreSQL alike, with BIGSERIAL and JSONB)

    CREATE TABLE notification_outbox (
      id               INTEGER PRIMARY KEY,
      tenant           TEXT NOT NULL,
      subscription_id  TEXT NOT NULL,
      notification_id  TEXT NOT NULL UNIQUE,  -- urn:ngsi-ld:Notification:<uuid>, kept on retry
      endpoint_key     TEXT NOT NULL,         -- scheme://host:port: per-receiver isolation
      message          TEXT NOT NULL,         -- notification.Outgoing.to_json()
      created_at       REAL NOT NULL,
      due              REAL NOT NULL,         -- not sent before (throttling, backoff, cooldown)
      attempt          INTEGER NOT NULL DEFAULT 0,  -- failed attempts so far
      first_attempt_at REAL,
      lease_owner      TEXT,                  -- the claiming dispatcher
      lease_until      REAL,                  -- the row goes back to the pool after this
      state            TEXT NOT NULL DEFAULT 'pending',  -- 'pending' | 'failed'
      last_error       TEXT
    );
    CREATE INDEX notification_outbox_due ON notification_outbox (state, due);

    CREATE TABLE subscription_delivery (      -- DeliveryState, one row per subscription
      tenant TEXT NOT NULL, subscription_id TEXT NOT NULL,
      times_sent INTEGER NOT NULL DEFAULT 0, times_failed INTEGER NOT NULL DEFAULT 0,
      last_notification TEXT, last_success TEXT, last_failure TEXT,
      PRIMARY KEY (tenant, subscription_id)
    );

A delivered row is deleted; a row given up stays with state 'failed' (for an operator to read,
replay or purge). Deleting a subscription deletes its pending rows in the same transaction.

Claiming on PostgreSQL (replicas never take the same row while its lease holds):

    UPDATE notification_outbox SET lease_owner = $owner, lease_until = $now + $lease
    WHERE id IN (SELECT id FROM notification_outbox
                 WHERE state = 'pending' AND due <= $now
                   AND (lease_until IS NULL OR lease_until < $now)
                   AND endpoint_key <> ALL($skip)
                 ORDER BY due LIMIT $limit FOR UPDATE SKIP LOCKED)
    RETURNING *;

SQLite has one writer at a time: the same UPDATE inside BEGIN IMMEDIATE does it.

A lease that runs out (the dispatcher died, or a receiver hung past the lease) puts the row back
in the pool and another claimer sends it again: at least once, never at most once. The lease is
therefore longer than a queue of deliveries to one receiver can take (dispatcher.Limits).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from broker.subscriptions.notification import Outgoing
from broker.subscriptions.sender import Result


@dataclass(frozen=True, slots=True)
class PendingNotification:
    """A claimed outbox row."""

    row_id: int
    outgoing: Outgoing
    due: float
    created_at: float
    attempt: int = 0  # failed attempts so far
    first_attempt_at: float | None = None

    @property
    def endpoint_key(self) -> str:
        return self.outgoing.endpoint_key


class Outbox(Protocol):
    """The store's side of notification delivery. Each method is one transaction."""

    async def claim(self, now: float, limit: int, lease: float,
                    skip: frozenset[str] = frozenset()) -> list[PendingNotification]:
        """Lease up to `limit` pending rows that are due (due <= now) and not leased, oldest due
        first, none of an endpoint_key in `skip` (receivers whose queue is full)."""
        ...

    async def delivered(self, row: PendingNotification, at: float, result: Result) -> None:
        """The row was delivered: delete it; timesSent += 1, lastNotification = lastSuccess =
        at."""
        ...

    async def reschedule(self, row: PendingNotification, due: float, at: float,
                         result: Result) -> None:
        """A failed attempt to retry: attempt += 1, first_attempt_at set if unset, due, lease
        released, last_error; timesFailed += 1, lastNotification = lastFailure = at."""
        ...

    async def failed(self, row: PendingNotification, at: float, result: Result) -> None:
        """Given up (a permanent failure, or backoff gave up): state 'failed', lease released,
        last_error; timesFailed += 1, lastNotification = lastFailure = at."""
        ...

    async def postpone(self, row: PendingNotification, due: float) -> None:
        """Not attempted (the endpoint is cooling down, or the dispatcher is stopping): release
        the lease with a new due time; nothing counted."""
        ...
