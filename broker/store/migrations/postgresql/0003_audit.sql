-- The audit log (security/audit/, broker/store/postgres_audit.py, docs/auditors.md) in the
-- database every replica shares: one log, sequenced by a transaction-scoped advisory lock.
CREATE TABLE audit_tree (
    id integer PRIMARY KEY CHECK (id = 1),
    size bigint NOT NULL,
    frontier bytea NOT NULL
);
INSERT INTO audit_tree VALUES (1, 0, ''::bytea);
CREATE TABLE audit_leaves (
    idx bigint PRIMARY KEY,
    entry bytea NOT NULL,
    hash bytea NOT NULL,
    time text NOT NULL,
    subject text NOT NULL,
    tenant text NOT NULL,
    action text NOT NULL,
    purpose text,
    decision text NOT NULL,
    status integer NOT NULL,
    entity text,
    kept bytea
);
CREATE INDEX audit_leaves_time ON audit_leaves(time);
CREATE INDEX audit_leaves_entity ON audit_leaves(entity) WHERE entity IS NOT NULL;
CREATE TABLE audit_entities (
    entity text NOT NULL,
    idx bigint NOT NULL,
    PRIMARY KEY (entity, idx)
);
CREATE TABLE audit_nodes (
    level integer NOT NULL,
    idx bigint NOT NULL,
    hash bytea NOT NULL,
    PRIMARY KEY (level, idx)
);
CREATE TABLE audit_checkpoints (
    size bigint PRIMARY KEY,
    note text NOT NULL
);
