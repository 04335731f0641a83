"""Subscriptions, the write observer and the outbox rows of the write path, on every engine
(conftest.ENGINES). The Outbox methods themselves: tests/broker/subscriptions/
test_subscriptions_outbox_contract.py. Two store objects on one database stand for two
replicas (or two `cetate serve --workers` processes on one SQLite file)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from broker.errors import BadRequestData
from broker.store.open import open_store
from broker.store.protocol import EntityWrite, Store, SubscriptionRow
from broker.store.sqlite import SQLiteStore
from broker.subscriptions.match import Change
from broker.subscriptions.outbox import PlannedNotification, PlannedWrite
from broker.subscriptions.schedule import instant
from broker.subscriptions.sender import Outcome, Result
from tests.broker.store.conftest import Engine
from tests.broker.store.test_store_contract import count_of, delete, increment, lamp, lamp_id, put

NOW = "2026-12-01T10:00:00.000Z"
KEY = "http://receiver.example.org:80"
OK = Result(Outcome.DELIVERED, "HTTP 200", 200)
DOWN = Result(Outcome.RETRY, "HTTP 503", 503)
GONE = Result(Outcome.FAILED, "HTTP 404", 404)

Opener = Callable[..., Awaitable[Store]]


@dataclass
class OnePerWrite:
    """A write observer for these tests: one notification per write per subscription of the
    write's tenant (record["throttling"] and record["key"] taken as they are)."""

    version: int = -1
    subs: list[SubscriptionRow] = field(default_factory=list)
    loads: int = 0
    plans: list[int] = field(default_factory=list)  # writes per plan call
    tenants: list[set[str]] = field(default_factory=list)  # their tenants, per plan call
    fail: bool = False

    def stale(self, version: int) -> bool:
        return version != self.version

    def load(self, version: int, subscriptions: Sequence[SubscriptionRow]) -> None:
        self.version, self.subs, self.loads = version, list(subscriptions), self.loads + 1

    def plan(self, writes: Sequence[EntityWrite], now: float) -> PlannedWrite | None:
        self.plans.append(len(writes))
        self.tenants.append({w.tenant for w in writes})
        if self.fail:
            raise RuntimeError("the planner failed")
        changes = tuple(Change.between(w.tenant, w.before, w.after, NOW) for w in writes)
        notes = tuple(
            PlannedNotification(s.tenant, s.id, f"urn:ngsi-ld:Notification:{uuid.uuid4()}",
                                s.record.get("key", KEY), ((_trigger(w), index),),
                                s.record.get("throttling"))
            for index, w in enumerate(writes) for s in self.subs if s.tenant == w.tenant)
        return PlannedWrite(changes, notes) if notes else None


def _trigger(w: EntityWrite) -> str:
    if w.before is None:
        return "entityCreated"
    return "entityDeleted" if w.after is None else "entityUpdated"


def record(n: int, **extra: Any) -> dict[str, Any]:
    return {"id": sub_id(n), "type": "Subscription", **extra}


def sub_id(n: int) -> str:
    return f"urn:ngsi-ld:Subscription:{n}"


@pytest.fixture
async def opener(store_url: str) -> AsyncIterator[Opener]:
    """Open stores (replicas) on the test's one database, optionally observed; closed after."""
    opened: list[Store] = []

    async def open_one(observer: OnePerWrite | None = None) -> Store:
        s = open_store(store_url)
        if not hasattr(s, "observe"):
            pytest.skip(f"{type(s).__name__} has no subscriptions yet")
        if observer is not None:
            s.observe(observer)
        await s.open()
        opened.append(s)
        return s
    yield open_one
    for s in reversed(opened):
        await s.close()


# -- CRUD and the version ---------------------------------------------------------------------

async def test_create_get_list_and_the_version(opener: Opener) -> None:
    store = await opener()
    (v0, none) = await store.subscriptions()
    assert none == []
    for n in (3, 1, 2):
        assert await store.create_subscription("", sub_id(n), record(n))
    assert not await store.create_subscription("", sub_id(1), record(1, q="changed"))
    (v1, every) = await store.subscriptions()
    assert v1 == v0 + 3  # the refused duplicate bumped nothing
    got = await store.get_subscription("", sub_id(1))
    assert got is not None and got.record == record(1) and got.tenant == ""
    assert got.delivery.times_sent == 0 and got.delivery.status is None
    assert got.periodic_last is None
    assert await store.get_subscription("", sub_id(9)) is None
    page, total = await store.list_subscriptions("", 2, 0)
    assert total == 3 and [r.id for r in page] == [sub_id(3), sub_id(1)]  # created order
    page, total = await store.list_subscriptions("", 2, 2)
    assert total == 3 and [r.id for r in page] == [sub_id(2)]
    assert sorted(r.id for r in every) == [sub_id(1), sub_id(2), sub_id(3)]


async def test_tenants_are_apart(opener: Opener) -> None:
    store = await opener()
    assert not await store.tenant_exists("city")
    assert await store.create_subscription("city", sub_id(1), record(1, t="city"))
    assert await store.tenant_exists("city")
    assert await store.create_subscription("", sub_id(1), record(1))
    assert (await store.list_subscriptions("", 10, 0))[1] == 1
    city = await store.get_subscription("city", sub_id(1))
    assert city is not None and city.record["t"] == "city"
    assert await store.delete_subscription("city", sub_id(1))
    assert await store.get_subscription("", sub_id(1)) is not None


async def test_update_and_delete_bump_the_version(opener: Opener) -> None:
    store = await opener()
    await store.create_subscription("", sub_id(1), record(1))
    (v0, _) = await store.subscriptions()
    new = await store.update_subscription("", sub_id(1), lambda r: {**r, "q": "a>1"})
    assert new == record(1, q="a>1")
    got = await store.get_subscription("", sub_id(1))
    assert got is not None and got.record == new
    assert await store.update_subscription("", sub_id(9), lambda r: r) is None

    def refuse(r: dict[str, Any]) -> dict[str, Any]:
        raise BadRequestData("no")
    with pytest.raises(BadRequestData):
        await store.update_subscription("", sub_id(1), refuse)
    (v1, _) = await store.subscriptions()
    assert v1 == v0 + 1  # the refused edit wrote nothing
    assert await store.delete_subscription("", sub_id(1))
    assert not await store.delete_subscription("", sub_id(1))
    (v2, every) = await store.subscriptions()
    assert v2 == v1 + 1 and every == []
    assert await store.subscriptions_version() == v2  # the version alone, read cheaply


# -- the write observer -----------------------------------------------------------------------

async def test_writes_record_drafts_with_their_changes(opener: Opener) -> None:
    observer = OnePerWrite()
    store = await opener(observer)
    await store.apply("", lamp_id(1), put(lamp(1)))  # no subscription yet: nothing owed
    assert await store.outbox.claim(time.time() + 1, 10, 60.0) == []
    await store.create_subscription("", sub_id(1), record(1))
    await store.create_subscription("other", sub_id(2), record(2))
    assert await store.apply("", lamp_id(1), increment) == 2
    assert observer.loads == 2  # once at the first write, again after the creations
    (row,) = await store.outbox.claim(time.time() + 1, 10, 60.0)
    assert row.outgoing is None and row.draft is not None and row.key == KEY
    assert row.endpoint_key == KEY and row.subscription_id == sub_id(1)
    assert row.attempt == 0 and row.due <= time.time()
    (item,) = row.draft.items
    assert item.trigger == "entityUpdated" and item.change.tenant == ""
    assert item.change.changed == {next(iter(lamp(1)["attrs"]))}
    assert count_of(item.change.before) == 1 and count_of(item.change.after) == 2
    assert row.draft.tenant == "" and row.draft.notification_id == row.notification_id


async def test_a_write_firing_several_subscriptions_stores_its_changes_once(
        opener: Opener, engine: Engine) -> None:
    store = await opener(OnePerWrite())
    peek = engine.peek(store)
    for n in (1, 2):
        await store.create_subscription("", sub_id(n), record(n))
    await store.apply("", lamp_id(1), put(lamp(1)))
    assert await peek("SELECT refs FROM notification_changes", []) == [(2,)]
    first, second = await store.outbox.claim(time.time() + 1, 10, 60.0)
    assert first.draft is not None and second.draft is not None
    assert first.draft.items[0].change == second.draft.items[0].change
    assert first.draft.items[0].change.before is None
    await store.outbox.delivered(first, time.time(), OK)
    assert await peek("SELECT refs FROM notification_changes", []) == [(1,)]
    await store.outbox.discard(second)
    assert await peek("SELECT count(*) FROM notification_changes", []) == [(0,)]
    assert await peek("SELECT count(*) FROM notification_outbox", []) == [(0,)]


async def test_delete_subscription_takes_its_rows_pending_and_failed(
        opener: Opener, engine: Engine) -> None:
    store = await opener(OnePerWrite())
    peek = engine.peek(store)
    for n in (1, 2):
        await store.create_subscription("", sub_id(n), record(n))
    await store.apply("", lamp_id(1), put(lamp(1)))
    rows = await store.outbox.claim(time.time() + 1, 10, 60.0)
    mine = next(r for r in rows if r.subscription_id == sub_id(1))
    await store.outbox.failed(mine, time.time(), GONE)
    await store.apply("", lamp_id(1), increment)
    assert await store.delete_subscription("", sub_id(1))
    left = await peek("SELECT subscription_id FROM notification_outbox", [])
    assert left == [(sub_id(2),), (sub_id(2),)]
    assert sorted(await peek("SELECT refs FROM notification_changes", [])) == [(1,), (1,)]
    assert await store.delete_subscription("", sub_id(2))
    assert await peek("SELECT count(*) FROM notification_changes", []) == [(0,)]


async def test_delivery_state_follows_the_outcomes(opener: Opener) -> None:
    store = await opener(OnePerWrite())
    await store.create_subscription("", sub_id(1), record(1))
    await store.apply("", lamp_id(1), put(lamp(1)))
    await store.apply("", lamp_id(1), increment)
    first, second = await store.outbox.claim(time.time() + 1, 10, 60.0)
    t0 = 1_900_000_000.0
    await store.outbox.reschedule(first, t0, t0, DOWN)
    await store.outbox.delivered(second, t0 + 1, OK)
    got = await store.get_subscription("", sub_id(1))
    assert got is not None
    d = got.delivery
    assert (d.times_sent, d.times_failed) == (1, 1)
    assert d.last_failure == instant(t0) and d.last_success == instant(t0 + 1)
    assert d.last_notification == instant(t0 + 1) and d.status == "ok"
    (again,) = await store.outbox.claim(t0 + 1, 10, 60.0)
    assert again.attempt == 1 and again.first_attempt_at == t0
    await store.outbox.failed(again, t0 + 2, GONE)
    got = await store.get_subscription("", sub_id(1))
    assert got is not None and got.delivery.status == "failed"
    assert got.delivery.times_failed == 2


async def test_a_plan_that_raises_fails_the_write(opener: Opener) -> None:
    observer = OnePerWrite()
    store = await opener(observer)
    await store.create_subscription("", sub_id(1), record(1))
    observer.fail = True
    with pytest.raises(Exception):  # noqa: B017 - each engine words its commit failure
        await store.apply("", lamp_id(1), put(lamp(1)))
    assert await store.get_entity("", lamp_id(1)) is None
    observer.fail = False
    assert await store.outbox.claim(time.time() + 1, 10, 60.0) == []
    assert await store.apply("", lamp_id(1), put(lamp(1))) == "created"
    assert len(await store.outbox.claim(time.time() + 1, 10, 60.0)) == 1


async def test_apply_many_plans_only_the_writes_that_held(opener: Opener) -> None:
    observer = OnePerWrite()
    store = await opener(observer)
    await store.create_subscription("", sub_id(1), record(1))
    await store.apply("", lamp_id(1), put(lamp(1)))
    await store.outbox.claim(time.time() + 1, 10, 3600.0)  # out of the way
    results = await store.apply_many("", [(lamp_id(1), increment), (lamp_id(2), increment),
                                           (lamp_id(3), put(lamp(3))), (lamp_id(1), delete)])
    assert results[0] == 2 and isinstance(results[1], Exception) and results[3] is True
    rows = await store.outbox.claim(time.time() + 1, 10, 60.0)
    assert sorted(r.draft.items[0].trigger for r in rows if r.draft) == [
        "entityCreated", "entityDeleted", "entityUpdated"]


async def test_each_plan_sees_the_writes_of_one_tenant(opener: Opener) -> None:
    """Subscription ids are unique per tenant only: writes of two tenants planned together
    could mix one tenant's changes into the other's notification of the same id."""
    observer = OnePerWrite()
    store = await opener(observer)
    for tenant in ("a", "b"):
        await store.create_subscription(tenant, sub_id(1), record(1, key=f"http://{tenant}:80"))
    writes = [(t, n) for n in range(4) for t in ("a", "b")]
    if isinstance(store, SQLiteStore):  # one batch: one group commit, as under load
        await asyncio.gather(*store._submit([store._apply_job(t, lamp_id(n), put(lamp(n)))
                                             for t, n in writes]))
    else:
        await asyncio.gather(*(store.apply(t, lamp_id(n), put(lamp(n))) for t, n in writes))
    assert all(len(tenants) == 1 for tenants in observer.tenants)
    rows = await store.outbox.claim(time.time() + 1, 100, 60.0)
    assert sorted((r.key, r.draft.tenant) for r in rows if r.draft) == sorted(
        (f"http://{t}:80", t) for t, _ in writes)
    assert all(i.change.tenant == r.draft.tenant for r in rows if r.draft for i in r.draft.items)


async def test_a_subscription_made_on_another_replica_is_loaded(opener: Opener) -> None:
    observer = OnePerWrite()
    writer = await opener(observer)
    other = await opener()
    await writer.apply("", lamp_id(1), put(lamp(1)))
    assert observer.loads == 1 and observer.subs == []
    await other.create_subscription("", sub_id(1), record(1))
    await writer.apply("", lamp_id(1), increment)
    assert observer.loads == 2 and [s.id for s in observer.subs] == [sub_id(1)]
    await writer.apply("", lamp_id(1), increment)
    assert observer.loads == 2  # the version held: no reload
    assert len(await other.outbox.claim(time.time() + 1, 10, 60.0)) == 2


async def test_throttling_spreads_a_burst_one_per_window(opener: Opener) -> None:
    store = await opener(OnePerWrite())
    await store.create_subscription("", sub_id(1), record(1, throttling=10.0))
    start = time.time()
    for _ in range(3):
        await store.apply("", lamp_id(1), put(lamp(1)) if _ == 0 else increment)
    rows = await store.outbox.claim(start + 100, 10, 60.0)
    dues = [r.due for r in rows]
    assert start <= dues[0] <= time.time()
    assert dues[1] == pytest.approx(dues[0] + 10) and dues[2] == pytest.approx(dues[0] + 20)
    for r in rows:
        await store.outbox.delivered(r, start + 1000, OK)
    await store.apply("", lamp_id(1), increment)  # none pending: the last one sent counts
    (row,) = await store.outbox.claim(start + 2000, 10, 60.0)
    assert row.due == pytest.approx(start + 1010)


# -- between replicas -------------------------------------------------------------------------

async def test_enqueue_periodic_compare_and_set(opener: Opener) -> None:
    a, b = await opener(), await opener()
    await a.create_subscription("", sub_id(1), record(1))
    await a.apply("", lamp_id(1), put(lamp(1)))
    entity = await a.get_entity("", lamp_id(1))
    change = Change("", None, entity, frozenset(), NOW)
    planned = PlannedWrite((change,), (PlannedNotification(
        "", sub_id(1), "urn:ngsi-ld:Notification:tick", KEY, (("timeInterval", 0),)),))
    version = await a.subscriptions_version()
    assert await a.enqueue_periodic("", sub_id(1), None, 100.0, None)
    assert not await b.enqueue_periodic("", sub_id(1), None, 100.0, planned)  # a won the tick
    # a tick is delivery state, not a change of the subscription: readers keep what they read
    assert await b.subscriptions_version() == version
    assert await b.enqueue_periodic("", sub_id(1), 100.0, 200.0, planned)
    got = await a.get_subscription("", sub_id(1))
    assert got is not None and got.periodic_last == 200.0
    (row,) = await a.outbox.claim(300.0, 10, 60.0)
    assert row.notification_id == "urn:ngsi-ld:Notification:tick" and row.due == 200.0
    assert row.draft is not None and row.draft.items[0].change.after == entity
    assert not await a.enqueue_periodic("", sub_id(9), None, 1.0, None)  # no such subscription


async def test_two_claimers_never_take_the_same_row(opener: Opener) -> None:
    a = await opener(OnePerWrite())
    b = await opener()
    for n in range(4):
        await a.create_subscription("", sub_id(n), record(n, key=f"http://r{n}.example.org:80"))
    await a.apply_many("", [(lamp_id(n), put(lamp(n))) for n in range(10)])
    now = time.time() + 1
    taken: list[str] = []
    while True:
        got = await asyncio.gather(*(s.outbox.claim(now, 3, 60.0) for s in (a, b, a, b)))
        batch = [r.notification_id for rows in got for r in rows]
        if not batch:
            break
        taken += batch
    assert len(taken) == 40 and len(set(taken)) == 40


async def test_renew_extends_only_the_leases_this_outbox_holds(opener: Opener) -> None:
    a = await opener(OnePerWrite())
    b = await opener()
    await a.create_subscription("", sub_id(1), record(1))
    await a.apply("", lamp_id(1), put(lamp(1)))
    t = time.time() + 1
    assert len(await a.outbox.claim(t, 10, 10.0)) == 1
    await a.outbox.renew(t + 8, 10.0)  # a lives on: held until t + 18
    assert await b.outbox.claim(t + 12, 10, 10.0) == []
    assert len(await b.outbox.claim(t + 19, 10, 10.0)) == 1  # a stopped renewing
    await a.outbox.renew(t + 20, 100.0)  # no longer a's row: b's lease (t + 29) stands
    assert await a.outbox.claim(t + 25, 10, 10.0) == []
    assert len(await a.outbox.claim(t + 30, 10, 10.0)) == 1


async def test_expedite_brings_a_receivers_retries_forward(opener: Opener) -> None:
    store = await opener(OnePerWrite())
    back, other = "http://back.example.org:80", "http://other.example.org:80"
    await store.create_subscription("", sub_id(1), record(1, key=back))
    await store.create_subscription("", sub_id(2), record(2, key=other))
    await store.apply("", lamp_id(1), put(lamp(1)))
    t = time.time() + 1
    for row in await store.outbox.claim(t, 10, 60.0):
        await store.outbox.reschedule(row, t + 100, t, DOWN)
    await store.outbox.expedite(back, t + 1)
    (row,) = await store.outbox.claim(t + 1, 10, 1000.0)
    assert row.endpoint_key == back and row.due == t + 1 and row.attempt == 1
    assert [r.endpoint_key for r in await store.outbox.claim(t + 100, 10, 60.0)] == [other]
