-- A write's audit facts, committed in the write's own transaction (broker/store/sqlite_audit.py):
-- the write is answered at once, and its entry, sealed and appended later, deletes the row in
-- the same transaction. A row left by a broker that died is sealed from its facts on recovery.
CREATE TABLE audit_pending (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: a late entry deletes only its own
    instance TEXT NOT NULL,  -- the broker process that wrote it (host:pid:random)
    at REAL NOT NULL,  -- unix time it was written
    facts BLOB NOT NULL  -- security/audit/entry.py facts()
);
