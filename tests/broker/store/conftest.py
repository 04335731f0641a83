"""The engines the store contract suite runs on. To test a new engine, add it to ENGINES: a URL
for a fresh, empty store, and how to peek at its tables with SQL (tests only)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from broker.store.open import open_store
from broker.store.protocol import Store
from broker.store.sqlite import SQLiteStore

Peek = Callable[[str, Sequence[Any]], Awaitable[list[tuple[Any, ...]]]]


@dataclass(frozen=True)
class Engine:
    url: Callable[[Path], str]
    peek: Callable[[Store], Peek]


def _sqlite_peek(store: Store) -> Peek:
    assert isinstance(store, SQLiteStore)
    return store.read_sql


ENGINES = {
    "sqlite": Engine(url=lambda tmp: f"sqlite:///{tmp}/store.db", peek=_sqlite_peek),
}


@pytest.fixture(params=sorted(ENGINES))
def engine(request: pytest.FixtureRequest) -> Engine:
    return ENGINES[request.param]


@pytest.fixture
def store_url(engine: Engine, tmp_path: Path) -> str:
    return engine.url(tmp_path)


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
