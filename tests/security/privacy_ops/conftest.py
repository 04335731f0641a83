"""Real stores for the privacy operations: SQLite in a temporary file, and PostgreSQL (the
shared postgres_url fixture; skipped with its reason when the server is unreachable)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from broker.store.open import open_store
from broker.store.protocol import Store


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    # Synchronous: postgres_url prepares its database with asyncio.run.
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/cetate.db"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = open_store(store_url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path}/cetate.db")
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()
