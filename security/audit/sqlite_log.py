"""The audit log's SQLite storage: its own database file, WAL, synchronous=FULL.

Sequencing is the database's job, not the process's: every append batch runs under
BEGIN IMMEDIATE (SQLite's write lock), reads the tree size and frontier inside that transaction,
numbers its leaves from there and commits leaves, completed nodes and the new frontier together.
So any number of broker processes can share one file and no index is ever given twice; a crash
leaves the last committed tree, whole.

Connections are used from one thread each (the log's writer thread and its reader thread).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from security.audit.entry import Detail, Sealed
from security.audit.log import EntryQuery
from security.audit.merkle import Frontier, leaf_hash

BUSY_TIMEOUT_MS = 30_000  # another broker process holding the write lock waits this long
QUERY_COLUMNS = ("tenant", "action", "purpose", "decision", "subject")

SCHEMA = """
CREATE TABLE IF NOT EXISTS tree (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    size INTEGER NOT NULL,
    frontier BLOB NOT NULL
);
INSERT OR IGNORE INTO tree VALUES (1, 0, x'');
CREATE TABLE IF NOT EXISTS leaves (
    idx INTEGER PRIMARY KEY,
    entry BLOB NOT NULL,
    hash BLOB NOT NULL,
    time TEXT NOT NULL,
    subject TEXT NOT NULL,
    tenant TEXT NOT NULL,
    action TEXT NOT NULL,
    purpose TEXT,
    decision TEXT NOT NULL,
    status INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS leaves_time ON leaves(time);
CREATE INDEX IF NOT EXISTS leaves_subject ON leaves(subject);
CREATE TABLE IF NOT EXISTS nodes (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leaf_entities (
    entity TEXT NOT NULL,
    idx INTEGER NOT NULL,
    PRIMARY KEY (entity, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS details (
    idx INTEGER PRIMARY KEY,
    kept BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    size INTEGER PRIMARY KEY,
    note TEXT NOT NULL
);
"""


class SQLiteAuditStorage:
    def __init__(self, path: str | Path, *, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self.synchronous = synchronous
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    # Each thread gets its own connection (the log uses one writer and one reader thread).
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

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
        self._local = threading.local()

    # -- writes -------------------------------------------------------------------------------

    def append(self, batch: Sequence[Sealed]) -> tuple[int, Frontier]:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            size, blob = db.execute("SELECT size, frontier FROM tree WHERE id = 1").fetchone()
            frontier = Frontier.from_bytes(size, blob)
            first = size
            leaves: list[tuple[Any, ...]] = []
            nodes: list[tuple[int, int, bytes]] = []
            entities: list[tuple[str, int]] = []
            details: list[tuple[int, bytes]] = []
            for sealed in batch:
                idx = frontier.size
                h = leaf_hash(sealed.entry)
                nodes.extend(frontier.append(h))
                c = sealed.columns
                leaves.append((idx, sealed.entry, h, c["time"], c["subject"], c["tenant"],
                               c["action"], c["purpose"], c["decision"], c["status"]))
                entities.extend((e, idx) for e in set(sealed.entity_ids))
                if sealed.details:  # one row an entry: [[name, salt hex, value], ...]
                    details.append((idx, orjson.dumps(
                        [[d.name, d.salt.hex(), d.value] for d in sealed.details])))
            db.executemany("INSERT INTO leaves VALUES (?,?,?,?,?,?,?,?,?,?)", leaves)
            db.executemany("INSERT INTO nodes VALUES (?,?,?)", nodes)
            db.executemany("INSERT INTO leaf_entities VALUES (?,?)", entities)
            db.executemany("INSERT INTO details VALUES (?,?)", details)
            db.execute("UPDATE tree SET size = ?, frontier = ? WHERE id = 1",
                       (frontier.size, frontier.to_bytes()))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return first, frontier

    def add_checkpoint(self, size: int, note: str) -> None:
        self._db().execute("INSERT INTO checkpoints VALUES (?, ?) ON CONFLICT (size) DO UPDATE "
                           "SET note = excluded.note", (size, note))

    def erase_subject(self, subject: str) -> int:
        """Delete the kept details of a subject's entries; the leaves stay, unlinkable."""
        cur = self._db().execute(
            "DELETE FROM details WHERE idx IN (SELECT idx FROM leaves WHERE subject = ?)",
            (subject,))
        return cur.rowcount

    # -- reads --------------------------------------------------------------------------------

    def head(self) -> Frontier:
        size, blob = self._db().execute("SELECT size, frontier FROM tree WHERE id = 1").fetchone()
        return Frontier.from_bytes(size, blob)

    def perfect(self, level: int, index: int) -> bytes:
        if level == 0:
            row = self._db().execute("SELECT hash FROM leaves WHERE idx = ?", (index,)).fetchone()
        else:
            row = self._db().execute("SELECT hash FROM nodes WHERE level = ? AND idx = ?",
                                     (level, index)).fetchone()
        if row is None:
            raise LookupError(f"no subtree ({level}, {index}) in the audit log")
        return bytes(row[0])

    def entries(self, start: int, end: int) -> list[tuple[int, bytes]]:
        rows = self._db().execute("SELECT idx, entry FROM leaves WHERE idx >= ? AND idx < ? "
                                  "ORDER BY idx", (start, end))
        return [(idx, bytes(entry)) for idx, entry in rows]

    def latest_checkpoint(self) -> tuple[int, str] | None:
        row = self._db().execute(
            "SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1").fetchone()
        return (row[0], row[1]) if row else None

    def checkpoint_at(self, size: int) -> str | None:
        row = self._db().execute("SELECT note FROM checkpoints WHERE size = ?",
                                 (size,)).fetchone()
        return row[0] if row else None

    def details(self, idx: int) -> list[Detail]:
        row = self._db().execute("SELECT kept FROM details WHERE idx = ?", (idx,)).fetchone()
        if row is None:
            return []
        return [Detail(name, bytes.fromhex(salt), value)
                for name, salt, value in orjson.loads(row[0])]

    def query(self, q: EntryQuery) -> list[tuple[int, bytes]]:
        where: list[str] = ["l.idx >= ?"]
        params: list[Any] = [q.after]
        if q.since:
            where.append("l.time >= ?")
            params.append(q.since)
        if q.until:
            where.append("l.time < ?")
            params.append(q.until)
        for column in QUERY_COLUMNS:
            value = getattr(q, column)
            if value is not None:
                where.append(f"l.{column} = ?")
                params.append(value)
        source = "leaves l"
        if q.entity is not None:
            source = "leaf_entities e JOIN leaves l ON l.idx = e.idx"
            where.append("e.entity = ?")
            params.append(q.entity)
        sql = (f"SELECT l.idx, l.entry FROM {source} WHERE {' AND '.join(where)} "
               f"ORDER BY l.idx LIMIT ?")
        rows = self._db().execute(sql, (*params, q.limit))
        return [(idx, bytes(entry)) for idx, entry in rows]
