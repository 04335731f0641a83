"""Versioned schema migrations: numbered SQL files applied in order, each in one transaction.

Files live in broker/store/migrations/<engine>/NNNN_what.sql (package data). Applied versions
are recorded in schema_migrations; a database newer than the code is refused. A file may pick
SQL by what the SQLite at hand offers, with whole-line directives:

    -- @if rtree
    CREATE VIRTUAL TABLE ... USING rtree (...);
    -- @else
    CREATE TABLE ...;
    -- @end
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources

_NAME_RE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_DIRECTIVE_RE = re.compile(r"^--\s*@(if|else|end)\b\s*(\w*)\s*$")
_VIRTUAL_TABLE_RE = re.compile(r"\bUSING\s+(\w+)", re.IGNORECASE)

# Features a migration may depend on, with the statement that proves this SQLite has each.
# Probing beats reading compile_options: a module may also come from a loadable extension.
FEATURE_PROBES = {
    "rtree": "CREATE VIRTUAL TABLE temp.probe USING rtree (id, a, b)",
}


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


def sqlite_features() -> frozenset[str]:
    """The optional features (FEATURE_PROBES) this process's SQLite offers."""
    found = set()
    probe = sqlite3.connect(":memory:")
    try:
        for feature, statement in FEATURE_PROBES.items():
            try:
                probe.execute(statement)
            except sqlite3.OperationalError:
                continue
            probe.execute("DROP TABLE temp.probe")
            found.add(feature)
    finally:
        probe.close()
    return frozenset(found)


def select_sql(sql: str, features: Iterable[str]) -> str:
    """The script with each @if/@else/@end block resolved for these features (pure)."""
    have = frozenset(features)
    kept: list[str] = []
    stack: list[bool] = []  # per open block: whether its current branch is kept
    for number, line in enumerate(sql.splitlines(), 1):
        directive = _DIRECTIVE_RE.match(line.strip())
        if directive is None:
            if all(stack):
                kept.append(line)
            continue
        word, feature = directive.groups()
        if word == "if" and feature:
            stack.append(feature in have)
        elif word == "else" and stack and not feature:
            stack[-1] = not stack[-1]
        elif word == "end" and stack and not feature:
            stack.pop()
        else:
            raise MigrationError(f"Bad directive on line {number}: {line.strip()!r}")
    if stack:
        raise MigrationError("Unclosed '-- @if' block")
    return "\n".join(kept)


def split_statements(sql: str) -> list[str]:
    """The statements of a script (pure); sqlite3.complete_statement knows about triggers."""
    statements, pending = [], ""
    for line in sql.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip():
        statements.append(pending.strip())  # let SQLite report what is wrong with it
    return statements


def current_version(conn: sqlite3.Connection) -> int:
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
                 "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)")
    row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0)


def _missing_modules(conn: sqlite3.Connection, features: frozenset[str]) -> set[str]:
    """Virtual table modules the database uses that this SQLite lacks."""
    used = {match.group(1).lower()
            for (sql,) in conn.execute("SELECT sql FROM sqlite_master WHERE sql LIKE "
                                       "'CREATE VIRTUAL TABLE%'")
            for match in [_VIRTUAL_TABLE_RE.search(sql)] if match}
    return {m for m in used if m in FEATURE_PROBES and m not in features}


def _apply_one(conn: sqlite3.Connection, m: Migration, features: frozenset[str]) -> bool:
    """Apply one migration in its own transaction; False if another process got there first."""
    statements = split_statements(select_sql(m.sql, features))
    conn.execute("BEGIN IMMEDIATE")  # takes the write lock: two processes never both migrate
    try:
        if current_version(conn) >= m.version:
            conn.execute("ROLLBACK")
            return False
        for statement in statements:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES "
                     "(?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))", (m.version, m.name))
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise MigrationError(f"Migration {m.name} failed: {exc}") from exc
    return True


def migrate_sqlite(conn: sqlite3.Connection, *, apply: bool = True,
                   features: frozenset[str] | None = None) -> list[int]:
    """Bring the schema up to date; the versions applied. `conn` must be in autocommit mode
    (isolation_level=None). With apply=False, refuse to run on an out-of-date schema instead.

    A database newer than this code is refused: old code writing to it could corrupt data.
    `features` defaults to what this SQLite offers (sqlite_features()).
    """
    if conn.isolation_level is not None:
        raise ValueError("migrate_sqlite needs a connection with isolation_level=None")
    have = sqlite_features() if features is None else features
    migrations = available("sqlite")
    latest = migrations[-1].version if migrations else 0
    version = current_version(conn)
    if version > latest:
        raise MigrationError(f"Database schema version {version} is newer than this Cetate "
                             f"knows ({latest}); upgrade Cetate")
    missing = _missing_modules(conn, have)
    if missing:
        raise MigrationError(f"The database uses SQLite module(s) {sorted(missing)} that this "
                             f"SQLite ({sqlite3.sqlite_version}) lacks")
    pending = [m for m in migrations if m.version > version]
    if pending and not apply:
        raise MigrationError(f"Database schema is at version {version}, {latest} is needed; "
                             "run with migrations enabled")
    return [m.version for m in pending if _apply_one(conn, m, have)]
