"""The retention purge (GDPR art. 5(1)(e), storage limitation): delete every entity whose type's
retention period (contracts/types/, `retention`) has run out since its last change.

I/O-light: it speaks only the store protocol (broker/store/protocol.py) and is told the time, the
tenants and what to do with each batch removed (the broker records it in the audit log). Each
entity is deleted by its own atomic mutation that checks the expiry again inside the write
transaction, so an entity updated between the page read and the delete is kept. Deletes go
through the store's write path, so subscribers get their entityDeleted notifications.

Costs, honestly: the store has no "entities last changed before T" query, so the purge pages
through each contracted type in each tenant (query_entities by type, PAGE_SIZE at a time) and
tests modifiedAt in Python: O(entities of the contracted types) reads per run, once a day.

Which tenants: the store protocol cannot list tenants, so the purge covers the default tenant
and those named in CETATE_PRIVACY_TENANTS (comma separated); tenants that do not exist are
skipped. docs/privacy.md.

One run per interval among replicas: on PostgreSQL whoever holds the `privacy.purge` lease
(broker/store/leases.py) purges; on SQLite (one database file, usually one process) the lock is
a no-op, and two concurrent purges would only both find nothing left to delete.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from broker.query.typeexpr import TypeName
from broker.store.protocol import Entity, EntityQuery, Store
from security.audit.entry import AuditRecord
from security.audit.entry import Principal as AuditPrincipal
from security.privacy.retention import cutoffs, entity_expired, parse_duration

log = logging.getLogger("cetate.privacy")

TENANTS_ENV = "CETATE_PRIVACY_TENANTS"
INTERVAL_ENV = "CETATE_PURGE_INTERVAL"
DEFAULT_INTERVAL_S = 86_400.0  # daily: retention periods are counted in days to years
MIN_INTERVAL_S = 1.0
PAGE_SIZE = 500  # entities read (and deleted) per round trip; bounds one audit entry's ids
LEASE_NAME = "privacy.purge"
PURGE_ACTION = "privacy.purge"  # the audit entry's action


class NoLongerExpired(Exception):
    """Raised inside a delete mutation to abort it: the entity changed since it was read."""


@dataclass(frozen=True)
class PurgedBatch:
    """Entities of one type in one tenant removed (or, in a dry run, that would be)."""

    tenant: str
    type: str  # type IRI
    retention: str
    cutoff: datetime
    ids: tuple[str, ...]


@dataclass
class PurgeReport:
    now: datetime
    dry_run: bool
    batches: list[PurgedBatch] = field(default_factory=list)
    skipped_tenants: list[str] = field(default_factory=list)  # configured but nonexistent

    @property
    def removed(self) -> int:
        return sum(len(b.ids) for b in self.batches)

    def as_json(self) -> dict[str, Any]:
        by_key: dict[tuple[str, str], dict[str, Any]] = {}
        for b in self.batches:
            row = by_key.setdefault((b.tenant, b.type), {
                "tenant": b.tenant, "type": b.type, "retention": b.retention,
                "expiredBefore": _iso(b.cutoff), "ids": []})
            row["ids"].extend(b.ids)
        return {"now": _iso(self.now), "dryRun": self.dry_run, "removed": self.removed,
                "types": list(by_key.values()), "skippedTenants": self.skipped_tenants}


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def tenants_from_env(env: Mapping[str, str] | None = None) -> list[str]:
    """The default tenant and those of CETATE_PRIVACY_TENANTS, in order, once each."""
    env = os.environ if env is None else env
    named = [t.strip() for t in env.get(TENANTS_ENV, "").split(",") if t.strip()]
    return list(dict.fromkeys(["", *named]))


def _seconds(raw: str) -> float:
    if raw.replace(".", "", 1).isdigit():
        return float(raw)
    try:
        d = parse_duration(raw)
    except ValueError:
        raise ValueError(f"{INTERVAL_ENV}={raw!r}: seconds or an ISO 8601 duration "
                         f"(P1D, PT6H)") from None
    if d.years or d.months:
        raise ValueError(f"{INTERVAL_ENV}={raw!r}: use days or less (months vary)")
    return d.days * 86_400 + d.seconds


def interval_from_env(env: Mapping[str, str] | None = None) -> float | None:
    """CETATE_PURGE_INTERVAL in seconds, or an ISO 8601 duration of days/hours (P1D, PT6H);
    None for `off` (no background purge: run `cetate privacy purge` from cron instead)."""
    env = os.environ if env is None else env
    raw = env.get(INTERVAL_ENV, "").strip()
    if not raw:
        return DEFAULT_INTERVAL_S
    if raw.lower() == "off":
        return None
    seconds = _seconds(raw)
    if seconds < MIN_INTERVAL_S:
        raise ValueError(f"{INTERVAL_ENV}={raw!r}: at least {MIN_INTERVAL_S:g} s")
    return seconds


def _delete_if_expired(cut: datetime) -> Callable[[Entity | None], tuple[None, bool]]:
    def mutation(current: Entity | None) -> tuple[None, bool]:
        if current is None:
            return None, False  # gone already: nothing written
        if not entity_expired(current, cut):
            raise NoLongerExpired(current["id"])
        return None, True
    return mutation


async def existing_tenants(store: Store, tenants: Iterable[str]) -> tuple[list[str], list[str]]:
    """(tenants that exist, those that do not), each in the given order."""
    found: list[str] = []
    missing: list[str] = []
    for tenant in dict.fromkeys(tenants):
        (found if tenant == "" or await store.tenant_exists(tenant) else missing).append(tenant)
    return found, missing


async def purge(store: Store, retentions: Mapping[str, str], tenants: Sequence[str],
                now: datetime, *, dry_run: bool = False, page_size: int = PAGE_SIZE,
                on_batch: Callable[[PurgedBatch], Awaitable[None]] | None = None,
                ) -> PurgeReport:
    """Delete the entities expired as of `now`: for each tenant and each type IRI of
    `retentions` ({type IRI: ISO 8601 duration}), those last changed before its cutoff.
    `on_batch` is awaited after each page's deletes (the broker audits them there)."""
    report = PurgeReport(now=now, dry_run=dry_run)
    cut_of = cutoffs(retentions, now)
    present, report.skipped_tenants = await existing_tenants(store, tenants)
    for tenant in present:
        for type_iri in sorted(retentions):
            cut = cut_of[type_iri]
            kept = 0  # entities left before the read position (fresh, or changed meanwhile)
            while True:
                page = await store.query_entities(tenant, EntityQuery(
                    types=TypeName(type_iri), limit=page_size, offset=kept))
                expired = [e["id"] for e in page.entities if entity_expired(e, cut)]
                removed: list[str] = []
                if dry_run:
                    removed = expired
                elif expired:
                    results = await store.apply_many(
                        tenant, [(i, _delete_if_expired(cut)) for i in expired])
                    for entity_id, result in zip(expired, results, strict=True):
                        if result is True:
                            removed.append(entity_id)
                        elif isinstance(result, BaseException) and not isinstance(
                                result, NoLongerExpired):
                            raise result
                if removed:
                    batch = PurgedBatch(tenant, type_iri, retentions[type_iri], cut,
                                        tuple(removed))
                    report.batches.append(batch)
                    if on_batch is not None:
                        await on_batch(batch)
                # What was not deleted stays ahead of the next page's offset.
                kept += len(page.entities) - (0 if dry_run else len(removed))
                if len(page.entities) < page_size:
                    break
    return report


# -- once per interval, among replicas ---------------------------------------------------------


class RunLock(Protocol):
    """Whether this process may run the purge now (held until the next interval)."""

    async def acquire(self) -> bool: ...


class NoLock:
    """SQLite: one database, one broker process (or a few that would only find nothing left)."""

    async def acquire(self) -> bool:
        return True


class LeaseLock:
    """PostgreSQL: the `privacy.purge` lease, taken for one interval; another replica asking
    within it is refused, and after it the next to ask purges."""

    def __init__(self, leases: Any, ttl_s: float, name: str = LEASE_NAME,
                 holder: str | None = None) -> None:
        from broker.store.leases import holder_id

        self.leases = leases
        self.ttl_s = ttl_s
        self.name = name
        self.holder = holder or holder_id()

    async def acquire(self) -> bool:
        # Renewing our own lease succeeds too: the same replica may purge every interval.
        return await self.leases.acquire(self.name, self.holder, self.ttl_s) is not None


def lock_for(store: Store, interval_s: float) -> RunLock:
    """A lease lock on a PostgreSQL store (its pool holds the leases table), else NoLock. The
    lease lasts a little less than the interval, so the next run is never locked out by it."""
    from broker.store.postgres import PostgresStore

    if isinstance(store, PostgresStore):
        from broker.store.leases import MIN_TTL_S, PostgresLeases

        return LeaseLock(PostgresLeases(store.pool()), max(MIN_TTL_S, interval_s * 0.9))
    return NoLock()


def contract_retentions() -> dict[str, str]:
    """{type IRI: retention} of every contracted type (contracts/types/)."""
    from broker.validation.contracts import contracts

    return {iri: c.retention for iri, c in contracts().items()}


class PurgeJob:
    """The purge every `interval_s` seconds while the broker runs (start()/stop()).

    The first run happens one interval after start, not at start: a replica restarting in a
    loop must not purge on each restart (the lease also prevents it on PostgreSQL)."""

    def __init__(self, store: Store, *, interval_s: float | None = DEFAULT_INTERVAL_S,
                 tenants: Sequence[str] | None = None,
                 on_batch: Callable[[PurgedBatch], Awaitable[None]] | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 retentions: Callable[[], Mapping[str, str]] = contract_retentions,
                 lock: RunLock | None = None, first_delay_s: float | None = None) -> None:
        self.store = store
        self.enabled = interval_s is not None
        self.interval_s = DEFAULT_INTERVAL_S if interval_s is None else interval_s
        self.tenants = list(tenants) if tenants is not None else tenants_from_env()
        self.on_batch = on_batch
        self.clock = clock
        self.retentions = retentions
        self.lock = lock
        self.first_delay_s = self.interval_s if first_delay_s is None else first_delay_s
        self.last: PurgeReport | None = None
        self._task: asyncio.Task[None] | None = None
        self._ran = asyncio.Event()

    async def run_once(self) -> PurgeReport | None:
        """One purge if this process holds the lock; its report, else None."""
        if self.lock is None:
            self.lock = lock_for(self.store, self.interval_s)
        if not await self.lock.acquire():
            return None
        report = await purge(self.store, self.retentions(), self.tenants, self.clock(),
                             on_batch=self.on_batch)
        self.last = report
        if report.removed:
            log.info("retention purge removed %d entities", report.removed)
        return report

    async def _loop(self) -> None:
        delay = self.first_delay_s
        while True:
            await asyncio.sleep(delay)
            delay = self.interval_s
            try:
                await self.run_once()
            except Exception:  # a store hiccup: try again next interval
                log.exception("retention purge failed")
            self._ran.set()

    async def wait_run(self) -> None:
        """Until the next run has finished (tests, operators' tools)."""
        self._ran.clear()
        await self._ran.wait()

    def start(self) -> None:
        """Run every interval from now on (nothing if CETATE_PURGE_INTERVAL=off)."""
        if self.enabled and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="privacy-purge")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


PURGE_PRINCIPAL = "cetate:retention-purge"  # the audit entries' principal: the broker itself
PURGE_RULE = "retention"


def audit_record(batch: PurgedBatch) -> AuditRecord:
    """The audit record of one batch removed: entity ids and type, by the broker itself."""
    record = AuditRecord(action=PURGE_ACTION, tenant=batch.tenant,
                         principal=AuditPrincipal(PURGE_PRINCIPAL), rule=PURGE_RULE)
    record.note(entity_ids=batch.ids, types=[batch.type])
    return record
