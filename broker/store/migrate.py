"""Versioned schema migrations: numbered SQL files applied in order, each in one transaction."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from importlib import resources

_NAME_RE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class MigrationError(RuntimeError):
    """The database schema and the code disagree in a way migrations cannot fix."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available(engine: str) -> list[Migration]:
    """The migrations shipped for an engine, in version order."""
    folder = resources.files("broker.store") / "migrations" / engine
    found = []
    for entry in folder.iterdir():
        match = _NAME_RE.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    return sorted(found, key=lambda m: m.version)


def current_version(conn: sqlite3.Connection) -> int:
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
                 "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)")
    row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0)


def migrate_sqlite(conn: sqlite3.Connection, *, apply: bool = True) -> list[int]:
    """Apply pending migrations (or, with apply=False, refuse to run behind); the versions applied.

    A database newer than this code is refused: running old code on it could corrupt data.
    """
    migrations = available("sqlite")
    latest = migrations[-1].version if migrations else 0
    version = current_version(conn)
    if version > latest:
        raise MigrationError(f"Database schema version {version} is newer than this Cetate "
                             f"knows ({latest}); upgrade Cetate")
    pending = [m for m in migrations if m.version > version]
    if pending and not apply:
        raise MigrationError(f"Database schema is at version {version}, {latest} is needed; "
                             "run with migrations enabled")
    for m in pending:
        try:
            conn.executescript(
                f"BEGIN;\n{m.sql}\nINSERT INTO schema_migrations VALUES "
                f"({m.version}, '{m.name}', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));\nCOMMIT;"
            )
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise MigrationError(f"Migration {m.name} failed: {exc}") from exc
    return [m.version for m in pending]
