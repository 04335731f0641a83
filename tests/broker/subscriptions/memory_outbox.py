"""An in-memory Outbox for the dispatcher's tests: the protocol's semantics in a few lines
(the store engines implement it with tables; see broker/subscriptions/outbox.py)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from broker.subscriptions.notification import Outgoing
from broker.subscriptions.outbox import PendingNotification
from broker.subscriptions.sender import Result


@dataclass
class Row:
    pending: PendingNotification
    lease_until: float | None = None
    state: str = "pending"
    last_error: str = ""


@dataclass
class Counters:
    times_sent: int = 0
    times_failed: int = 0


@dataclass
class MemoryOutbox:
    rows: dict[int, Row] = field(default_factory=dict)
    counters: dict[str, Counters] = field(default_factory=dict)
    delivered_ids: list[str] = field(default_factory=list)
    next_id: int = 1

    def add(self, out: Outgoing, due: float, created_at: float = 0.0) -> int:
        row_id = self.next_id
        self.next_id += 1
        self.rows[row_id] = Row(PendingNotification(row_id, out, due, created_at))
        return row_id

    def pending(self) -> list[Row]:
        return [r for r in self.rows.values() if r.state == "pending"]

    def failed_rows(self) -> list[Row]:
        return [r for r in self.rows.values() if r.state == "failed"]

    def _counters(self, row: PendingNotification) -> Counters:
        return self.counters.setdefault(row.subscription_id, Counters())

    async def claim(self, now: float, limit: int, lease: float,
                    skip: frozenset[str] = frozenset()) -> list[PendingNotification]:
        due = sorted((r for r in self.pending()
                      if r.pending.due <= now
                      and (r.lease_until is None or r.lease_until < now)
                      and r.pending.endpoint_key not in skip),
                     key=lambda r: r.pending.due)[:limit]
        for row in due:
            row.lease_until = now + lease
        return [r.pending for r in due]

    async def delivered(self, row: PendingNotification, at: float, result: Result) -> None:
        self.rows.pop(row.row_id, None)
        self.delivered_ids.append(row.notification_id)
        self._counters(row).times_sent += 1

    async def reschedule(self, row: PendingNotification, due: float, at: float,
                         result: Result) -> None:
        stored = self.rows[row.row_id]
        first = row.first_attempt_at if row.first_attempt_at is not None else at
        stored.pending = replace(row, due=due, attempt=row.attempt + 1, first_attempt_at=first)
        stored.lease_until = None
        stored.last_error = result.detail
        self._counters(row).times_failed += 1

    async def failed(self, row: PendingNotification, at: float, result: Result) -> None:
        stored = self.rows[row.row_id]
        stored.state = "failed"
        stored.lease_until = None
        stored.last_error = result.detail
        self._counters(row).times_failed += 1

    async def postpone(self, row: PendingNotification, due: float) -> None:
        stored = self.rows[row.row_id]
        stored.pending = replace(row, due=due)
        stored.lease_until = None

    async def discard(self, row: PendingNotification) -> None:
        self.rows.pop(row.row_id, None)

    async def renew(self, now: float, lease: float) -> None:
        for row in self.rows.values():
            if row.lease_until is not None and row.state == "pending":
                row.lease_until = now + lease

    async def expedite(self, endpoint_key: str, now: float) -> None:
        for row in self.pending():
            p = row.pending
            if p.endpoint_key == endpoint_key and p.attempt > 0 and p.due > now \
                    and (row.lease_until is None or row.lease_until < now):
                row.pending = replace(p, due=now)
