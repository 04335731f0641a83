"""The audit log's SQLite tables and the statements on them, for any connection.

The tables (audit_*) live in the broker store's own database (migrations 0004_audit.sql and
0005_audit_bundles.sql), so an audit append shares the store writer's transaction and its one
fsync (broker/store/sqlite_audit.py); `SQLiteAuditStorage` opens them in a file of their own
(tools, tests, a log kept apart with CETATE_AUDIT_STORE).

Sequencing is the database's job, not the process's: `append_rows` runs inside a write
transaction (BEGIN IMMEDIATE: SQLite's write lock), reads the tree size and frontier there,
numbers its leaves from there and writes them, completed nodes and the new frontier in that
transaction. So any number of broker processes can share one file and no index is ever given
twice; a crash leaves the last committed tree, whole.

One row per appended batch (a bundle), not per entry: each row and index entry is a b-tree
insert in the commit, and per entry they cost more than the rest of the audit together. A
bundle holds its entries' exact bytes, leaf hashes, facets (the columns queries filter on) and
kept details as blobs and JSON. Inner nodes are kept from level NODE_MIN_LEVEL up (1/8 row per
entry), lower perfect subtrees being folded from at most 2^NODE_MIN_LEVEL leaf hashes when a
proof needs them. A query narrows bundles by time (indexed) and by `instr` on the facets
text (each filter's JSON string must occur), then filters the entries exactly; an erasure
rewrites the kept details of the bundles that name the subject.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from broker.store.migrate import available
from security.audit.bundles import (
    NODE_MIN_LEVEL,
    Built,
    Bundle,
    build,
    bundle_row,
    erase_facets,
    hash_at,
    key_needles,
    key_of,
    needles,
    number,
    parse_details,
    select_matching,
)
from security.audit.entry import Detail, Sealed
from security.audit.log import EntryQuery
from security.audit.merkle import Frontier, root

BUSY_TIMEOUT_MS = 30_000  # another broker process holding the write lock waits this long
MIGRATIONS = ("0004_audit.sql", "0005_audit_bundles.sql")


def _migrations() -> tuple[str, str]:
    by_name = {m.name: m.sql for m in available("sqlite")}
    return by_name[MIGRATIONS[0]], by_name[MIGRATIONS[1]]


def _schema() -> str:
    """The audit tables of a new log kept apart (CETATE_AUDIT_STORE): the store's migrations,
    the one definition, without the upgrade of older leaves (a new file has none)."""
    create, bundles = _migrations()
    return (create + bundles[:bundles.index("INSERT INTO audit_bundles")]
            + "DROP TABLE audit_entities;\nDROP TABLE audit_leaves;\n")


SCHEMA = _schema()


def ensure_schema(db: sqlite3.Connection) -> None:
    """Create or upgrade a kept-apart log's tables, in the caller's write transaction (any
    number of processes may open the file at once)."""
    tables = {name for (name,) in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'audit%'")}
    if "audit_tree" not in tables:
        script = SCHEMA
    elif "audit_leaves" in tables:  # a file of an earlier version: its leaves into bundles
        script = _migrations()[1]
    else:
        return
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


_INSERT_BUNDLE = "INSERT INTO audit_bundles VALUES (?,?,?,?,?,?,?,?,?,?)"


# -- writes (inside the caller's write transaction) -------------------------------------------


def append_rows(db: sqlite3.Connection, bundles: Sequence[Built]) -> tuple[int, Frontier]:
    """Number the bundles from the committed tree, in order, and write them; (first index of
    the first, new head)."""
    size, blob = db.execute("SELECT size, frontier FROM audit_tree WHERE id = 1").fetchone()
    frontier = Frontier.from_bytes(size, blob)
    if not bundles:
        return size, frontier
    for built in bundles:
        first = frontier.size
        nodes = number(frontier, built)
        db.execute(_INSERT_BUNDLE, bundle_row(first, built))
        if nodes:
            db.executemany("INSERT INTO audit_nodes VALUES (?,?,?)", nodes)
        if built.pending:  # the writes' facts these entries now hold (sqlite_audit.py)
            db.executemany("DELETE FROM audit_pending WHERE id = ?",
                           [(p,) for p in built.pending])
    db.execute("UPDATE audit_tree SET size = ?, frontier = ? WHERE id = 1",
               (frontier.size, frontier.to_bytes()))
    return size, frontier


def add_checkpoint(db: sqlite3.Connection, size: int, note: str) -> None:
    db.execute("INSERT INTO audit_checkpoints VALUES (?, ?) ON CONFLICT (size) DO UPDATE "
               "SET note = excluded.note", (size, note))


def erase_subject(db: sqlite3.Connection, subject: str) -> int:
    """Delete the kept details of a subject's entries; the leaves stay, unlinkable."""
    erased = 0
    for first, facets, kept in db.execute(
            "SELECT first, facets, kept FROM audit_bundles WHERE kept IS NOT NULL AND "
            "(keys IS NULL OR instr(keys, ?) > 0)", (key_of("s", subject),)).fetchall():
        count, left = erase_facets(subject, facets, kept)
        if count:
            erased += count
            db.execute("UPDATE audit_bundles SET kept = ? WHERE first = ?", (left, first))
    return erased


# -- reads --------------------------------------------------------------------------------------

_OVERLAPPING = ("FROM audit_bundles WHERE first < ? AND first >= coalesce((SELECT first FROM "
                "audit_bundles WHERE first <= ? ORDER BY first DESC LIMIT 1), 0) ORDER BY first")


def head(db: sqlite3.Connection) -> Frontier:
    size, blob = db.execute("SELECT size, frontier FROM audit_tree WHERE id = 1").fetchone()
    return Frontier.from_bytes(size, blob)


def leaf_hashes(db: sqlite3.Connection, lo: int, hi: int) -> list[bytes]:
    """The leaf hashes of lo <= index < hi that the log holds, in order."""
    out: list[bytes] = []
    for first, count, hashes in db.execute(f"SELECT first, count, hashes {_OVERLAPPING}",
                                           (hi, lo)):
        a, b = max(lo, first), min(hi, first + count)
        out += [hash_at(hashes, i - first) for i in range(a, b)]
    return out


def perfect(db: sqlite3.Connection, level: int, index: int) -> bytes:
    if level >= NODE_MIN_LEVEL:
        row = db.execute("SELECT hash FROM audit_nodes WHERE level = ? AND idx = ?",
                         (level, index)).fetchone()
        if row is not None:
            return bytes(row[0])
        raise LookupError(f"no subtree ({level}, {index}) in the audit log")
    lo, n = index << level, 1 << level
    hashes = leaf_hashes(db, lo, lo + n)
    if len(hashes) != n:
        raise LookupError(f"no subtree ({level}, {index}) in the audit log")
    return hashes[0] if n == 1 else root(hashes)


def entries(db: sqlite3.Connection, start: int, end: int) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    for first, count, sizes, blob in db.execute(
            f"SELECT first, count, sizes, entries {_OVERLAPPING}", (end, start)):
        bundle = Bundle(first, count, sizes, blob)
        out += [(i, bundle.entry(i)) for i in range(max(start, first), min(end, first + count))]
    return out


def latest_checkpoint(db: sqlite3.Connection) -> tuple[int, str] | None:
    row = db.execute("SELECT size, note FROM audit_checkpoints ORDER BY size DESC LIMIT 1"
                     ).fetchone()
    return (row[0], row[1]) if row else None


def checkpoint_at(db: sqlite3.Connection, size: int) -> str | None:
    row = db.execute("SELECT note FROM audit_checkpoints WHERE size = ?", (size,)).fetchone()
    return row[0] if row else None


def details(db: sqlite3.Connection, idx: int) -> list[Detail]:
    row = db.execute("SELECT first, kept FROM audit_bundles WHERE first <= ? ORDER BY first "
                     "DESC LIMIT 1", (idx,)).fetchone()
    if row is None or row[1] is None:
        return []
    kept = orjson.loads(row[1])
    i = idx - row[0]
    return parse_details(kept[i]) if i < len(kept) else []


def query(db: sqlite3.Connection, q: EntryQuery) -> list[tuple[int, bytes]]:
    where = ["first >= coalesce((SELECT first FROM audit_bundles WHERE first <= ? ORDER BY "
             "first DESC LIMIT 1), 0)"]
    params: list[Any] = [q.after]
    if q.since:
        where.append("time_max >= ?")
        params.append(q.since)
    if q.until:
        where.append("time_min < ?")
        params.append(q.until)
    for needle in needles(q):
        where.append("instr(facets, ?) > 0")
        params.append(needle)
    for key in key_needles(q):
        where.append("(keys IS NULL OR instr(keys, ?) > 0)")
        params.append(key)
    rows = db.execute("SELECT first, count, sizes, facets, entries FROM audit_bundles WHERE "
                      f"{' AND '.join(where)} ORDER BY first", params)
    try:
        return select_matching(q, rows)
    finally:
        rows.close()


class SQLiteAuditStorage:
    """The AuditStorage protocol (security/audit/log.py) on the audit tables of one file; a
    connection per thread (the log uses one writer and one reader thread). With create=False
    the tables are expected to exist (the broker store's migrations made them)."""

    def __init__(self, path: str | Path, *, synchronous: str = "FULL",
                 create: bool = True) -> None:
        self.path = Path(path)
        self.synchronous = synchronous
        self.create = create
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _db(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   timeout=BUSY_TIMEOUT_MS / 1000)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def _in_write(self, fn: Any, *args: Any) -> Any:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            result = fn(db, *args)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return result

    def open(self) -> None:
        if not self.create:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._in_write(ensure_schema)

    def close(self) -> None:
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
        self._local = threading.local()

    def append(self, batch: Sequence[Sealed]) -> tuple[int, Frontier]:
        return self.append_built([build(batch)] if batch else [])

    def append_built(self, bundles: Sequence[Built]) -> tuple[int, Frontier]:
        result: tuple[int, Frontier] = self._in_write(append_rows, bundles)
        return result

    def add_checkpoint(self, size: int, note: str) -> None:
        self._in_write(add_checkpoint, size, note)

    def erase_subject(self, subject: str) -> int:
        count: int = self._in_write(erase_subject, subject)
        return count

    def head(self) -> Frontier:
        return head(self._db())

    def perfect(self, level: int, index: int) -> bytes:
        return perfect(self._db(), level, index)

    def entries(self, start: int, end: int) -> list[tuple[int, bytes]]:
        return entries(self._db(), start, end)

    def latest_checkpoint(self) -> tuple[int, str] | None:
        return latest_checkpoint(self._db())

    def checkpoint_at(self, size: int) -> str | None:
        return checkpoint_at(self._db(), size)

    def details(self, idx: int) -> list[Detail]:
        return details(self._db(), idx)

    def query(self, q: EntryQuery) -> list[tuple[int, bytes]]:
        return query(self._db(), q)
