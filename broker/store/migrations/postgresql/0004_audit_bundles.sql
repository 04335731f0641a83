-- The audit log's entries in bundles (security/audit/bundles.py): one row per appended batch
-- instead of a leaf row, two index entries and maybe entity rows per entry. The leaves of
-- earlier versions become one-entry bundles. The tree, its nodes and checkpoints are unchanged.
CREATE TABLE audit_bundles (
    first bigint PRIMARY KEY,
    count integer NOT NULL,
    time_min text NOT NULL,
    time_max text NOT NULL,
    keys bytea,
    hashes bytea NOT NULL,
    sizes text NOT NULL,
    facets text NOT NULL,
    kept text,
    entries bytea NOT NULL
);
CREATE INDEX audit_bundles_time ON audit_bundles(time_max);
INSERT INTO audit_bundles
SELECT l.idx, 1, l.time, l.time, NULL, l.hash, json_build_array(length(l.entry))::text,
       json_build_array(json_build_array(
           l.time, l.subject, l.tenant, l.action, l.purpose, l.decision, l.status,
           (SELECT coalesce(json_agg(x.e), '[]'::json) FROM (
               SELECT l.entity AS e WHERE l.entity IS NOT NULL
               UNION ALL
               SELECT a.entity FROM audit_entities a WHERE a.idx = l.idx) x)))::text,
       CASE WHEN l.kept IS NULL THEN NULL ELSE '[' || convert_from(l.kept, 'UTF8') || ']' END,
       l.entry
FROM audit_leaves l ORDER BY l.idx;
DROP TABLE audit_entities;
DROP TABLE audit_leaves;
