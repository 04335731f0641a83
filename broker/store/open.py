"""Open a store from its URL: the scheme picks the engine (SCHEMES), the rest is the engine's."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg

from broker.store.migrate import migrate_sqlite
from broker.store.postgres import CONNECT_TIMEOUT_S, PostgresStore, split_url
from broker.store.postgres_migrate import migrate_postgres
from broker.store.protocol import Store
from broker.store.sqlite import BUSY_TIMEOUT_MS, SQLiteStore

MEMORY_PATHS = frozenset({"", ":memory:"})


def _sqlite(rest: str, **options: Any) -> Store:
    # sqlite:///relative/path.db -> "relative/path.db"; sqlite:////abs/path.db -> "/abs/path.db"
    path = rest[1:] if rest.startswith("/") else rest
    if path in MEMORY_PATHS:
        # The writer and every reader hold their own connection, so they must share a file.
        raise ValueError("SQLite needs a file path (the writer and the readers share it), e.g. "
                         "sqlite:///data/cetate.db; for a throwaway store use a temporary file")
    return SQLiteStore(path, **options)


def _postgresql(rest: str, **options: Any) -> Store:
    # postgresql://user@host:port/db?pool_max=20: libpq's URL, with this engine's options.
    dsn, url_options = split_url("postgresql://" + rest)
    return PostgresStore(dsn, **{**url_options, **options})


# scheme -> engine factory taking the rest of the URL after "scheme://" and the options.
SCHEMES: dict[str, Callable[..., Store]] = {
    "sqlite": _sqlite,
    "postgresql": _postgresql,
    "postgres": _postgresql,  # libpq accepts both spellings
}


def open_store(url: str, **options: Any) -> Store:
    """An unopened store for the URL (call `await store.open()`); ValueError if unsupported."""
    scheme, sep, rest = url.partition("://")
    engine = SCHEMES.get(scheme.lower()) if sep else None
    if engine is None:
        raise ValueError(f"Unsupported store URL {url!r}; supported schemes: "
                         f"{', '.join(s + '://' for s in SCHEMES)}")
    return engine(rest, **options)


async def migrate_store(url: str) -> list[int]:
    """Apply the pending migrations of the store at `url` (`cetate db migrate`); the versions
    applied. Safe while brokers run on it: each engine serialises migrations itself."""
    store = open_store(url, migrate=True)
    if isinstance(store, PostgresStore):
        conn = await asyncpg.connect(store.dsn, timeout=CONNECT_TIMEOUT_S)
        try:
            return await migrate_postgres(conn)
        finally:
            await conn.close()
    if isinstance(store, SQLiteStore):
        Path(store.path).parent.mkdir(parents=True, exist_ok=True)
        return await asyncio.to_thread(_migrate_sqlite_file, store.path)
    raise ValueError(f"No migrations for {url!r}")


def _migrate_sqlite_file(path: str) -> list[int]:
    conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        return migrate_sqlite(conn)
    finally:
        conn.close()
