"""Once-only work among replicas: named leases with expiry, in the shared database.

Work that must happen once however many broker processes run (delivering the outbox, periodic
notifications, retention purges) is done by whoever holds its lease. A holder renews before the
lease expires; a holder that dies simply stops renewing, and once the lease expires the next
replica to ask gets it, so the work moves on without anyone noticing the death. Expiry is
measured by the database's clock, never a host's.

Every change of holder increments the lease's fencing `token`; work that writes under a lease
can carry it (`WHERE token = $n`) so a holder that stalled past its expiry cannot overwrite its
successor's work.

For work split into rows (an outbox), claim rows instead of a whole queue, in one statement:

    UPDATE outbox SET claimed_by = $1, claimed_until = now() + $2 * interval '1 second'
    WHERE id IN (SELECT id FROM outbox WHERE claimed_until < now() ORDER BY id
                 LIMIT $3 FOR UPDATE SKIP LOCKED)
    RETURNING ...

SKIP LOCKED lets replicas claim disjoint rows at the same time without waiting on each other.
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import Protocol

import asyncpg

MIN_TTL_S = 0.1  # a shorter lease would expire before a round trip returns


class Leases(Protocol):
    """Named leases, each held by at most one holder at a time."""

    async def acquire(self, name: str, holder: str, ttl_s: float) -> int | None:
        """Take or renew the lease for ttl_s seconds; its fencing token, or None if another
        holder has it and it has not expired."""

    async def release(self, name: str, holder: str) -> bool:
        """Give the lease up now (if still ours); whether we held it."""

    async def holder(self, name: str) -> str | None:
        """Who holds the lease now, if anyone."""


def holder_id() -> str:
    """A name for this process, unique across hosts and restarts: host, pid and a nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


_ACQUIRE = """
INSERT INTO leases AS l (name, holder, expires_at)
VALUES ($1, $2, now() + make_interval(secs => $3))
ON CONFLICT (name) DO UPDATE
    SET holder = excluded.holder, expires_at = excluded.expires_at,
        token = l.token + (l.holder <> excluded.holder)::int
    WHERE l.holder = excluded.holder OR l.expires_at <= now()
RETURNING token
"""


class PostgresLeases:
    """Leases in the `leases` table of a PostgreSQL store (migrations/postgresql)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def acquire(self, name: str, holder: str, ttl_s: float) -> int | None:
        if ttl_s < MIN_TTL_S:
            raise ValueError(f"a lease lasts at least {MIN_TTL_S} s")
        # One statement, so one atomic decision: the row lock taken by ON CONFLICT serialises
        # two replicas asking at once, and the loser's WHERE sees the winner's fresh expiry.
        token = await self.pool.fetchval(_ACQUIRE, name, holder, float(ttl_s))
        return int(token) if token is not None else None

    async def release(self, name: str, holder: str) -> bool:
        status = await self.pool.execute(
            "UPDATE leases SET expires_at = '-infinity' WHERE name = $1 AND holder = $2 "
            "AND expires_at > now()", name, holder)
        return bool(status != "UPDATE 0")

    async def holder(self, name: str) -> str | None:
        found = await self.pool.fetchval(
            "SELECT holder FROM leases WHERE name = $1 AND expires_at > now()", name)
        return str(found) if found is not None else None
