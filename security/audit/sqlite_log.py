"""The audit log's SQLite tables and the statements on them, for any connection.

The tables (audit_*) live in the broker store's own database (migration 0004_audit.sql), so an
audit append shares the store writer's transaction and its one fsync (broker/store/
sqlite_audit.py); `SQLiteAuditStorage` opens them in a file of their own (tools, tests, a log kept
apart with CETATE_AUDIT_STORE).

Sequencing is the database's job, not the process's: `append_rows` runs inside a write
transaction (BEGIN IMMEDIATE: SQLite's write lock), reads the tree size and frontier there,
numbers its leaves from there and writes leaves, completed nodes and the new frontier in that
transaction. So any number of broker processes can share one file and no index is ever given
twice; a crash leaves the last committed tree, whole.

Rows per entry, kept few (each is a b-tree insert in the commit): one leaf row holding the entry,
its hash, the query columns, its first entity id and its kept details (erasure sets them NULL);
an audit_entities row only for a second or later entity id; inner nodes only from level
NODE_MIN_LEVEL up (1/8 row per entry), lower perfect subtrees being folded from at most
2^NODE_MIN_LEVEL - 1 leaf hashes when a proof needs them. Indexes: time and first entity (an
index insert costs about as much as a row); a query by principal and an erasure scan the leaves.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from broker.store.migrate import available
from security.audit.entry import Detail, Sealed
from security.audit.log import EntryQuery
from security.audit.merkle import Frontier, leaf_hash, root

BUSY_TIMEOUT_MS = 30_000  # another broker process holding the write lock waits this long
QUERY_COLUMNS = ("tenant", "action", "purpose", "decision", "subject")
NODE_MIN_LEVEL = 4  # inner nodes kept from subtrees of 16 leaves up


def _schema() -> str:
    """The audit tables of a log kept apart (CETATE_AUDIT_STORE): migration 0004_audit.sql,
    the one definition, made idempotent (the file is opened by any number of processes)."""
    (migration,) = [m for m in available("sqlite") if m.name == "0004_audit.sql"]
    script = re.sub(r"\bCREATE (TABLE|INDEX) ", r"CREATE \1 IF NOT EXISTS ", migration.sql)
    return script.replace("INSERT INTO", "INSERT OR IGNORE INTO")


SCHEMA = _schema()

_INSERT_LEAF = "INSERT INTO audit_leaves VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"


def kept_details(details: Sequence[Detail]) -> bytes | None:
    """The kept column: [[name, salt hex, value], ...], or NULL without details."""
    return orjson.dumps([[d.name, d.salt.hex(), d.value] for d in details]) if details else None


def parse_details(kept: bytes | None) -> list[Detail]:
    return [Detail(name, bytes.fromhex(salt), value)
            for name, salt, value in orjson.loads(kept)] if kept else []


# -- writes (inside the caller's write transaction) -------------------------------------------


def append_rows(db: sqlite3.Connection, batch: Sequence[Sealed]) -> tuple[int, Frontier]:
    """Number the batch from the committed tree and write it; (first index, new head)."""
    size, blob = db.execute("SELECT size, frontier FROM audit_tree WHERE id = 1").fetchone()
    frontier = Frontier.from_bytes(size, blob)
    leaves: list[tuple[Any, ...]] = []
    nodes: list[tuple[int, int, bytes]] = []
    entities: list[tuple[str, int]] = []
    append = frontier.append
    for sealed in batch:
        idx = frontier.size
        h = leaf_hash(sealed.entry)
        for node in append(h):
            if node[0] >= NODE_MIN_LEVEL:
                nodes.append(node)
        c = sealed.columns
        ids = sealed.entity_ids
        leaves.append((idx, sealed.entry, h, c["time"], c["subject"], c["tenant"], c["action"],
                       c["purpose"], c["decision"], c["status"], ids[0] if ids else None,
                       kept_details(sealed.details)))
        if len(ids) > 1:
            entities.extend((e, idx) for e in set(ids[1:]) - {ids[0]})
    db.executemany(_INSERT_LEAF, leaves)
    if nodes:
        db.executemany("INSERT INTO audit_nodes VALUES (?,?,?)", nodes)
    if entities:
        db.executemany("INSERT INTO audit_entities VALUES (?,?)", entities)
    db.execute("UPDATE audit_tree SET size = ?, frontier = ? WHERE id = 1",
               (frontier.size, frontier.to_bytes()))
    return size, frontier


def add_checkpoint(db: sqlite3.Connection, size: int, note: str) -> None:
    db.execute("INSERT INTO audit_checkpoints VALUES (?, ?) ON CONFLICT (size) DO UPDATE "
               "SET note = excluded.note", (size, note))


def erase_subject(db: sqlite3.Connection, subject: str) -> int:
    """Delete the kept details of a subject's entries; the leaves stay, unlinkable."""
    return db.execute("UPDATE audit_leaves SET kept = NULL WHERE subject = ? AND kept IS NOT "
                      "NULL", (subject,)).rowcount


# -- reads --------------------------------------------------------------------------------------


def head(db: sqlite3.Connection) -> Frontier:
    size, blob = db.execute("SELECT size, frontier FROM audit_tree WHERE id = 1").fetchone()
    return Frontier.from_bytes(size, blob)


def perfect(db: sqlite3.Connection, level: int, index: int) -> bytes:
    if level >= NODE_MIN_LEVEL:
        row = db.execute("SELECT hash FROM audit_nodes WHERE level = ? AND idx = ?",
                         (level, index)).fetchone()
        if row is not None:
            return bytes(row[0])
        raise LookupError(f"no subtree ({level}, {index}) in the audit log")
    lo, n = index << level, 1 << level
    hashes = [bytes(h) for (h,) in db.execute(
        "SELECT hash FROM audit_leaves WHERE idx >= ? AND idx < ? ORDER BY idx", (lo, lo + n))]
    if len(hashes) != n:
        raise LookupError(f"no subtree ({level}, {index}) in the audit log")
    return hashes[0] if n == 1 else root(hashes)


def entries(db: sqlite3.Connection, start: int, end: int) -> list[tuple[int, bytes]]:
    rows = db.execute("SELECT idx, entry FROM audit_leaves WHERE idx >= ? AND idx < ? "
                      "ORDER BY idx", (start, end))
    return [(idx, bytes(entry)) for idx, entry in rows]


def latest_checkpoint(db: sqlite3.Connection) -> tuple[int, str] | None:
    row = db.execute("SELECT size, note FROM audit_checkpoints ORDER BY size DESC LIMIT 1"
                     ).fetchone()
    return (row[0], row[1]) if row else None


def checkpoint_at(db: sqlite3.Connection, size: int) -> str | None:
    row = db.execute("SELECT note FROM audit_checkpoints WHERE size = ?", (size,)).fetchone()
    return row[0] if row else None


def details(db: sqlite3.Connection, idx: int) -> list[Detail]:
    row = db.execute("SELECT kept FROM audit_leaves WHERE idx = ?", (idx,)).fetchone()
    return parse_details(row[0]) if row else []


def query(db: sqlite3.Connection, q: EntryQuery) -> list[tuple[int, bytes]]:
    where: list[str] = ["idx >= ?"]
    params: list[Any] = [q.after]
    if q.since:
        where.append("time >= ?")
        params.append(q.since)
    if q.until:
        where.append("time < ?")
        params.append(q.until)
    for column in QUERY_COLUMNS:
        value = getattr(q, column)
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if q.entity is not None:
        where.append("(entity = ? OR idx IN (SELECT idx FROM audit_entities WHERE entity = ?))")
        params += [q.entity, q.entity]
    sql = (f"SELECT idx, entry FROM audit_leaves WHERE {' AND '.join(where)} "
           f"ORDER BY idx LIMIT ?")
    return [(idx, bytes(entry)) for idx, entry in db.execute(sql, (*params, q.limit))]


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
        self._in_write(lambda db: [db.execute(s) for s in SCHEMA.split(";") if s.strip()])

    def close(self) -> None:
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
        self._local = threading.local()

    def append(self, batch: Sequence[Sealed]) -> tuple[int, Frontier]:
        result: tuple[int, Frontier] = self._in_write(append_rows, batch)
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
