"""Where API keys live: a table of the broker's own database, SQLite or PostgreSQL, picked by the
store URL (CETATE_STORE). The table is this module's, created here (not a store migration): the
store protocol speaks NGSI-LD and knows nothing of credentials.

Rows hold the key's SHA-256 only (security/identity/apikeys.py says why that suffices).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import asyncpg

from security.identity.apikeys import ApiKey, check_grant, hash_key, new_key

TABLE = "cetate_api_keys"
BUSY_TIMEOUT_MS = 30_000  # as the broker's store: wait out a writer in another process
CONNECT_TIMEOUT_S = 10.0
# Two replicas starting at once may both run CREATE TABLE IF NOT EXISTS, which PostgreSQL does
# not make atomic (a duplicate pg_type row): a transaction-scoped advisory lock serialises them.
PG_SCHEMA_LOCK = 0x63657461_6b657973  # "cetakeys"

SQLITE_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    secret_hash BLOB NOT NULL,
    roles TEXT NOT NULL,
    tenants TEXT,
    purposes TEXT,
    created_at TEXT NOT NULL,
    revoked_at TEXT
)"""

PG_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id text PRIMARY KEY,
    name text NOT NULL DEFAULT '',
    secret_hash bytea NOT NULL,
    roles jsonb NOT NULL,
    tenants jsonb,
    purposes jsonb,
    created_at timestamptz NOT NULL,
    revoked_at timestamptz
)"""

COLUMNS = "id, name, roles, tenants, purposes, created_at, revoked_at"


class KeyStore(Protocol):
    """The storage every engine provides."""

    async def open(self) -> None:
        """Connect, and create the table if it does not exist."""

    async def close(self) -> None:
        """Release connections."""

    async def insert(self, key: ApiKey, secret_hash: bytes) -> None:
        """Store a new key; ValueError if the id exists."""

    async def get(self, key_id: str) -> tuple[ApiKey, bytes] | None:
        """A key and its hash by id, revoked or not; None if unknown."""

    async def all(self) -> list[ApiKey]:
        """Every key, oldest first, without hashes."""

    async def revoke(self, key_id: str, at: datetime) -> bool:
        """Mark a key revoked; False if unknown or already revoked."""

    async def any_keys(self) -> bool:
        """Whether any key was ever made (identity is then "configured"). Revoked keys count:
        revoking the last key, say a leaked one, must not reopen the broker to everyone."""


def now() -> datetime:
    return datetime.now(UTC)


def _set_json(values: frozenset[str] | None) -> str | None:
    return None if values is None else json.dumps(sorted(values))


def _set_of(text: Any) -> frozenset[str] | None:
    if text is None:
        return None
    values = json.loads(text) if isinstance(text, str | bytes) else text
    return frozenset(values)


def _time_of(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def _key_of(row: Any) -> ApiKey:
    return ApiKey(id=row[0], name=row[1], roles=_set_of(row[2]) or frozenset(),
                  tenants=_set_of(row[3]), purposes=_set_of(row[4]),
                  created_at=_time_of(row[5]), revoked_at=_time_of(row[6]))


class SQLiteKeyStore:
    """Keys in the broker's SQLite file, through one connection of their own used from worker
    threads under a lock (lookups are point reads of a primary key: microseconds)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    async def open(self) -> None:
        await asyncio.to_thread(self._open)

    def _open(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                               timeout=BUSY_TIMEOUT_MS / 1000)
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute(SQLITE_SCHEMA)
        self._conn = conn

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.to_thread(conn.close)

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        if self._conn is None:
            raise RuntimeError("key store is not open")
        with self._lock:
            return self._conn.execute(sql, params)

    def _fetch(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        if self._conn is None:
            raise RuntimeError("key store is not open")
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    async def insert(self, key: ApiKey, secret_hash: bytes) -> None:
        created = (key.created_at or now()).isoformat()
        try:
            await asyncio.to_thread(
                self._run, f"INSERT INTO {TABLE} (id, name, secret_hash, roles, tenants, "
                           "purposes, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key.id, key.name, secret_hash, _set_json(key.roles), _set_json(key.tenants),
                 _set_json(key.purposes), created))
        except sqlite3.IntegrityError:
            raise ValueError(f"key id {key.id} exists") from None

    async def get(self, key_id: str) -> tuple[ApiKey, bytes] | None:
        rows = await asyncio.to_thread(
            self._fetch, f"SELECT {COLUMNS}, secret_hash FROM {TABLE} WHERE id = ?", (key_id,))
        return (_key_of(rows[0]), bytes(rows[0][7])) if rows else None

    async def all(self) -> list[ApiKey]:
        rows = await asyncio.to_thread(
            self._fetch, f"SELECT {COLUMNS} FROM {TABLE} ORDER BY created_at, id")
        return [_key_of(row) for row in rows]

    async def revoke(self, key_id: str, at: datetime) -> bool:
        cursor = await asyncio.to_thread(
            self._run, f"UPDATE {TABLE} SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            (at.isoformat(), key_id))
        return cursor.rowcount == 1

    async def any_keys(self) -> bool:
        rows = await asyncio.to_thread(self._fetch, f"SELECT 1 FROM {TABLE} LIMIT 1")
        return bool(rows)


class PostgresKeyStore:
    """Keys in the broker's PostgreSQL database, through a small pool of their own."""

    def __init__(self, dsn: str, *, pool_max: int = 4) -> None:
        self.dsn = dsn
        self.pool_max = pool_max
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=self.pool_max,
                                         timeout=CONNECT_TIMEOUT_S)
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", PG_SCHEMA_LOCK)
            await conn.execute(PG_SCHEMA)
        self._pool = pool

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("key store is not open")
        return self._pool

    async def insert(self, key: ApiKey, secret_hash: bytes) -> None:
        try:
            await self.pool.execute(
                f"INSERT INTO {TABLE} (id, name, secret_hash, roles, tenants, purposes, "
                "created_at) VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6::jsonb, $7)",
                key.id, key.name, secret_hash, _set_json(key.roles), _set_json(key.tenants),
                _set_json(key.purposes), key.created_at or now())
        except asyncpg.UniqueViolationError:
            raise ValueError(f"key id {key.id} exists") from None

    async def get(self, key_id: str) -> tuple[ApiKey, bytes] | None:
        row = await self.pool.fetchrow(
            f"SELECT {COLUMNS}, secret_hash FROM {TABLE} WHERE id = $1", key_id)
        return (_key_of(row), bytes(row[7])) if row is not None else None

    async def all(self) -> list[ApiKey]:
        rows = await self.pool.fetch(f"SELECT {COLUMNS} FROM {TABLE} ORDER BY created_at, id")
        return [_key_of(row) for row in rows]

    async def revoke(self, key_id: str, at: datetime) -> bool:
        status = await self.pool.execute(
            f"UPDATE {TABLE} SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            key_id, at)
        return bool(status == "UPDATE 1")

    async def any_keys(self) -> bool:
        return bool(await self.pool.fetchval(f"SELECT EXISTS (SELECT 1 FROM {TABLE})"))


def open_key_store(store_url: str) -> KeyStore:
    """An unopened key store in the database of the broker's store URL (sqlite:///path or
    postgresql://...); ValueError for other URLs, as for the store itself."""
    from broker.store.open import open_store  # the URL grammar is the store's; reuse it
    from broker.store.postgres import PostgresStore, split_url
    from broker.store.sqlite import SQLiteStore

    store = open_store(store_url)  # not opened: only its parsed location is used
    if isinstance(store, SQLiteStore):
        return SQLiteKeyStore(store.path)
    if isinstance(store, PostgresStore):
        return PostgresKeyStore(split_url(store.dsn)[0])
    raise ValueError(f"API keys cannot be stored in {store_url!r}")


async def create_key(store: KeyStore, roles: frozenset[str], *,
                     tenants: frozenset[str] | None = None,
                     purposes: frozenset[str] | None = None,
                     name: str = "") -> tuple[ApiKey, str]:
    """A new key stored by its hash: (what it grants, the key itself, to show once)."""
    check_grant(roles, tenants, purposes, name)
    key_id, secret = new_key()
    record = ApiKey(id=key_id, roles=roles, tenants=tenants, purposes=purposes, name=name,
                    created_at=now())
    await store.insert(record, hash_key(secret))
    return record, secret
