-- A write's audit facts, committed in the write's own transaction (broker/store/postgres.py,
-- postgres_audit.py): the write is answered at once, and its entry, sealed and appended later,
-- deletes the row in the same transaction. A row left by a broker that died is sealed from
-- its facts on recovery (security/audit/pending.py).
CREATE TABLE audit_pending (
    id BIGSERIAL PRIMARY KEY,  -- never reused: a late entry deletes only its own
    instance TEXT NOT NULL,  -- the broker process that wrote it (host:pid:random)
    at DOUBLE PRECISION NOT NULL,  -- unix time it was written
    facts BYTEA NOT NULL  -- security/audit/entry.py facts()
);
