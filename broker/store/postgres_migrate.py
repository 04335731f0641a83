"""Versioned migrations for PostgreSQL: broker/store/migrations/postgresql/NNNN_what.sql, in
order, each in its own transaction, recorded in schema_migrations.

Several replicas may start at once: each takes a session-level advisory lock before looking at
the schema version, so exactly one applies a migration and the others, once they get the lock,
find nothing left to do. A database newer than the code is refused, as on SQLite.
"""

from __future__ import annotations

import asyncpg

from broker.store.migrate import MigrationError, available

ENGINE = "postgresql"
# pg_advisory_lock key for schema changes: "cetate" in ASCII, so it is recognisable in pg_locks.
MIGRATION_LOCK_KEY = 0x636574617465

_CREATE_TABLE = ("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                 "name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")


async def current_version(conn: asyncpg.Connection) -> int:
    await conn.execute(_CREATE_TABLE)
    return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations"))


async def migrate_postgres(conn: asyncpg.Connection, *, apply: bool = True) -> list[int]:
    """Bring the schema up to date; the versions this call applied. With apply=False, refuse an
    out-of-date schema instead (MigrationError)."""
    migrations = available(ENGINE)
    latest = migrations[-1].version if migrations else 0
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        version = await current_version(conn)
        if version > latest:
            raise MigrationError(f"Database schema version {version} is newer than this Cetate "
                                 f"knows ({latest}); upgrade Cetate")
        pending = [m for m in migrations if m.version > version]
        if pending and not apply:
            raise MigrationError(f"Database schema is at version {version}, {latest} is "
                                 "needed; run `cetate db migrate` or enable migrations")
        done = []
        for m in pending:
            try:
                async with conn.transaction():
                    await conn.execute(m.sql)
                    await conn.execute("INSERT INTO schema_migrations (version, name) "
                                       "VALUES ($1, $2)", m.version, m.name)
            except asyncpg.PostgresError as exc:
                raise MigrationError(f"Migration {m.name} failed: {exc}") from exc
            done.append(m.version)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
