-- The audit log (security/audit/sqlite_log.py, docs/auditors.md) in the store's own database:
-- an audit append shares the store writer's transaction and its fsync.
CREATE TABLE audit_tree (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    size INTEGER NOT NULL,
    frontier BLOB NOT NULL
);
INSERT INTO audit_tree VALUES (1, 0, x'');
CREATE TABLE audit_leaves (
    idx INTEGER PRIMARY KEY,
    entry BLOB NOT NULL,
    hash BLOB NOT NULL,
    time TEXT NOT NULL,
    subject TEXT NOT NULL,
    tenant TEXT NOT NULL,
    action TEXT NOT NULL,
    purpose TEXT,
    decision TEXT NOT NULL,
    status INTEGER NOT NULL,
    entity TEXT,
    kept BLOB
);
CREATE INDEX audit_leaves_time ON audit_leaves(time);
CREATE INDEX audit_leaves_entity ON audit_leaves(entity) WHERE entity IS NOT NULL;
CREATE TABLE audit_entities (
    entity TEXT NOT NULL,
    idx INTEGER NOT NULL,
    PRIMARY KEY (entity, idx)
) WITHOUT ROWID;
CREATE TABLE audit_nodes (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TABLE audit_checkpoints (
    size INTEGER PRIMARY KEY,
    note TEXT NOT NULL
);
