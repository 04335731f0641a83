"""The engines the store contract suite runs on. To test a new engine, add it to ENGINES: a URL
for a fresh, empty store, and how to peek at its tables with SQL (tests only)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from broker.store.open import open_store
from broker.store.postgres import PostgresStore
from broker.store.protocol import Store
from broker.store.sqlite import SQLiteStore

Peek = Callable[[str, Sequence[Any]], Awaitable[list[tuple[Any, ...]]]]


@dataclass(frozen=True)
class Engine:
    name: str
    url: Callable[[pytest.FixtureRequest], str]
    peek: Callable[[Store], Peek]
    # Rows of the spatial index, one per GeoProperty instance with positions.
    spatial_rows: str


def _sqlite_peek(store: Store) -> Peek:
    assert isinstance(store, SQLiteStore)
    return store.read_sql


def _numbered(sql: str) -> str:
    """`?` placeholders as PostgreSQL's `$1, $2, ...` (the suite's SQL has no `?` in strings)."""
    counter = iter(range(1, 1000))
    return re.sub(r"\?", lambda _: f"${next(counter)}", sql)


def _postgres_peek(store: Store) -> Peek:
    assert isinstance(store, PostgresStore)

    async def peek(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return await store.read_sql(_numbered(sql), params)
    return peek


ENGINES = {
    "sqlite": Engine("sqlite", url=lambda req: f"sqlite:///{req.getfixturevalue('tmp_path')}"
                     "/store.db", peek=_sqlite_peek, spatial_rows="geo_boxes"),
    "postgresql": Engine("postgresql", url=lambda req: str(req.getfixturevalue("postgres_url")),
                         peek=_postgres_peek, spatial_rows="geo_index"),
}


@pytest.fixture(params=sorted(ENGINES))
def engine(request: pytest.FixtureRequest) -> Engine:
    return ENGINES[request.param]


@pytest.fixture
def store_url(engine: Engine, request: pytest.FixtureRequest) -> str:
    return engine.url(request)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    s = open_store(store_url)
    await s.open()
    yield s
    await s.close()


@pytest.fixture
def peek(engine: Engine, store: Store) -> Peek:
    """Run one read-only SQL statement on the store's tables."""
    return engine.peek(store)
