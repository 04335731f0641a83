"""The Outbox contract (broker/subscriptions/outbox.py): what every implementation must do.

Run here against the in-memory reference; a store engine's outbox joins by adding a factory to
OUTBOXES (a fresh, empty outbox per test), as the store contract suite does for engines.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from broker.store.postgres import PostgresStore
from broker.store.postgres_outbox import PostgresOutbox
from broker.store.protocol import Store
from broker.store.sqlite import SQLiteStore
from broker.store.sqlite_outbox import SQLiteOutbox
from broker.subscriptions.notification import Outgoing
from broker.subscriptions.outbox import Outbox
from broker.subscriptions.sender import Outcome, Result
from tests.broker.subscriptions.memory_outbox import MemoryOutbox

# name -> (make an empty outbox, add a row: (outbox, message, due) -> None)
Factory = Callable[[], Awaitable[Outbox]]
Adder = Callable[[Outbox, Outgoing, float], Awaitable[None]]


async def _memory() -> Outbox:
    return MemoryOutbox()


async def _memory_add(outbox: Outbox, out: Outgoing, due: float) -> None:
    assert isinstance(outbox, MemoryOutbox)
    outbox.add(out, due)


# Stores a factory opened, closed after each test (_close_opened_stores).
_OPENED: list[tuple[Store, str]] = []


async def _sqlite() -> Outbox:
    folder = tempfile.mkdtemp(prefix="cetate-outbox-")
    store = SQLiteStore(f"{folder}/store.db", synchronous="NORMAL")
    await store.open()
    _OPENED.append((store, folder))
    return store.outbox


async def _sqlite_add(outbox: Outbox, out: Outgoing, due: float) -> None:
    assert isinstance(outbox, SQLiteOutbox)
    await outbox.add(out, due)


# The running test's PostgreSQL database (_postgres_database) and the stores opened on it.
_PG_URL: list[str] = []
_PG_OPENED: list[PostgresStore] = []


async def _postgres() -> Outbox:
    store = PostgresStore(_PG_URL[-1])
    await store.open()
    _PG_OPENED.append(store)
    return store.outbox


async def _postgres_add(outbox: Outbox, out: Outgoing, due: float) -> None:
    assert isinstance(outbox, PostgresOutbox)
    await outbox.add(out, due)


OUTBOXES: dict[str, tuple[Factory, Adder]] = {"memory": (_memory, _memory_add),
                                              "sqlite": (_sqlite, _sqlite_add),
                                              "postgresql": (_postgres, _postgres_add)}


@pytest.fixture(autouse=True)
def _postgres_database(request: pytest.FixtureRequest) -> Iterator[None]:
    """A fresh database for a test on the postgresql outbox, asked for here: outside the event
    loop (postgres_url runs asyncio itself), and only by those tests (it skips without
    PostgreSQL)."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and callspec.params.get("box") == "postgresql":
        _PG_URL.append(request.getfixturevalue("postgres_url"))
    yield
    _PG_URL.clear()


@pytest.fixture(autouse=True)
async def _close_postgres_stores() -> AsyncIterator[None]:
    yield
    while _PG_OPENED:
        await _PG_OPENED.pop().close()


@pytest.fixture(autouse=True)
async def _close_opened_stores() -> AsyncIterator[None]:
    yield
    while _OPENED:
        store, folder = _OPENED.pop()
        await store.close()
        shutil.rmtree(folder, ignore_errors=True)

OK = Result(Outcome.DELIVERED, "HTTP 200", 200)
DOWN = Result(Outcome.RETRY, "HTTP 503", 503)
GONE = Result(Outcome.FAILED, "HTTP 404", 404)


def message(n: int, host: str = "a.example.org") -> Outgoing:
    return Outgoing(f"urn:ngsi-ld:Notification:{n}", "urn:ngsi-ld:Subscription:s", "",
                    f"http://{host}/n", (("Content-Type", "application/json"),), b"{}")


@pytest.fixture(params=list(OUTBOXES))
async def box(request: pytest.FixtureRequest) -> tuple[Outbox, Adder]:
    make, add = OUTBOXES[request.param]
    return await make(), add


async def test_claims_due_rows_oldest_first(box: tuple[Outbox, Adder]) -> None:
    outbox, add = box
    await add(outbox, message(1), 30.0)
    await add(outbox, message(2), 10.0)
    await add(outbox, message(3), 99.0)
    rows = await outbox.claim(50.0, 10, 60.0)
    assert [r.outgoing.notification_id for r in rows] == ["urn:ngsi-ld:Notification:2",
                                                          "urn:ngsi-ld:Notification:1"]
    assert all(r.attempt == 0 and r.first_attempt_at is None for r in rows)


async def test_a_lease_keeps_others_off_until_it_runs_out(box: tuple[Outbox, Adder]) -> None:
    outbox, add = box
    await add(outbox, message(1), 0.0)
    assert len(await outbox.claim(1.0, 10, 60.0)) == 1
    assert await outbox.claim(2.0, 10, 60.0) == []  # another replica gets nothing
    again = await outbox.claim(62.0, 10, 60.0)  # the claimer died: the row comes back
    assert [r.outgoing.notification_id for r in again] == ["urn:ngsi-ld:Notification:1"]


async def test_limit_and_skip(box: tuple[Outbox, Adder]) -> None:
    outbox, add = box
    for n in range(5):
        await add(outbox, message(n, "slow.example.org"), 0.0)
    await add(outbox, message(9, "fast.example.org"), 0.0)
    rows = await outbox.claim(1.0, 10, 60.0, frozenset({"http://slow.example.org:80"}))
    assert [r.outgoing.notification_id for r in rows] == ["urn:ngsi-ld:Notification:9"]
    assert len(await outbox.claim(1.0, 2, 60.0)) == 2


async def test_delivered_rows_are_gone(box: tuple[Outbox, Adder]) -> None:
    outbox, add = box
    await add(outbox, message(1), 0.0)
    (row,) = await outbox.claim(1.0, 10, 0.5)
    await outbox.delivered(row, 1.1, OK)
    assert await outbox.claim(100.0, 10, 60.0) == []


async def test_reschedule_counts_the_attempt(box: tuple[Outbox, Adder]) -> None:
    outbox, add = box
    await add(outbox, message(1), 0.0)
    (row,) = await outbox.claim(1.0, 10, 60.0)
    await outbox.reschedule(row, 5.0, 1.2, DOWN)
    assert await outbox.claim(4.0, 10, 60.0) == []  # not due yet; the lease was released
    (row,) = await outbox.claim(5.0, 10, 60.0)
    assert row.attempt == 1 and row.first_attempt_at == 1.2
    await outbox.reschedule(row, 9.0, 5.5, DOWN)
    (row,) = await outbox.claim(9.0, 10, 60.0)
    assert row.attempt == 2 and row.first_attempt_at == 1.2
    assert row.outgoing.notification_id == "urn:ngsi-ld:Notification:1"  # kept for dedup


async def test_failed_rows_are_never_claimed(box: tuple[Outbox, Adder]) -> None:
    outbox, add = box
    await add(outbox, message(1), 0.0)
    (row,) = await outbox.claim(1.0, 10, 60.0)
    await outbox.failed(row, 1.1, GONE)
    assert await outbox.claim(1e9, 10, 60.0) == []


async def test_postpone_releases_without_counting(box: tuple[Outbox, Adder]) -> None:
    outbox, add = box
    await add(outbox, message(1), 0.0)
    (row,) = await outbox.claim(1.0, 10, 60.0)
    await outbox.postpone(row, 3.0)
    assert await outbox.claim(2.0, 10, 60.0) == []
    (row,) = await outbox.claim(3.0, 10, 60.0)
    assert row.attempt == 0
