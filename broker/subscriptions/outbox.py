"""The outbox: what the dispatcher needs of a store to deliver notifications at least once.

A store engine implements `Outbox` (next to broker.store.protocol.Store). The write path records
each notification in the same transaction as the change that caused it; the dispatcher
(broker/subscriptions/dispatcher.py) claims due rows, sends them and reports each outcome back
here, where the engine updates the row and the subscription's delivery state (timesSent,
timesFailed, lastNotification, lastSuccess, lastFailure: subscription.DeliveryState) in one
transaction.

Times are epoch seconds (float). Every method is safe to call from several broker processes
sharing one database (ARCHITECTURE.md invariant 4): a row is leased by one claimer at a time.

## Two kinds of row

A row holds either a prepared message (`Outgoing`, all a sender needs) or, as the write path
records them, a `Draft`: which subscription, which triggers, and the entity changes (before and
after, in internal form) that fired it. A draft is rendered at delivery time
(broker/subscriptions/service.py): the subscription's @context is resolved then (I/O that has
no place inside a write transaction), and the owner's policy decision applies to what is sent
at the time it is sent (issue 8). The changes of one write are stored once
(`notification_changes`), however many subscriptions they fire.

## The tables (SQL for SQLite; PostgreSQL alike, with BIGSERIAL and JSONB)

    CREATE TABLE notification_outbox (
      id               INTEGER PRIMARY KEY,
      tenant           TEXT NOT NULL,
      subscription_id  TEXT NOT NULL,
      notification_id  TEXT NOT NULL UNIQUE,  -- urn:ngsi-ld:Notification:<uuid>, kept on retry
      endpoint_key     TEXT NOT NULL,         -- scheme://host:port: per-receiver isolation
      message          TEXT,                  -- Outgoing.to_json(), or NULL for a draft
      draft            TEXT,                  -- Draft items [[trigger, change index], ...]
      change_id        INTEGER REFERENCES notification_changes (id),
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

    CREATE TABLE notification_changes (         -- the changes of one write, stored once
      id INTEGER PRIMARY KEY, body TEXT NOT NULL,  -- [change_to_json(c), ...]
      refs INTEGER NOT NULL                       -- outbox rows still pointing here
    );

    CREATE TABLE subscription_delivery (      -- DeliveryState, one row per subscription
      tenant TEXT NOT NULL, subscription_id TEXT NOT NULL,
      times_sent INTEGER NOT NULL DEFAULT 0, times_failed INTEGER NOT NULL DEFAULT 0,
      last_notification TEXT, last_success TEXT, last_failure TEXT,
      PRIMARY KEY (tenant, subscription_id)
    );

A delivered (or discarded) row is deleted, and its changes with it once no row refers to them
(refs); a row given up stays with state 'failed' (for an operator to read,
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

A lease that runs out (the dispatcher died) puts the row back in the pool and another claimer
sends it again: at least once, never at most once. A live dispatcher renews the leases it holds
(`renew`) every third of a lease, so a lease is short (dispatcher.Limits: 30 s) and the rows of
a process killed mid-delivery are sent again by the next one within that time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from broker.subscriptions.match import Change
from broker.subscriptions.notification import Outgoing
from broker.subscriptions.sender import Result


@dataclass(frozen=True, slots=True)
class DraftItem:
    trigger: str  # what fired (match._ORDER), or "timeInterval" for a periodic notification
    change: Change


@dataclass(frozen=True, slots=True)
class Screening:
    """What the delivery-time filter decided for a draft (broker/http/access.py): the rules
    that allowed what is sent, and the attributes masked or pseudonymised in it."""

    rules: tuple[str, ...]
    masked: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Draft:
    """A notification recorded by the write path, rendered when it is delivered."""

    notification_id: str  # made once, kept on every retry (receivers drop duplicates by it)
    subscription_id: str
    tenant: str
    items: tuple[DraftItem, ...]
    # set by the delivery-time filter, for the audit entry of the notification; never stored
    screening: Screening | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class PendingNotification:
    """A claimed outbox row: a prepared message, or a draft to render first."""

    row_id: int
    outgoing: Outgoing | None
    due: float
    created_at: float
    attempt: int = 0  # failed attempts so far
    first_attempt_at: float | None = None
    draft: Draft | None = None
    key: str = ""  # the endpoint key of a draft (scheme://host:port), stored with the row

    @property
    def endpoint_key(self) -> str:
        return self.outgoing.endpoint_key if self.outgoing is not None else self.key

    @property
    def notification_id(self) -> str:
        if self.outgoing is not None:
            return self.outgoing.notification_id
        assert self.draft is not None
        return self.draft.notification_id

    @property
    def subscription_id(self) -> str:
        if self.outgoing is not None:
            return self.outgoing.subscription_id
        assert self.draft is not None
        return self.draft.subscription_id


# -- what the write path records ------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PlannedNotification:
    """One outbox row to insert, its draft's items pointing into PlannedWrite.changes."""

    tenant: str
    subscription_id: str
    notification_id: str
    endpoint_key: str
    items: tuple[tuple[str, int], ...]  # (trigger, index into PlannedWrite.changes)
    # Clause 5.2.12 throttling, seconds: the engine sets due = max(now, last + throttling),
    # `last` being the latest due time among the subscription's pending rows, else its last
    # notification (subscription_delivery), so a burst is spread one per window, never dropped.
    throttling: float | None = None


@dataclass(frozen=True, slots=True)
class PlannedWrite:
    """What one write transaction owes the subscriptions: changes stored once, rows pointing
    into them. The engine inserts both in the transaction of the write."""

    changes: tuple[Change, ...]
    notifications: tuple[PlannedNotification, ...]


def _trimmed_before(change: Change) -> dict[str, Any] | None:
    """`before` as much as rendering needs: the whole entity for a deletion, else only the
    attributes the change touched (previous values, deleted attributes)."""
    before = change.before
    if before is None or change.after is None:
        return before
    return {**before, "attrs": {a: v for a, v in before["attrs"].items() if a in change.changed}}


def change_to_json(change: Change) -> dict[str, Any]:
    """A change as notification_changes.body keeps it (render needs no more)."""
    return {"tenant": change.tenant, "before": _trimmed_before(change), "after": change.after,
            "changed": sorted(change.changed), "now": change.now}


def change_from_json(raw: Mapping[str, Any]) -> Change:
    return Change(raw["tenant"], raw["before"], raw["after"], frozenset(raw["changed"]),
                  raw["now"])


def draft_items_to_json(items: Sequence[tuple[str, int]]) -> list[list[Any]]:
    return [[trigger, index] for trigger, index in items]


def draft_from_rows(notification_id: str, subscription_id: str, tenant: str,
                    items: Sequence[Sequence[Any]], changes: Sequence[Mapping[str, Any]]
                    ) -> Draft:
    """The Draft of a claimed row: its items (draft column) over its write's changes (the
    notification_changes body), both as JSON values."""
    return Draft(notification_id, subscription_id, tenant,
                 tuple(DraftItem(str(trigger), change_from_json(changes[int(index)]))
                       for trigger, index in items))


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

    async def discard(self, row: PendingNotification) -> None:
        """Nothing to send after all (the subscription is gone or paused, or the owner may no
        longer see any of the data): delete the row; nothing counted."""
        ...

    async def renew(self, now: float, lease: float) -> None:
        """Extend to now + lease the lease of every row this outbox object (this process)
        holds. The dispatcher renews while it lives, so leases can be short: the rows of a
        process that died come back within one lease."""
        ...

    async def expedite(self, endpoint_key: str, now: float) -> None:
        """The receiver is back (a delivery to it just succeeded): make its pending, not
        leased, retried rows (attempt > 0) due now instead of at their own backoff time."""
        ...
