-- The audit log's entries in bundles (security/audit/sqlite_log.py): one row per appended
-- batch instead of a leaf row, two index entries and maybe entity rows per entry, so an
-- append costs one row insert per commit. The leaves of earlier versions become one-entry
-- bundles. The tree, its nodes and checkpoints are unchanged.
CREATE TABLE audit_bundles (
    first INTEGER PRIMARY KEY,  -- index of its first entry
    count INTEGER NOT NULL,
    time_min TEXT NOT NULL,
    time_max TEXT NOT NULL,
    keys BLOB,  -- short keys of its entity ids and subjects (bundles.py key_of), NULL: none
    hashes BLOB NOT NULL,  -- the entries' leaf hashes, 32 bytes each
    sizes TEXT NOT NULL,  -- JSON: the entries' lengths in bytes
    facets TEXT NOT NULL,  -- JSON: per entry [time, subject, tenant, action, purpose, decision,
                           -- status, [entity ids]]
    kept TEXT,  -- JSON: per entry null or [[name, salt hex, value], ...], or NULL: none kept
    entries BLOB NOT NULL  -- the entries' exact bytes, concatenated (last: read least)
);
CREATE INDEX audit_bundles_time ON audit_bundles(time_max);
INSERT INTO audit_bundles
SELECT l.idx, 1, l.time, l.time, NULL, l.hash, json_array(length(l.entry)),
       json_array(json_array(l.time, l.subject, l.tenant, l.action, l.purpose, l.decision,
                             l.status,
                             json((SELECT json_group_array(e) FROM (
                                 SELECT l.entity AS e WHERE l.entity IS NOT NULL
                                 UNION ALL
                                 SELECT a.entity FROM audit_entities a WHERE a.idx = l.idx))))),
       CASE WHEN l.kept IS NULL THEN NULL ELSE '[' || CAST(l.kept AS TEXT) || ']' END,
       l.entry
FROM audit_leaves l ORDER BY l.idx;
DROP TABLE audit_entities;
DROP TABLE audit_leaves;
