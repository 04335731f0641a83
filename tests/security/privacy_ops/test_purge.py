"""The retention purge on real stores (SQLite; PostgreSQL when reachable) with a fake clock:
expired entities go, fresh and uncontracted ones stay, every removal is reported for the audit
log; the job runs per interval, once among PostgreSQL replicas (the lease)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from broker.store.postgres import PostgresStore
from broker.store.protocol import EntityQuery, Store
from security.privacy.purge import (
    DEFAULT_INTERVAL_S,
    PURGE_ACTION,
    PURGE_PRINCIPAL,
    LeaseLock,
    NoLock,
    NoLongerExpired,
    PurgedBatch,
    PurgeJob,
    _delete_if_expired,
    audit_record,
    contract_retentions,
    interval_from_env,
    lock_for,
    purge,
    tenants_from_env,
)
from security.privacy.retention import parse_instant
from tests.security.privacy_ops.kit import (
    NOW,
    OLD,
    RECENT,
    SESSION,
    STREETLIGHT,
    UNCONTRACTED,
    VALIDATION,
    entity,
    prop,
    put,
)

CLOCK = parse_instant(NOW)


async def ids(store: Store, tenant: str = "") -> set[str]:
    page = await store.query_entities(tenant, EntityQuery(limit=1000))
    return {e["id"] for e in page.entities}


def validation(n: int, modified: str) -> Any:
    return entity(f"urn:ngsi-ld:TicketValidation:rat:{n}", VALIDATION, modified,
                  passengerCount=prop(1))


async def test_expired_removed_fresh_kept(store: Store) -> None:
    # TicketValidation keeps 90 days: 100 days old goes, 89 days old stays.
    day = timedelta(days=1)
    old = (CLOCK - 100 * day).isoformat().replace("+00:00", "Z")
    young = (CLOCK - 89 * day).isoformat().replace("+00:00", "Z")
    await put(store, "", *(validation(n, old if n % 2 else young) for n in range(7)),
              entity("urn:ngsi-ld:Streetlight:1", STREETLIGHT, OLD),  # P10Y: kept
              entity("urn:ngsi-ld:ParkingSession:1", SESSION, OLD),  # P1Y: gone
              entity("urn:ngsi-ld:Unknown:1", UNCONTRACTED, OLD))  # no contract: kept
    await put(store, "transport", validation(100, old), validation(101, young))
    batches: list[PurgedBatch] = []

    async def record(batch: PurgedBatch) -> None:
        batches.append(batch)

    report = await purge(store, contract_retentions(), ["", "transport", "nowhere"], CLOCK,
                         page_size=2, on_batch=record)

    assert await ids(store) == {f"urn:ngsi-ld:TicketValidation:rat:{n}" for n in (0, 2, 4, 6)} \
        | {"urn:ngsi-ld:Streetlight:1", "urn:ngsi-ld:Unknown:1"}
    assert await ids(store, "transport") == {"urn:ngsi-ld:TicketValidation:rat:101"}
    removed = {(b.tenant, i) for b in batches for i in b.ids}
    assert removed == {("", f"urn:ngsi-ld:TicketValidation:rat:{n}") for n in (1, 3, 5)} | {
        ("", "urn:ngsi-ld:ParkingSession:1"), ("transport", "urn:ngsi-ld:TicketValidation:rat:100")}
    assert report.removed == 5 and report.batches == batches
    assert report.skipped_tenants == ["nowhere"]
    assert all(len(b.ids) <= 2 for b in batches)  # one batch per page
    summary = report.as_json()
    assert {(t["tenant"], t["type"], t["retention"]) for t in summary["types"]} == {
        ("", VALIDATION, "P90D"), ("", SESSION, "P1Y"), ("transport", VALIDATION, "P90D")}


async def test_dry_run_deletes_nothing(store: Store) -> None:
    await put(store, "", *(validation(n, OLD) for n in range(5)), validation(9, RECENT))
    report = await purge(store, contract_retentions(), [""], CLOCK, dry_run=True, page_size=2)
    assert report.removed == 5 and report.dry_run
    assert len(await ids(store)) == 6


def test_delete_mutation_checks_expiry_again() -> None:
    # An entity changed between the page read and its delete is kept (the write aborts).
    cut = CLOCK - timedelta(days=90)
    mutation = _delete_if_expired(cut)
    assert mutation(validation(1, OLD)) == (None, True)
    assert mutation(None) == (None, False)
    with pytest.raises(NoLongerExpired):
        mutation(validation(1, RECENT))


def test_audit_record_of_a_batch() -> None:
    batch = PurgedBatch("tax", VALIDATION, "P90D", CLOCK, ("urn:a", "urn:b"))
    record = audit_record(batch)
    assert record.action == PURGE_ACTION and record.tenant == "tax"
    assert record.principal.subject == PURGE_PRINCIPAL
    assert record.entity_ids == ["urn:a", "urn:b"] and record.entity_types == [VALIDATION]


def test_settings_from_env() -> None:
    assert tenants_from_env({}) == [""]
    assert tenants_from_env({"CETATE_PRIVACY_TENANTS": " tax, transport,,tax "}) == [
        "", "tax", "transport"]
    assert interval_from_env({}) == DEFAULT_INTERVAL_S
    assert interval_from_env({"CETATE_PURGE_INTERVAL": "3600"}) == 3600
    assert interval_from_env({"CETATE_PURGE_INTERVAL": "PT6H"}) == 6 * 3600
    assert interval_from_env({"CETATE_PURGE_INTERVAL": "P1D"}) == 86400
    assert interval_from_env({"CETATE_PURGE_INTERVAL": "off"}) is None
    for bad in ("soon", "P1M", "0.1", "-5"):
        with pytest.raises(ValueError, match="CETATE_PURGE_INTERVAL"):
            interval_from_env({"CETATE_PURGE_INTERVAL": bad})


async def test_job_runs_each_interval_with_its_clock(store: Store) -> None:
    now = [CLOCK]
    await put(store, "", validation(1, OLD), validation(2, RECENT))
    batches: list[PurgedBatch] = []

    async def record(batch: PurgedBatch) -> None:
        batches.append(batch)

    job = PurgeJob(store, interval_s=0.05, first_delay_s=0, tenants=[""], on_batch=record,
                   clock=lambda: now[0])
    job.start()
    try:
        await asyncio.wait_for(job.wait_run(), 5)
        assert await ids(store) == {"urn:ngsi-ld:TicketValidation:rat:2"}
        now[0] = CLOCK + timedelta(days=120)  # time passes: the second one expires too
        await asyncio.wait_for(job.wait_run(), 5)
        assert await ids(store) == set()
    finally:
        await job.stop()
    assert [b.ids for b in batches] == [("urn:ngsi-ld:TicketValidation:rat:1",),
                                        ("urn:ngsi-ld:TicketValidation:rat:2",)]
    assert job.last is not None and job.last.removed == 1


async def test_job_off_never_runs(sqlite_store: Store) -> None:
    job = PurgeJob(sqlite_store, interval_s=None, tenants=[""])
    job.start()
    assert job._task is None
    await job.stop()


async def test_one_replica_purges_per_interval(store: Store) -> None:
    lock = lock_for(store, 60)
    if not isinstance(store, PostgresStore):
        assert isinstance(lock, NoLock)
        return
    assert isinstance(lock, LeaseLock)
    other = LeaseLock(lock.leases, 60, holder="replica-2")
    await put(store, "", validation(1, OLD))
    first = PurgeJob(store, tenants=[""], lock=lock, clock=lambda: CLOCK)
    second = PurgeJob(store, tenants=[""], lock=other, clock=lambda: CLOCK)
    assert (await first.run_once()) is not None
    assert (await second.run_once()) is None  # the lease is the first replica's
    assert (await first.run_once()) is not None  # renewing its own lease
    assert await ids(store) == set()
