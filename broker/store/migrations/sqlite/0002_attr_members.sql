-- q on the createdAt, modifiedAt and unitCode members of attributes (clause 4.9), and
-- discovery (clauses 5.7.5-5.7.10) of attribute names without the sub-attribute rows.

ALTER TABLE attrs ADD COLUMN created_at TEXT;
ALTER TABLE attrs ADD COLUMN modified_at TEXT;
ALTER TABLE attrs ADD COLUMN unit_code TEXT;
-- 0 for an attribute instance, 1 or more for its sub-attributes (rows.attr_path names).
ALTER TABLE attrs ADD COLUMN depth INTEGER NOT NULL DEFAULT 0;

-- Backfill rows written before this migration. A row is a sub-attribute when the document has
-- no attribute of that name (attribute IRIs never hold '"', so the JSON path is safe).
UPDATE attrs SET depth = 1
 WHERE json_type((SELECT doc FROM entities e WHERE e.rid = attrs.rid),
                 '$.attrs."' || name || '"') IS NULL;
UPDATE attrs SET (created_at, modified_at, unit_code) = (
    SELECT json_extract(j.value, '$.createdAt'), json_extract(j.value, '$.modifiedAt'),
           json_extract(j.value, '$.unitCode')
      FROM entities e, json_each(e.doc, '$.attrs."' || attrs.name || '"') j
     WHERE e.rid = attrs.rid AND coalesce(json_extract(j.value, '$.datasetId'), '') = attrs.dataset_id)
 WHERE depth = 0;

-- Discovery: attribute names, their kinds and counts per tenant, straight from this index.
CREATE INDEX attrs_by_kind ON attrs (tenant, depth, name, kind);
-- q on list values (arrays, languageMaps, compound values): only the rows holding JSON, so a
-- comparison's scalar branch and its list branch each read an index range of their own.
CREATE INDEX attrs_by_json ON attrs (tenant, name) WHERE value_json IS NOT NULL;
