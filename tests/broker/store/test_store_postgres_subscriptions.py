"""PostgreSQL specifics of subscriptions and the outbox: replicas (PostgresStore objects on one
database) racing each other for claims, periodic ticks, throttling windows and the changes
rows share, a claim passing rows another transaction holds (SKIP LOCKED), a batch whose plan
fails, and change bodies that keep the entity's attribute order. The engine-neutral tests:
test_store_subscriptions.py."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from broker.store.postgres import PostgresStore
from broker.store.protocol import Entity
from broker.store.sqlite import CommitFailed
from broker.subscriptions.match import Change
from broker.subscriptions.notification import Outgoing
from broker.subscriptions.outbox import PlannedNotification, PlannedWrite
from tests.broker.store.test_store_contract import increment, lamp, lamp_id, put
from tests.broker.store.test_store_subscriptions import (
    KEY,
    NOW,
    OK,
    OnePerWrite,
    record,
    sub_id,
)

Replicas = Callable[..., Awaitable[PostgresStore]]


@pytest.fixture
async def replica(postgres_url: str) -> AsyncIterator[Replicas]:
    """Open PostgresStores on the test's one database (replicas), optionally observed."""
    opened: list[PostgresStore] = []

    async def open_one(observer: OnePerWrite | None = None) -> PostgresStore:
        store = PostgresStore(postgres_url)
        if observer is not None:
            store.observe(observer)
        await store.open()
        opened.append(store)
        return store
    yield open_one
    await asyncio.gather(*(s.close() for s in opened))


async def test_claimers_on_two_replicas_take_disjoint_rows(replica: Replicas) -> None:
    a, b = await replica(OnePerWrite()), await replica()
    for n in range(5):
        await a.create_subscription("", sub_id(n), record(n, key=f"http://r{n}.example.org:80"))
    await a.apply_many("", [(lamp_id(n), put(lamp(n))) for n in range(40)])
    now = time.time() + 1
    taken: list[str] = []
    while True:  # eight claims at a time, four per replica, each on its own connection
        got = await asyncio.gather(*(s.outbox.claim(now, 7, 60.0) for s in (a, b) * 4))
        batch = [r.notification_id for rows in got for r in rows]
        if not batch:
            break
        taken += batch
    assert len(taken) == 200 and len(set(taken)) == 200
    owners = await a.read_sql("SELECT DISTINCT lease_owner FROM notification_outbox")
    assert {o for (o,) in owners} <= {a.outbox.owner, b.outbox.owner}


async def test_a_claim_passes_rows_another_transaction_holds(replica: Replicas,
                                                            postgres_url: str) -> None:
    store = await replica()
    for n in range(4):
        await store.create_subscription("", sub_id(n), record(n))
        await store.outbox.add(_message(n), float(n))
    holder = await asyncpg.connect(postgres_url)
    try:
        async with holder.transaction():  # another replica mid-claim on the two oldest rows
            await holder.execute("SELECT id FROM notification_outbox ORDER BY due LIMIT 2 "
                                 "FOR UPDATE")
            rows = await asyncio.wait_for(store.outbox.claim(10.0, 10, 60.0), 2.0)
            assert [r.notification_id for r in rows] == [_message(2).notification_id,
                                                         _message(3).notification_id]
    finally:
        await holder.close()
    rows = await store.outbox.claim(10.0, 10, 60.0)  # released unleased: now they come
    assert [r.notification_id for r in rows] == [_message(0).notification_id,
                                                 _message(1).notification_id]


async def test_racing_periodic_ticks_have_one_winner(replica: Replicas) -> None:
    a, b = await replica(), await replica()
    await a.create_subscription("", sub_id(1), record(1))
    await a.apply("", lamp_id(1), put(lamp(1)))
    entity = await a.get_entity("", lamp_id(1))
    last: float | None = None
    for tick in range(1, 6):
        now = 100.0 * tick
        wins = await asyncio.gather(*(s.enqueue_periodic("", sub_id(1), last, now, _tick(
            entity, f"{tick}-{n}")) for n, s in enumerate((a, b) * 3)))
        assert sum(wins) == 1
        last = now
    rows = await a.outbox.claim(1e9, 100, 60.0)
    assert [r.due for r in rows] == [100.0, 200.0, 300.0, 400.0, 500.0]
    assert await a.read_sql("SELECT count(*), sum(refs) FROM notification_changes") == [(5, 5)]


async def test_throttled_writes_racing_on_two_replicas_never_share_a_window(
        replica: Replicas) -> None:
    a, b = await replica(OnePerWrite()), await replica(OnePerWrite())
    await a.create_subscription("", sub_id(1), record(1, throttling=10.0))
    for n in range(8):
        await a.apply("", lamp_id(n), put(lamp(n)))
    await asyncio.gather(*(s.apply("", lamp_id(n), increment)
                           for n, s in zip(range(8), (a, b) * 4, strict=True)))
    dues = sorted(d for (d,) in await a.read_sql("SELECT due FROM notification_outbox"))
    assert len(dues) == 16
    assert all(later == pytest.approx(earlier + 10)
               for earlier, later in itertools.pairwise(dues))


async def test_rows_of_one_change_delivered_at_once_free_it(replica: Replicas) -> None:
    a, b = await replica(OnePerWrite()), await replica()
    for n in range(6):
        await a.create_subscription("", sub_id(n), record(n, key=f"http://r{n}.example.org:80"))
    for round_ in range(5):
        await a.apply("", lamp_id(round_), put(lamp(round_)))
        rows = await a.outbox.claim(time.time() + 1, 10, 60.0)
        assert len(rows) == 6
        await asyncio.gather(*((a, b)[i % 2].outbox.delivered(r, time.time(), OK)
                               for i, r in enumerate(rows)))
        assert await a.read_sql("SELECT count(*) FROM notification_changes") == [(0,)]
    got = await b.get_subscription("", sub_id(0))
    assert got is not None and got.delivery.times_sent == 5


async def test_deleting_a_subscription_while_its_rows_are_delivered(replica: Replicas) -> None:
    """Both lock outbox rows, then the delivery row, then changes: no deadlock (PostgreSQL
    would abort one after deadlock_timeout), and nothing is left behind."""
    a, b = await replica(OnePerWrite()), await replica()
    for n in range(2):
        await a.create_subscription("", sub_id(n), record(n, key=f"http://r{n}.example.org:80"))
    await a.apply_many("", [(lamp_id(n), put(lamp(n))) for n in range(30)])
    rows = await a.outbox.claim(time.time() + 1, 100, 60.0)
    assert len(rows) == 60
    mine = [r for r in rows if r.subscription_id == sub_id(0)]
    # A deadlock would abort one of them (a delivered() raises; a delete is retried, after
    # deadlock_timeout, 1 s).
    await asyncio.gather(b.delete_subscription("", sub_id(0)),
                         *(a.outbox.delivered(r, time.time(), OK) for r in mine))
    assert await a.read_sql("SELECT DISTINCT subscription_id FROM notification_outbox") == [
        (sub_id(1),)]
    # One change for the batch, its rows of the deleted subscription released.
    assert await a.read_sql("SELECT count(*), sum(refs) FROM notification_changes") == [(1, 30)]
    assert await a.read_sql("SELECT subscription_id FROM subscription_delivery") == [
        (sub_id(1),)]


async def test_a_batch_whose_plan_fails_writes_nothing(replica: Replicas) -> None:
    observer = OnePerWrite()
    store = await replica(observer)
    await store.create_subscription("", sub_id(1), record(1))
    await store.apply("", lamp_id(1), put(lamp(1)))
    observer.fail = True
    results = await store.apply_many("", [(lamp_id(1), increment), (lamp_id(2), put(lamp(2)))])
    assert all(isinstance(r, CommitFailed) for r in results)
    assert await store.get_entities("", [lamp_id(1), lamp_id(2)]) == [lamp(1)]
    assert await store.read_sql("SELECT count(*) FROM notification_outbox") == [(1,)]


async def test_change_bodies_keep_the_attribute_order(replica: Replicas) -> None:
    store = await replica(OnePerWrite())
    await store.create_subscription("", sub_id(1), record(1))
    entity = lamp(1)
    entity["attrs"] = {f"https://example.org/{name}": [{"type": "Property", "value": 1}]
                       for name in ("zeta", "alpha", "mid", "a")}
    await store.apply("", lamp_id(1), put(entity))
    (row,) = await store.outbox.claim(time.time() + 1, 10, 60.0)
    assert row.draft is not None
    after = row.draft.items[0].change.after
    assert after is not None and list(after["attrs"]) == list(entity["attrs"])


def _message(n: int) -> Outgoing:
    return Outgoing(f"urn:ngsi-ld:Notification:m{n}", sub_id(n), "", "http://r.example.org/n",
                    (("Content-Type", "application/json"),), b"{}")


def _tick(entity: Entity | None, name: str) -> PlannedWrite:
    change = Change("", None, entity, frozenset(), NOW)
    return PlannedWrite((change,), (PlannedNotification(
        "", sub_id(1), f"urn:ngsi-ld:Notification:tick-{name}", KEY,
        (("timeInterval", 0),)),))
